"""``deliver fork-init`` on real git clones: a fork's values in, a tree that checks and validates out.

A seed repo (the platform's data, its generated files rendered, a README, a doc, a CI workflow and a
test file holding the example values) is committed and cloned through a bare remote; every test
runs the CLI in a fresh clone. The result must pass ``config check``, ``root --check`` and ``layers
render --check`` for every env and ``validate``; a second run changes nothing; refusals, bad values
and a failure while writing leave the clone exactly at its commit (``git status`` clean).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import REPO, Result, run_deliver
from delivery.core.errors import ConfigError
from delivery.core.yamlio import edit_text
from delivery.fork import owned, scan
from delivery.fork import write as fork_write
from delivery.fork.values import follow_project
from test_schemas import hermetic_schemas

ENVS = ("dev", "staging", "prod")
URL = "https://github.com/acme/llm-platform.git"
OLD_URL = "https://github.com/example-org/llm-platform.git"
PROJECTS = {"dev": "acme-llm-dev", "staging": "acme-llm-stg", "prod": "acme-llm-prod"}
DOMAINS = {"dev": "dev.ai.acme.io", "staging": "stg.ai.acme.io", "prod": "ai.acme.io"}
FULL = [
    "fork-init", "--repo-url", URL,
    *(a for env, p in PROJECTS.items() for a in ("--project", f"{env}={p}")),
    *(a for env, d in DOMAINS.items() for a in ("--domain", f"{env}={d}")),
]  # fmt: skip

README = f"""\
# Our platform

    git clone {OLD_URL}
    browse https://github.com/example-org/llm-platform/tree/main

The API of dev is https://api.dev.llm.example.com, of prod https://api.llm.example.com.
Images: europe-west4-docker.pkg.dev/llm-platform-dev/modelcars, state in llm-platform-prod-tofu-state.
Not a value: llm-platform-devtools, my-llm-platform-dev, llm-platform.
"""
WORKFLOW = "jobs:\n  plan:\n    env:\n      PROJECT: llm-platform-staging\n"
NOT_OWNED = f'EXPECTED = "{OLD_URL}"\n'


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tools: Callable[[str], str]) -> None:
    tools("kubeconform")
    monkeypatch.setenv("DELIVER_KUBE_SCHEMAS", str(hermetic_schemas()))
    monkeypatch.setenv("DELIVER_SCHEMA_CACHE", str(REPO / ".cache" / "schemas"))
    monkeypatch.delenv("DELIVER_REPO", raising=False)


def _seed(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", ".gitattributes", ".gitignore"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("environments", "modelcars", "clusters", "tofu"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns(".terraform", "*.tfplan"))
    for env in ENVS:  # the generated files as this checkout's renderers make them
        assert run_deliver("root", "--env", env, "--write", repo=dest).code == 0
        assert run_deliver("layers", "render", "--env", env, "--write", repo=dest).code == 0
    (dest / "README.md").write_text(README)
    (dest / ".github" / "workflows").mkdir(parents=True)
    (dest / ".github" / "workflows" / "ci.yml").write_text(WORKFLOW)
    (dest / "tests").mkdir()
    (dest / "tests" / "test_values.py").write_text(NOT_OWNED)
    return dest


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare remote holding one commit of the seed."""
    base = tmp_path_factory.mktemp("fork-remote")
    seed = _seed(base / "seed")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
    bare = base / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)
    return bare


@pytest.fixture
def clone(remote: Path, tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    git(work, "config", "user.name", "Forker")
    git(work, "config", "user.email", "forker@example.com")
    yield work


def deliver(repo: Path, *args: str) -> Result:
    return run_deliver(*args, repo=repo)


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain=v1", "--untracked-files=all", "--ignored=no")


def commit(repo: Path, message: str = "edit") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def assert_error(res: Result, code: int, phrase: str) -> None:
    assert res.code == code, f"exit {res.code}, expected {code}\n{res.out}\n{res.err}"
    errors = [line for line in res.err.splitlines() if line.startswith("error: ")]
    assert any(phrase in line for line in errors), f"{phrase!r} not in:\n{res.err}"
    assert any(line.startswith("  fix: ") for line in res.err.splitlines()), res.err
    assert "Traceback" not in res.err


def assert_checks_clean(repo: Path) -> None:
    """What the issue asks of a fork: config check, root/layers --check per env and validate pass."""
    res = deliver(repo, "config", "check")
    assert res.code == 0, res.err
    for env in ENVS:
        for argv in (("root", "--env", env, "--check"), ("layers", "render", "--env", env, "--check")):
            res = deliver(repo, *argv)
            assert res.code == 0, f"{argv}: {res.err}"
    res = deliver(repo, "validate")
    assert res.code == 0, res.err
    assert res.out.count("0 finding(s)") == len(ENVS)


# --------------------------------------------------------------------------- the fork


def test_fork_edits_configs_regenerates_and_the_result_checks_clean(clone: Path) -> None:
    before = {env: (clone / "environments" / env / "config.yaml").read_text() for env in ENVS}
    res = deliver(clone, *FULL)
    assert res.code == 0, res.err

    for env in ENVS:  # config: the four keys changed, every other line (comments included) kept
        after = (clone / "environments" / env / "config.yaml").read_text()
        old, new = before[env].splitlines(), after.splitlines()
        assert len(old) == len(new)
        changed = {(a.split(":")[0].strip(), b) for a, b in zip(old, new, strict=True) if a != b}
        registry = f"europe-west4-docker.pkg.dev/{PROJECTS[env]}/modelcars"  # followed the project
        assert changed == {
            ("projectID", f"  projectID: {PROJECTS[env]}"),
            ("repoURL", f"repoURL: {URL}"),
            ("domain", f"domain: {DOMAINS[env]}"),
            ("registry", f"registry: {registry}"),
        }
        assert [line for line in old if line.lstrip().startswith("#")] == [
            line for line in new if line.lstrip().startswith("#")
        ]
        root = (clone / "clusters" / env / "root.yaml").read_text()
        assert OLD_URL not in root and root.count(URL) >= 2

    readme = (clone / "README.md").read_text()
    assert f"git clone {URL}" in readme
    assert "https://github.com/acme/llm-platform/tree/main" in readme  # the URL without .git too
    assert "https://api.dev.ai.acme.io" in readme and "https://api.ai.acme.io" in readme  # longest first
    assert "europe-west4-docker.pkg.dev/acme-llm-dev/modelcars" in readme
    assert "acme-llm-prod-tofu-state" in readme  # the state bucket follows the project
    assert "Not a value: llm-platform-devtools, my-llm-platform-dev, llm-platform." in readme  # tokens only
    assert "PROJECT: acme-llm-stg" in (clone / ".github" / "workflows" / "ci.yml").read_text()
    assert (clone / "tests" / "test_values.py").read_text() == NOT_OWNED  # not owned: listed
    assert re.search(
        r"^  tests/test_values\.py:1: https://github\.com/example-org/llm-platform\.git ", res.out, re.M
    )
    assert "state bucket acme-llm-dev-tofu-state" in res.out
    assert "git add -A && git commit" in res.out

    dirty = {line[3:] for line in status(clone).splitlines()}
    assert {"README.md", ".github/workflows/ci.yml", "environments/dev/config.yaml"} <= dirty
    assert "clusters/prod/root.yaml" in dirty and "tests/test_values.py" not in dirty
    assert_checks_clean(clone)


def test_a_second_run_changes_nothing_and_says_so(clone: Path) -> None:
    assert deliver(clone, *FULL).code == 0
    commit(clone, "fork")
    head = git(clone, "rev-parse", "HEAD")
    res = deliver(clone, *FULL)
    assert res.code == 0, res.err
    assert "nothing to change" in res.out
    assert status(clone) == "" and git(clone, "rev-parse", "HEAD") == head
    data = json.loads(deliver(clone, *FULL, "--json").out)
    assert data["changed"] == [] and data["written"] is False


def test_dry_run_prints_the_diff_and_writes_nothing(clone: Path) -> None:
    res = deliver(clone, *FULL, "--dry-run")
    assert res.code == 0, res.err
    assert status(clone) == ""
    assert "--- a/environments/dev/config.yaml\n+++ b/environments/dev/config.yaml\n" in res.out
    assert f"-repoURL: {OLD_URL}\n+repoURL: {URL}\n" in res.out
    assert "+++ b/clusters/staging/root.yaml" in res.out and "+++ b/README.md" in res.out
    assert "dry run: nothing written" in res.out

    data = json.loads(deliver(clone, *FULL, "--dry-run", "--json").out)  # one document
    assert status(clone) == ""
    assert data["ok"] is True and data["dryRun"] is True and data["written"] is False
    files = {c["file"] for c in data["changed"]}
    assert {"README.md", "environments/prod/config.yaml", "clusters/dev/root.yaml"} <= files
    assert data["notOwned"] == [
        {"file": "tests/test_values.py", "line": 1, "value": OLD_URL, "why": scan.why_not_owned("x")}
    ]
    dev = data["environments"]["dev"]
    assert dev["validation"]["ok"] is True and dev["validation"]["resources"] > 0
    assert (
        dev["after"]["projectID"] == "acme-llm-dev"
        and dev["tofu"]["stateBucket"] == "acme-llm-dev-tofu-state"
    )
    assert dev["tofu"]["variables"]["registry_project"] == "acme-llm-dev"
    assert "+repoURL: https://github.com/acme/llm-platform.git" in data["diff"]


def test_branch_and_explicit_registry(clone: Path) -> None:
    registry = "us-central1-docker.pkg.dev/shared-images-1/llm"
    res = deliver(clone, "fork-init", "--repo-url", "git@gitlab.com:acme/platform.git", "--branch", "live",
                  "--project", "dev=acme-dev-1", "--registry", f"dev={registry}")  # fmt: skip
    assert res.code == 0, res.err
    dev = (clone / "environments" / "dev" / "config.yaml").read_text()
    assert f"registry: {registry}\n" in dev and "repoBranch: live\n" in dev
    staging = (clone / "environments" / "staging" / "config.yaml").read_text()
    assert "projectID: llm-platform-staging\n" in staging  # not given: kept
    assert "targetRevision: live" in (clone / "clusters" / "staging" / "root.yaml").read_text()
    assert_checks_clean(clone)


# --------------------------------------------------------------------------- refusals


def test_refuses_uncommitted_changes(clone: Path) -> None:
    (clone / "README.md").write_text(README + "draft\n")
    (clone / "notes.txt").write_text("untracked\n")
    res = deliver(clone, *FULL)
    assert_error(res, 2, "uncommitted changes (README.md, notes.txt)")
    assert "git add -A && git commit" in res.err
    assert {line[3:] for line in status(clone).splitlines()} == {"README.md", "notes.txt"}
    assert (clone / "environments" / "dev" / "config.yaml").read_text().count(OLD_URL) == 1


def test_refuses_outside_a_git_work_tree(clone: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(clone, plain, ignore=shutil.ignore_patterns(".git"))
    res = deliver(plain, *FULL)
    assert_error(res, 2, "not inside a git work tree")
    assert "git init && git add -A" in res.err
    assert OLD_URL in (plain / "environments" / "dev" / "config.yaml").read_text()


def _edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text()
    assert old in text, f"{rel} lacks {old!r}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("edits", "named"),
    [
        pytest.param(  # a config change never rendered: the layers (and root) are out of date
            [("environments/staging/config.yaml", "maxReplicas: 2", "maxReplicas: 3")],
            ["clusters/staging/layers: ", "file(s) differ from what environments/staging/config.yaml"],
            id="layers-out-of-date",
        ),
        pytest.param(
            [("clusters/prod/root.yaml", "targetRevision: main", "targetRevision: HEAD")],
            ["clusters/prod/root.yaml: root manifest is missing or out of date"],
            id="root-hand-edited",
        ),
        pytest.param(  # old values disagreeing between files: two platform repos
            [("environments/dev/config.yaml", OLD_URL, "https://github.com/someone/else.git")],
            ["environments/dev/config.yaml: repoURL: repoURL 'https://github.com/someone/else.git' disagrees",
             "environments/staging/config.yaml: repoURL: repoURL"],
            id="repo-urls-disagree",
        ),
    ],
)  # fmt: skip
def test_refuses_a_tree_inconsistent_before_it_started(
    clone: Path, edits: list[tuple[str, str, str]], named: list[str]
) -> None:
    for rel, old, new in edits:
        _edit(clone, rel, old, new)
    if any(rel.endswith("config.yaml") and "someone" in new for rel, _, new in edits):
        assert deliver(clone, "root", "--env", "dev", "--write").code == 0
        assert deliver(clone, "layers", "render", "--env", "dev", "--write").code == 0
    commit(clone)
    head = git(clone, "rev-parse", "HEAD")
    res = deliver(clone, *FULL)
    assert_error(res, 2, "inconsistent before fork-init started")
    for phrase in named:
        assert phrase in res.err, res.err
    assert "run deliver fork-init again" in res.err
    assert status(clone) == "" and git(clone, "rev-parse", "HEAD") == head


U = ["--repo-url", URL]
BAD = [
    ("no-scheme", ["--repo-url", "github.com/acme/x.git"], "'github.com/acme/x.git' is not a git URL"),
    ("http", ["--repo-url", "http://github.com/acme/x.git"], "is plain http"),
    ("credentials", ["--repo-url", "https://bot:t0ken@github.com/acme/x.git"], "holds credentials"),
    ("no-path", ["--repo-url", "https://github.com/"], "is not a git URL"),
    ("branch", [*U, "--branch", "feature..x"], "--branch: 'feature..x' is not a branch name"),
    ("unknown-env", [*U, "--project", "qa=acme-llm-qa"], "'qa' is not an environment (known: dev, prod, st"),
    ("not-pair", [*U, "--domain", "dev.ai.acme.io"], "'dev.ai.acme.io' is not ENV=VALUE"),
    ("project-short", [*U, "--project", "dev=acme"], "dev=acme: 4 characters; a GCP project ID has 6 to 30"),
    ("project-case", [*U, "--project", "dev=Acme-LLM-dev"], "starts with a lowercase letter"),
    ("project-hyphen", [*U, "--project", "dev=acme-llm-"], "cannot end with a hyphen"),
    ("project-chars", [*U, "--project", "dev=acme_llm_dev"], "only lowercase letters, digits and hyphens"),
    ("domain-url", [*U, "--domain", "dev=https://ai.acme.io"], "not a URL"),
    ("domain-label", [*U, "--domain", "dev=-ai.acme.io"], "each label is 1 to 63"),
    ("domain-single", [*U, "--domain", "dev=localhost"], "at least two labels"),
    ("domain-dot", [*U, "--domain", "dev=ai.acme.io."], "without its trailing dot"),
    ("domain-twice", [*U, "--domain", "dev=a.acme.io", "--domain", "dev=b.acme.io"], "dev is given twice"),
    ("registry", [*U, "--registry", "dev=Europe/Models"], "not an image repository path"),
    ("registry-not-ar", [*U, "--registry", "dev=ghcr.io/acme/models"], "is not an Artifact Registry docker"),
    (
        "one-project-two-envs",
        [*U, "--project", "dev=acme-llm-dev", "--project", "staging=acme-llm-dev"],
        "cluster.projectID 'acme-llm-dev' is also",
    ),
]


@pytest.mark.parametrize(("argv", "phrase"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_values_exit_2_and_write_nothing(clone: Path, argv: list[str], phrase: str) -> None:
    res = deliver(clone, "fork-init", *argv)
    assert_error(res, 2, phrase)
    assert status(clone) == ""
    data = json.loads(deliver(clone, "fork-init", *argv, "--json").out)
    assert data["ok"] is False and data["problems"]


def test_every_bad_value_is_reported_at_once(clone: Path) -> None:
    res = deliver(clone, "fork-init", "--repo-url", "ftp://x", "--project", "dev=X", "--domain", "prod=a..b")
    assert res.code == 2
    errors = [line for line in res.err.splitlines() if line.startswith("error: ")]
    assert [e.split(": ")[2] for e in errors] == ["--repo-url", "--project", "--domain"]


def test_findings_in_the_forked_tree_write_nothing(clone: Path) -> None:
    """Validation runs on the fork as it would be written: a finding stops it before any write."""
    (clone / "tofu" / "modules" / "gke" / "in_cluster.tf").write_text('provider "kubernetes" {}\n')
    commit(clone)
    res = deliver(clone, *FULL)
    assert_error(res, 1, "finding(s) in the environments as the fork would make them; nothing was written")
    assert "[tofu-provider]" in res.err
    assert status(clone) == ""


def test_a_failure_while_writing_puts_every_file_back(clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fork_write._replace
    calls = {"n": 0}

    def failing(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 30:  # after 29 files were renamed into place
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(fork_write, "_replace", failing)
    res = deliver(clone, *FULL)
    assert_error(res, 1, "every file was put back as it was")
    assert calls["n"] == 30
    assert status(clone) == ""  # no file changed, no temp file left
    assert git(clone, "diff", "HEAD", "--stat") == ""


# --------------------------------------------------------------------------- validate names the repair


def test_validate_names_the_command_that_regenerates_stale_files(clone: Path) -> None:
    _edit(clone, "environments/dev/config.yaml", OLD_URL, URL)
    res = deliver(clone, "validate", "--env", "dev")
    assert res.code == 1
    assert "fix: run: deliver root --env dev --write (the file is generated" in res.err  # root findings
    assert "fix: run: deliver layers render --env dev --write (the file is generated" in res.err
    summary = res.err.splitlines()[-1]  # the one line that names the cause and its commands
    assert re.match(r"^  fix: [1-9]\d* finding\(s\) are generated files that disagree with", summary)
    assert "run `deliver root --env dev --write` and `deliver layers render --env dev --write`" in summary
    assert "`deliver fork-init`" in summary and summary.endswith("`deliver validate --env dev` again")
    assert deliver(clone, "root", "--env", "dev", "--write").code == 0  # what it says repairs it
    assert deliver(clone, "layers", "render", "--env", "dev", "--write").code == 0
    assert deliver(clone, "validate", "--env", "dev").code == 0


# --------------------------------------------------------------------------- the pieces


def test_rewriter_matches_whole_tokens_longest_first_in_one_pass() -> None:
    rewriter = scan.Rewriter(
        {
            "llm.example.com": {"ai.acme.io"},
            "dev.llm.example.com": {"dev.llm.example.com"},
            "proj-a": {"proj-b"},
            "proj-b": {"proj-a"},
            "shared-1": {"x-1", "y-1"},
            "repo": {"short"},
            "repo.git": {"long.git"},
        }
    )
    assert rewriter.rewrite("repo.git repo. repo/x") == "long.git short. short/x"  # the longest first
    text = "dev.llm.example.com api.llm.example.com proj-a/proj-b proj-ab xproj-a shared-1\n"
    assert (
        rewriter.rewrite(text)
        == "dev.llm.example.com api.ai.acme.io proj-b/proj-a proj-ab xproj-a shared-1\n"
    )
    hits = rewriter.hits("f.md", text, "why")
    assert [(h.line, h.value) for h in hits] == [
        (1, "llm.example.com"),
        (1, "proj-a"),
        (1, "proj-b"),
        (1, "shared-1"),
    ]
    assert hits[-1].why.startswith("becomes x-1 or y-1 depending on the env")


def test_registry_follows_the_project_segment_only() -> None:
    assert follow_project("europe-west4-docker.pkg.dev/old-proj/modelcars", "old-proj", "new-proj") == (
        "europe-west4-docker.pkg.dev/new-proj/modelcars"
    )
    assert follow_project("ghcr.io/old-proj-images/x", "old-proj", "new-proj") == "ghcr.io/old-proj-images/x"


@pytest.mark.parametrize(
    ("rel", "mine"),
    [
        ("README.md", True), ("docs/fork.md", True), (".github/workflows/ci.yml", True),
        (".gitlab-ci.yml", True), (".ci/run", True), ("environments/dev/notes.txt", True),
        ("tests/README.md", False), ("tests/test_x.py", False), ("ci/delivery/cli.py", False),
        ("clusters/pins.yaml", False), ("clusters/dev/release.yaml", False), ("tofu/envs/dev/main.tf", False),
    ],
)  # fmt: skip
def test_which_files_fork_init_owns(rel: str, mine: bool) -> None:
    assert owned(rel) is mine


def test_edit_text_keeps_layout_and_refuses_a_missing_key() -> None:
    text = 'a:\n  b: "x"   # keep me\n  c: 1\n# tail\n'
    edited = edit_text(text, [(("a", "b"), "yy"), (("a", "c"), 1)], "t.yaml")
    assert edited == 'a:\n  b: "yy"  # keep me\n  c: 1\n# tail\n'  # quotes and the comment's column kept
    with pytest.raises(ConfigError, match=r"key 'a\.d' not found"):
        edit_text(text, [(("a", "d"), "v")], "t.yaml")
