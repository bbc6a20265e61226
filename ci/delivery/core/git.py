"""The one way the pipeline talks to git: a subprocess with a time limit and one clear error.

Nothing here prompts (``GIT_TERMINAL_PROMPT=0``), and credentials are never put on a command line
or into a message: a remote's URL is shown without its user-info part.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from delivery.core.errors import ToolError, UsageError

TIMEOUT = 120.0  # seconds for one git command (a fetch or push over a slow link included)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x`` in any text."""
    return _USERINFO.sub("", text)


def git(
    repo: Path, *args: str, check: bool = True, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``git -C repo ARGS``; a failure (with ``check``) is a ToolError naming the command."""
    exe = shutil.which("git")
    if exe is None:
        raise ToolError("git not found", where="PATH", fix="install git (apt-get install git)")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            [exe, "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"git {args[0]} did not finish within {timeout:.0f} s",
            where=str(repo),
            fix="check the network and the remote, then run the command again",
        ) from None
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = redact_url(lines[-1]) if lines else "no output"
        raise ToolError(
            f"git {' '.join(_shown(args))} failed (exit {proc.returncode}): {detail}",
            where=str(repo),
            fix="fix the repository state git reports, then run the command again",
        )
    return proc


def _shown(args: Sequence[str]) -> list[str]:
    return [redact_url(a) for a in args[:3]]


def out(repo: Path, *args: str) -> str:
    return git(repo, *args).stdout.strip()


def top_level(repo: Path) -> Path:
    """The work tree holding ``repo``; a UsageError outside one."""
    proc = git(repo, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise UsageError(
            "not inside a git work tree", where=str(repo), fix="run inside a clone of the platform repo"
        )
    return Path(proc.stdout.strip())


def dirty_paths(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes, and untracked files git does not ignore."""
    lines = git(repo, "status", "--porcelain=v1", "--untracked-files=all").stdout.splitlines()
    return [line[3:] for line in lines if line.strip()]


def require_clean(repo: Path, what: str) -> None:
    dirty = dirty_paths(repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
        raise UsageError(
            f"the working tree has uncommitted changes ({shown}); {what} refuses to mix them in",
            where=str(repo),
            fix="commit or stash them first (git add -A && git commit, or git stash)",
        )


def head(repo: Path) -> str:
    return out(repo, "rev-parse", "HEAD")


def current_branch(repo: Path) -> str:
    return out(repo, "rev-parse", "--abbrev-ref", "HEAD")


def author(repo: Path) -> str:
    """Who acts: git's ``user.name`` (and email), else ``$USER``."""
    name = git(repo, "config", "user.name", check=False).stdout.strip()
    email = git(repo, "config", "user.email", check=False).stdout.strip()
    if name:
        return f"{name} <{email}>" if email else name
    return os.environ.get("USER", "unknown")
