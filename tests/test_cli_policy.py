"""The one exit policy and error shape, over every command: 0 ok, 1 a step failed, 2 bad input.

Every failure ends with an ``error: …`` line and a ``fix: …`` line on stderr (click's usage errors
included); with ``--json`` it also prints one JSON document with ``"ok": false`` on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result
from delivery import cli
from delivery.core.errors import EXIT_BAD_INPUT, EXIT_FAILED

Edit = Callable[[Path], None]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _hermetic_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repo copies have no ../shared beside them: point them at the hermetic schemas and the bundle cache."""
    monkeypatch.setenv("DELIVER_KUBE_SCHEMAS", str(REPO.parent / "shared" / "kube-schemas"))
    monkeypatch.setenv("DELIVER_SCHEMA_CACHE", str(REPO / ".cache" / "schemas"))


def _replace(rel: str, old: str, new: str) -> Edit:
    def edit(repo: Path) -> None:
        path = repo / rel
        text = path.read_text()
        assert old in text, f"{rel} lacks {old!r}"
        path.write_text(text.replace(old, new, 1))

    return edit


def _write(rel: str, text: str) -> Edit:
    def edit(repo: Path) -> None:
        (repo / rel).write_text(text)

    return edit


def _plan_with_sidecar_dir(repo: Path) -> None:
    (repo / "out/p/plan.json").mkdir(parents=True)
    (repo / "out/p/plan.tfplan").write_text("not a plan\n")


def _nothing(_repo: Path) -> None:
    return None


SPEC = "qwen2.5-0.5b-instruct"
VLLM = "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"

# (id, argv, edit of the repo copy, exit code, a phrase of the error line)
CASES: list[tuple[str, list[str], Edit, int, str]] = [
    (
        "config-unknown-env",
        ["config", "check", "--env", "nope"],
        _nothing,
        EXIT_BAD_INPUT,
        "unknown environment",
    ),
    (
        "config-bad-value",
        ["config", "check"],
        _replace("environments/dev/config.yaml", "  perNode: 1\n", "  perNode: many\n"),
        EXIT_BAD_INPUT,
        "problem(s) in environment config",
    ),
    ("root-unknown-env", ["root", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    (
        "root-write-and-check",
        ["root", "--env", "dev", "--write", "--check"],
        _nothing,
        EXIT_BAD_INPUT,
        "exclude",
    ),
    (
        "root-stale",
        ["root", "--env", "dev", "--check"],
        _replace("clusters/dev/root.yaml", "selfHeal: true", "selfHeal: false"),
        EXIT_FAILED,
        "out of date",
    ),
    (
        "layers-unknown-env",
        ["layers", "render", "--env", "nope"],
        _nothing,
        EXIT_BAD_INPUT,
        "unknown environment",
    ),
    (
        "layers-write-and-check",
        ["layers", "render", "--env", "dev", "--write", "--check"],
        _nothing,
        EXIT_BAD_INPUT,
        "exclude",
    ),
    (
        "layers-drift",
        ["layers", "render", "--env", "dev", "--check"],
        _replace(
            "clusters/dev/layers/platform/keda.yaml", "targetRevision: 2.20.1", "targetRevision: 2.20.2"
        ),
        EXIT_FAILED,
        "differ from what the config renders",
    ),
    ("schemas-unknown-env", ["schemas", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    ("validate-unknown-env", ["validate", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    (
        "validate-finding",
        ["validate", "--env", "dev"],
        _replace(VLLM, "image: vllm/vllm-openai:v0.23.0@", "image: vllm/vllm-openai:v0.23.0 #"),
        EXIT_FAILED,
        "finding(s)",
    ),
    ("modelcar-build-unknown-spec", ["modelcar", "build", "nope"], _nothing, EXIT_BAD_INPUT, "nope"),
    ("modelcar-verify-unknown-spec", ["modelcar", "verify", "nope"], _nothing, EXIT_BAD_INPUT, "nope"),
    (
        "modelcar-publish-unknown-env",
        ["modelcar", "publish", SPEC, "--env", "nope"],
        _nothing,
        EXIT_BAD_INPUT,
        "unknown environment",
    ),
    (
        "modelcar-publish-password-without-user",
        ["modelcar", "publish", SPEC, "--env", "dev", "--password-file", "{repo}/password"],
        _write("password", "not-a-real-password\n"),
        EXIT_BAD_INPUT,
        "--username",
    ),
    ("plan-unknown-env", ["plan", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    (
        "apply-missing-plan",
        ["apply", "--env", "dev", "--plan", "out/tofu/dev/none.tfplan"],
        _nothing,
        EXIT_BAD_INPUT,
        "plan",
    ),
    (
        "plan-provider-mirror-missing",
        ["plan", "--env", "dev", "--offline", "--provider-mirror", "{repo}/no-such-mirror"],
        _nothing,
        EXIT_BAD_INPUT,
        "mirror",
    ),
    (
        "apply-sidecar-is-a-directory",
        ["apply", "--env", "dev", "--plan", "{repo}/out/p/plan.tfplan"],
        _plan_with_sidecar_dir,
        EXIT_BAD_INPUT,
        "plan.json",
    ),
    (
        "substrate-check-unknown-env",
        ["substrate-check", "--env", "nope"],
        _nothing,
        EXIT_BAD_INPUT,
        "unknown",
    ),
    (
        "substrate-check-policy",
        ["substrate-check", "--env", "dev"],
        _replace("tofu/envs/dev/main.tf", "terraform {", 'provider "kubernetes" {}\n\nterraform {'),
        EXIT_FAILED,
        "substrate problem(s)",
    ),
    ("promote-unknown-env", ["promote", "--to", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    ("promote-entry-env", ["promote", "--to", "dev"], _nothing, EXIT_BAD_INPUT, "is an entry environment"),
    (
        "promote-outside-git",
        ["promote", "--to", "staging"],
        _nothing,
        EXIT_BAD_INPUT,
        "not inside a git work tree",
    ),
    (
        "import-images-promoted-env",
        ["import-images", "--env", "staging"],
        _nothing,
        EXIT_BAD_INPUT,
        "its images arrive by promotion",
    ),
    ("rollback-unknown-env", ["rollback", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    ("hold-release-unknown-env", ["hold", "release", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown"),
    (
        "verify-release-empty-evidence",
        ["verify-release", "--env", "dev", "--evidence", " "],
        _nothing,
        EXIT_BAD_INPUT,
        "--evidence is empty",
    ),
    ("history-unknown-env", ["history", "--env", "nope"], _nothing, EXIT_BAD_INPUT, "unknown environment"),
    (
        "status-broken-ledger",
        ["status"],
        _write("clusters/dev/ledger.jsonl", "{not json\n"),
        EXIT_BAD_INPUT,
        "ledger line is not JSON",
    ),
    (
        "fork-init-bad-url",
        ["fork-init", "--repo-url", "github.com/acme/x"],
        _nothing,
        EXIT_BAD_INPUT,
        "is not a git URL",
    ),
    (
        "fork-init-not-git",
        ["fork-init", "--repo-url", "https://github.com/acme/x.git"],
        _nothing,
        EXIT_BAD_INPUT,
        "not inside a git work tree",
    ),
    (
        "demo-schema-source-missing",
        ["demo", "--schema-source", "{repo}/no-such-dir"],
        _nothing,
        EXIT_BAD_INPUT,
        "does not exist",
    ),
    ("usage-unknown-command", ["frobnicate"], _nothing, EXIT_BAD_INPUT, "No such command"),
    ("usage-unknown-option", ["validate", "--bogus"], _nothing, EXIT_BAD_INPUT, "No such option"),
    ("usage-missing-value", ["demo", "--output"], _nothing, EXIT_BAD_INPUT, "requires an argument"),
    ("usage-missing-required", ["plan"], _nothing, EXIT_BAD_INPUT, "Missing option"),
]


def _run(deliver: Callable[..., Result], repo: Path, argv: list[str]) -> Result:
    result: Result = deliver(*(a.replace("{repo}", str(repo)) for a in argv), repo=repo)
    return result


def _error_shape(res: Result, phrase: str) -> None:
    lines = res.err.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    fixes = [line for line in lines if line.startswith("  fix: ") and line.strip() != "fix:"]
    assert errors, f"no error: line in stderr:\n{res.err}"
    assert fixes, f"no fix: line in stderr:\n{res.err}"
    assert any(phrase in line for line in errors), f"{phrase!r} not in the error lines:\n{res.err}"
    assert "Traceback" not in res.err


@pytest.mark.parametrize(
    ("argv", "edit", "code", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_command_follows_the_exit_policy(
    deliver: Callable[..., Result], repo_copy: Path, argv: list[str], edit: Edit, code: int, phrase: str
) -> None:
    edit(repo_copy)
    res = _run(deliver, repo_copy, argv)
    assert res.code == code, f"exit {res.code}, expected {code}\n{res.err}"
    _error_shape(res, phrase)


JSON_CASES = [c for c in CASES if c[0] not in {"usage-missing-value", "root-write-and-check"}]


@pytest.mark.parametrize(
    ("argv", "edit", "code"), [(c[1], c[2], c[3]) for c in JSON_CASES], ids=[c[0] for c in JSON_CASES]
)
def test_every_failure_prints_one_json_document_with_json(
    deliver: Callable[..., Result], repo_copy: Path, argv: list[str], edit: Edit, code: int
) -> None:
    edit(repo_copy)
    res = _run(deliver, repo_copy, [*argv, "--json"])
    assert res.code == code, res.err
    data = json.loads(res.out)  # exactly one document
    assert data["ok"] is False
    assert data.get("problems") or data.get("findings") or data.get("environments"), data
    assert any(line.startswith("error: ") for line in res.err.splitlines())


def test_every_command_is_in_the_table() -> None:
    """A new command must come with its bad-input cases here."""
    covered = {
        " ".join(argv[:2]) if argv[0] in {"config", "layers", "modelcar", "hold"} else argv[0]
        for _, argv, *_ in CASES
    }
    group = cli.main_group
    commands: set[str] = set()
    for name in group.list_commands(None):  # type: ignore[arg-type]
        command = group.get_command(None, name)  # type: ignore[arg-type]
        sub = getattr(command, "commands", None)
        if sub:
            commands.update(f"{name} {s}" for s in sub)
        else:
            commands.add(name)
    exempt = {
        "demo",
        "modelcar busybox-base",
    }  # covered by their own tests (test_demo, test_modelcar_helpers)
    assert commands - covered - exempt == set()


def test_success_exits_zero(deliver: Callable[..., Result], repo_copy: Path) -> None:
    res = _run(deliver, repo_copy, ["config", "check"])
    assert res.code == 0 and res.err == ""
