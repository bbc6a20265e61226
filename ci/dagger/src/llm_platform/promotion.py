"""Promotion containers: the toolbox plus git, over the repo *with* its ``.git``, running the same
``deliver promote`` / ``rollback`` / ``hold release`` / ``verify-release`` the tests run.

These commands read git (soak from the commit that pinned an image, a clean tree) and write one
commit, so they get the repo as it is on disk, ``.git`` included (``GIT_SOURCE_IGNORE``: the module's
usual ignore list without ``.git``). The commit is made inside the container; the caller gets the repo
afterwards (``.git`` with the new commit) and fetches from it, or the CLI pushes it (``--push``).

git is configured for the container only, through ``GIT_CONFIG_*`` variables (git's command scope,
which wins over the checkout's own ``.git/config``): the commit's identity comes from arguments, the
checkout's hooks and signing are off (they call tools of the host), and a git token, when given, is a
secret variable that a credential helper hands to git: never an argument, a URL or a file.
``status`` and ``history`` only read files, so they run in the plain toolbox (no ``.git``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import dagger

from .toolbox import SOURCE_IGNORE, WORKDIR, deliver, installed, mounted, toolbox

# The repo as the promotion functions take it: every usual exclusion but .git. Each of these paths is
# git-ignored, so leaving them out cannot make the tree look dirty (the CLI refuses a dirty tree).
GIT_SOURCE_IGNORE = [path for path in SOURCE_IGNORE if path != ".git"]

# git for these functions only, on top of the shared install layers (the other functions never get it).
# python:3.13-slim (images.PYTHON, by digest) has no git; this is its own Debian release's git, over
# HTTPS with the base's CA bundle. The layer is keyed on the layers below it, so it is built once per
# toolbox (Debian's package is not pinned to a version: docs/dagger.md).
GIT_INSTALL = (
    "sh",
    "-c",
    "apt-get update -qq"
    " && apt-get install -y -qq --no-install-recommends git ca-certificates"
    " && rm -rf /var/lib/apt/lists/*",
)

# `credential.helper = deliver` runs this for every HTTPS remote git talks to (push, and the fetch of
# a rejected push). It answers `get` from the environment and stores nothing; printf is the shell's
# builtin, so the token is in no process's arguments.
CREDENTIAL_HELPER_PATH = "/usr/local/bin/git-credential-deliver"
CREDENTIAL_HELPER = """\
#!/bin/sh
# git credential helper of the promotion functions: the token is the secret variable $GIT_TOKEN.
[ "$1" = get ] || exit 0
cat >/dev/null
[ -n "${GIT_TOKEN:-}" ] || exit 0
printf 'username=%s\\npassword=%s\\n' "${GIT_USERNAME:-x-access-token}" "$GIT_TOKEN"
"""
TOKEN_ENV = "GIT_TOKEN"
USERNAME_ENV = "GIT_USERNAME"
REGISTRY_PASSWORD_ENV = "DELIVER_REGISTRY_PASSWORD"  # the CLI's own variable (deliver promote --help)

_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*@", re.IGNORECASE)


def git_config(author_name: str, author_email: str, with_token: bool) -> list[tuple[str, str]]:
    """The container's git settings (command scope: they override the checkout's .git/config)."""
    if not author_name.strip() or not author_email.strip():
        raise ValueError("the commit needs an author: give author-name and author-email")
    pairs = [
        ("safe.directory", WORKDIR),  # the uploaded files' owner need not be the container's user
        ("user.name", author_name),  # the commit's author, and the ledger entry's actor
        ("user.email", author_email),
        ("core.hooksPath", "/dev/null"),  # the checkout's hooks run host tools (deliver validates itself)
        ("commit.gpgSign", "false"),  # no signing keys in the engine
        ("core.fsmonitor", "false"),  # nor the host's fsmonitor daemon
    ]
    if with_token:
        # An empty helper clears the checkout's helpers (a keychain the container does not have).
        pairs += [("credential.helper", ""), ("credential.helper", "deliver")]
    return pairs


def with_git_config(ctr: dagger.Container, pairs: Sequence[tuple[str, str]]) -> dagger.Container:
    """``pairs`` as GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n (no file, no quoting)."""
    ctr = ctr.with_env_variable("GIT_CONFIG_COUNT", str(len(pairs)))
    for i, (key, value) in enumerate(pairs):
        ctr = ctr.with_env_variable(f"GIT_CONFIG_KEY_{i}", key).with_env_variable(
            f"GIT_CONFIG_VALUE_{i}", value
        )
    return ctr


def check_remote_url(url: str) -> None:
    """A push URL is https:// (the token is sent to it) and carries no credentials (they go in git_token)."""
    if not url.startswith("https://"):
        raise ValueError(f"remote-url must be an https URL, not {url!r}")
    if _USERINFO.match(url):
        raise ValueError("remote-url must not hold a user or token: pass the token as git-token")


def git_toolbox(
    repo: dagger.Directory,
    *,
    author_name: str,
    author_email: str,
    git_token: dagger.Secret | None = None,
    git_username: str = "x-access-token",
    remote_url: str = "",
) -> dagger.Container:
    """Toolbox (installed from ``repo``) + git + the repo with .git at /repo + the container's git config."""
    pairs = git_config(author_name, author_email, git_token is not None)
    ctr = installed(repo).with_env_variable("DEBIAN_FRONTEND", "noninteractive").with_exec(list(GIT_INSTALL))
    if git_token is not None:
        ctr = ctr.with_new_file(CREDENTIAL_HELPER_PATH, CREDENTIAL_HELPER, permissions=0o755)
    ctr = with_git_config(mounted(ctr, repo), pairs)
    if remote_url:
        check_remote_url(remote_url)
        ctr = ctr.with_exec(["git", "remote", "set-url", "origin", remote_url])
    if git_token is not None:
        ctr = ctr.with_secret_variable(TOKEN_ENV, git_token).with_env_variable(USERNAME_ENV, git_username)
    return ctr


def fresh(ctr: dagger.Container) -> dagger.Container:
    """Bust the engine's cache: these commit, push and copy blobs (or read the clock), never replay."""
    return ctr.with_env_variable("DELIVER_RUN_ID", str(time.time_ns()))


def _flag(name: str, on: bool) -> list[str]:
    return [name] if on else []


def _opt(name: str, value: str) -> list[str]:
    return [name, value] if value else []


def promote_args(
    to: str,
    only: Sequence[str],
    approved_by: str,
    break_glass: str,
    dry_run: bool,
    push: bool,
    username: str,
) -> list[str]:
    """``promote --to ENV [--only A]... [--approved-by N] [--break-glass R] [--dry-run] [--push] ...``"""
    return [
        "promote",
        "--to",
        to,
        *[arg for artifact in only for arg in ("--only", artifact)],
        *_opt("--approved-by", approved_by),
        *_opt("--break-glass", break_glass),
        *_flag("--dry-run", dry_run),
        *_flag("--push", push),
        *_opt("--username", username),
        "--json",
    ]


def rollback_args(env: str, to: str, break_glass: str, push: bool) -> list[str]:
    """``rollback --env ENV [--to LEDGER_ID] [--break-glass R] [--push] --json``"""
    args = ["rollback", "--env", env, *_opt("--to", to), *_opt("--break-glass", break_glass)]
    return [*args, *_flag("--push", push), "--json"]


def hold_release_args(env: str, push: bool) -> list[str]:
    """``hold release --env ENV [--push] --json``"""
    return ["hold", "release", "--env", env, *_flag("--push", push), "--json"]


def verify_release_args(env: str, evidence: str, push: bool) -> list[str]:
    """``verify-release --env ENV --evidence TEXT [--push] --json``"""
    return ["verify-release", "--env", env, "--evidence", evidence, *_flag("--push", push), "--json"]


def run(
    ctr: dagger.Container, args: Sequence[str], password: dagger.Secret | None = None
) -> dagger.Container:
    """``deliver ARGS`` in a git toolbox, never replayed; the registry password as the CLI's variable."""
    ctr = fresh(ctr)
    if password is not None:
        ctr = ctr.with_secret_variable(REGISTRY_PASSWORD_ENV, password)
    return deliver(ctr, *args)


def status(source: dagger.Directory, as_json: bool) -> dagger.Container:
    """``deliver status [--json]``: files only; fresh, since what blocks a promotion depends on the clock."""
    return deliver(fresh(toolbox(source)), "status", *_flag("--json", as_json))


def history(source: dagger.Directory, env: str, as_json: bool) -> dagger.Container:
    """``deliver history --env ENV [--json]``: the env's ledger (a file), pure."""
    return deliver(toolbox(source), "history", "--env", env, *_flag("--json", as_json))
