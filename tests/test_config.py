"""`deliver config check`: the three envs pass; broken copies fail precisely (file:line, key path, fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery import config as envconfig
from delivery.core.errors import ConfigError, UsageError


def _edit(repo: Path, env: str, old: str, new: str) -> None:
    path = repo / "environments" / env / "config.yaml"
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {env} config"
    path.write_text(text.replace(old, new, 1))


def test_all_shipped_environments_pass(deliver) -> None:  # type: ignore[no-untyped-def]
    res = deliver("config", "check")
    assert res.code == 0, res.err
    for env in ("dev", "staging", "prod"):
        assert f"ok  {env}" in res.out


def test_json_output_lists_environments(deliver) -> None:  # type: ignore[no-untyped-def]
    res = deliver("config", "check", "--json")
    assert res.code == 0
    data = json.loads(res.out)
    assert data == {"ok": True, "environments": ["dev", "prod", "staging"], "problems": []}


def test_loaded_values_are_typed(repo_copy: Path) -> None:
    cfg = envconfig.load_env(repo_copy, "prod")
    assert cfg.name == "prod"
    assert cfg.cluster.region == "europe-west4"
    assert cfg.gpu.min_nodes == 0 and cfg.gpu.max_gpus == 4
    assert cfg.promotion.source == "staging"
    assert cfg.promotion.soak_time.total_seconds() == 72 * 3600
    assert cfg.promotion.freeze_windows[0].reason == "year-end change freeze"
    assert envconfig.load_env(repo_copy, "dev").features.llm_d is False


# (env, old text, new text, expected fragments of the error) — each a different kind of mistake
BROKEN = [
    pytest.param(
        "dev",
        "  name: llm-dev\n",
        "  name: llm-dev\n  nmae: typo\n",
        ["cluster.nmae", "unknown key"],
        id="unknown-key",
    ),
    pytest.param(
        "dev",
        "  perNode: 1\n",
        '  perNode: "1"\n',
        ["gpu.perNode", "expected an integer"],
        id="wrong-type-int",
    ),
    pytest.param(
        "dev",
        'kubernetesVersion: "1.34"',
        "kubernetesVersion: 1.34",
        ["cluster.kubernetesVersion", "quote"],
        id="unquoted-version",
    ),
    pytest.param(
        "dev", "profile: full", "profile: everything", ["profile", "expected one of"], id="bad-profile-enum"
    ),
    pytest.param(
        "dev",
        "  type: nvidia-l4\n",
        "  type: nvidia-gtx-1080\n",
        ["gpu.type", "expected one of"],
        id="bad-gpu-enum",
    ),
    pytest.param(
        "dev",
        "domain: dev.llm.example.com\n",
        "",
        ["domain", "required key is missing"],
        id="missing-required",
    ),
    pytest.param(
        "dev",
        "  llm-d: false",
        "  llm-d: yes please",
        ["features.llm-d", "expected a boolean"],
        id="wrong-type-bool",
    ),
    pytest.param(
        "dev",
        "  llm-d: false",
        "  llm-d: true",
        ["features.llm-d is true", "at most 1 GPU"],
        id="llm-d-one-gpu",
    ),
    pytest.param(
        "staging",
        "  demos: false",
        "  demos: true",
        ["features.demos", "no demos layer"],
        id="demos-outside-full",
    ),
    pytest.param(
        "staging",
        "  from: dev",
        "  from: qa",
        ["promotion.from", "unknown environment 'qa'"],
        id="unknown-upstream",
    ),
    pytest.param(
        "dev",
        "promotion:\n",
        "promotion:\n  from: prod\n",
        ["promotion.from forms a loop"],
        id="promotion-loop",
    ),
    pytest.param(
        "staging",
        "  from: dev",
        "  from: staging",
        ["promotion.from names this environment itself"],
        id="self-promotion",
    ),
    pytest.param(
        "dev",
        "  model: qwen2.5-0.5b-instruct",
        "  model: llama-99b",
        ["serving.model 'llama-99b'", "no modelcar spec"],
        id="model-without-spec",
    ),
    pytest.param(
        "dev",
        "  maxNodes: 1 ",
        "  maxNodes: 0 ",
        ["gpu.maxNodes", "greater than or equal to 1"],
        id="gpu-max-zero",
    ),
    pytest.param(
        "dev",
        "  maxNodes: 1 ",
        "  maxNodes: 1\n  minNodes: 1\n ",
        ["gpu.minNodes", "unknown key"],
        id="gpu-min-not-allowed",
    ),
    pytest.param(
        "dev", "  soak: 0s", "  soak: one day", ["promotion.soak", "does not match"], id="bad-duration"
    ),
    pytest.param(
        "prod",
        "      end: 2027-01-04T00:00:00Z",
        "      end: 2026-12-01T00:00:00Z",
        ["freezeWindows.0: end is not after start"],
        id="freeze-window-backwards",
    ),
    pytest.param(
        "prod",
        "    - start: 2026-12-21T00:00:00Z",
        "    - start: 2026-12-21T00:00:00",
        ["freezeWindows.0.start", "timezone"],
        id="freeze-window-naive",
    ),
    pytest.param(
        "dev",
        "registry: europe-west4-docker.pkg.dev/llm-platform-dev/modelcars",
        "registry: Europe/Models",
        ["registry", "does not match"],
        id="bad-registry",
    ),
    pytest.param(
        "staging",
        "  deleteUntaggedOlderThan: 30d      # untagged versions (superseded pushes), at least 1d",
        "  deleteUntaggedOlderThan: 30d\n  deleteTagged: {olderThan: 90d, tagPrefixes: [build-, rel]}",
        ["registryCleanup.deleteTagged.tagPrefixes", "tag prefix 'rel' could match release-* tags"],
        id="cleanup-could-delete-a-release",
    ),
    pytest.param(
        "prod",
        "  deleteUntaggedOlderThan: 30d      # untagged versions (superseded pushes), at least 1d",
        "  deleteUntaggedOlderThan: 1h",
        ["registryCleanup.deleteUntaggedOlderThan", "1h is too young"],
        id="cleanup-of-images-being-pushed",
    ),
    pytest.param(
        "dev",
        "  keepRecent: 10                    # the 10 most recent versions, whatever their age",
        "  keepRecent: 0",
        ["registryCleanup.keepRecent"],
        id="cleanup-keeps-nothing-recent",
    ),
    pytest.param(
        "prod",
        "  deleteUntaggedOlderThan: 30d      # untagged versions (superseded pushes), at least 1d",
        "  deleteUntaggedOlderThan: 99999999999d",
        ["registryCleanup.deleteUntaggedOlderThan", "does not match"],
        id="cleanup-duration-overflow",
    ),
    pytest.param(
        "staging",
        "  projectID: llm-platform-staging",
        "  projectID: llm-platform-dev",
        ["cluster.projectID 'llm-platform-dev' is also dev's: each environment needs its own"],
        id="two-envs-one-project",
    ),
    pytest.param(
        "dev",
        "  projectID: llm-platform-dev",
        "  projectID: 1bad",
        ["cluster.projectID"],
        id="bad-project-id",
    ),
    pytest.param(
        "dev",
        "  location: europe-west4-a",
        "  location: europe-west4",
        ["cluster.location"],
        id="region-not-zone",
    ),
    pytest.param(
        "dev",
        "gpu:\n",
        "gpu: [1, 2]\nold_gpu:\n",
        ["gpu: got a list", "expected a mapping"],
        id="section-wrong-shape",
    ),
]


@pytest.mark.parametrize(("env", "old", "new", "expected"), BROKEN)
def test_broken_config_fails_precisely(
    deliver,
    repo_copy: Path,
    env: str,
    old: str,
    new: str,
    expected: list[str],  # type: ignore[no-untyped-def]
) -> None:
    _edit(repo_copy, env, old, new)
    before = {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()}
    res = deliver("config", "check", repo=repo_copy)
    assert res.code == 2, res.out + res.err
    assert f"environments/{env}/config.yaml" in res.err
    for fragment in expected:
        assert fragment in res.err, f"{fragment!r} missing from:\n{res.err}"
    assert "fix:" in res.err
    assert f"ok  {env}" not in res.out
    assert before == {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()}, "check wrote files"


def test_error_names_the_line(repo_copy: Path) -> None:
    _edit(repo_copy, "dev", "  perNode: 1\n", "  perNode: many\n")
    with pytest.raises(ConfigError) as exc:
        envconfig.load_env(repo_copy, "dev")
    lines = (repo_copy / "environments/dev/config.yaml").read_text().splitlines()
    lineno = next(i for i, line in enumerate(lines, 1) if "perNode: many" in line)
    where = exc.value.problems[0].where
    assert (where.file, where.line, where.key) == ("environments/dev/config.yaml", lineno, "gpu.perNode")
    assert str(where) == f"environments/dev/config.yaml:{lineno}: gpu.perNode"


def test_all_errors_of_a_file_are_reported_at_once(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    _edit(repo_copy, "dev", "profile: full", "profile: huge")
    _edit(repo_copy, "dev", "  perNode: 1\n", "  perNode: -1\n")
    _edit(repo_copy, "dev", "  name: llm-dev\n", "  name: Bad_Name\n  colour: blue\n")
    res = deliver("config", "check", "--env", "dev", "--json", repo=repo_copy)
    assert res.code == 2
    data = json.loads(res.out)
    keys = [p["location"]["key"] for p in data["problems"]]
    assert len(keys) == 4, data["problems"]
    assert set(keys) == {"profile", "gpu.perNode", "cluster.name", "cluster.colour"}


def test_yaml_syntax_and_duplicate_keys_are_errors(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    _edit(repo_copy, "dev", "profile: full\n", "profile: full\nprofile: serving\n")
    res = deliver("config", "check", "--env", "dev", repo=repo_copy)
    assert res.code == 2
    assert "environments/dev/config.yaml:" in res.err and "not valid YAML" in res.err
    _edit(repo_copy, "dev", "profile: serving\n", "profile: [unclosed\n")
    assert deliver("config", "check", "--env", "dev", repo=repo_copy).code == 2


def test_only_the_selected_env_is_reported(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    _edit(repo_copy, "staging", "profile: llm-gateway", "profile: nope")
    assert deliver("config", "check", "--env", "dev", repo=repo_copy).code == 0
    res = deliver("config", "check", repo=repo_copy)
    assert res.code == 2 and "environments/staging/config.yaml" in res.err


def test_unknown_env_is_a_usage_error(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    res = deliver("config", "check", "--env", "qa", repo=repo_copy)
    assert res.code == 2
    assert "unknown environment 'qa' (known: dev, prod, staging)" in res.err
    with pytest.raises(UsageError):
        envconfig.load_env(repo_copy, "../dev")


def test_repo_without_environments_is_a_clear_error(deliver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = deliver("config", "check", repo=tmp_path)
    assert res.code == 2
    assert "no platform repo found" in res.err or "no environments" in res.err


def test_new_environment_is_picked_up(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    qa = repo_copy / "environments" / "qa"
    qa.mkdir()
    text = (repo_copy / "environments/dev/config.yaml").read_text().replace("llm-dev", "llm-qa")
    (qa / "config.yaml").write_text(text)
    shared = deliver("config", "check", repo=repo_copy)  # a copy of dev still has dev's project
    assert shared.code == 2 and "cluster.projectID 'llm-platform-dev' is also dev's" in shared.err
    (qa / "config.yaml").write_text(text.replace("llm-platform-dev", "llm-platform-qa"))
    res = deliver("config", "check", repo=repo_copy)
    assert res.code == 0 and "ok  qa" in res.out


def test_json_errors_are_json_and_do_not_leak_into_the_next_run(deliver) -> None:  # type: ignore[no-untyped-def]
    failed = deliver("config", "check", "--env", "nope", "--json")
    assert failed.code == 2
    data = json.loads(failed.out)
    assert data["ok"] is False and data["error"] == "UsageError"
    assert "unknown environment 'nope'" in data["problems"][0]["what"] and data["problems"][0]["fix"]
    assert "error:" in failed.err  # people still read the error on stderr
    # a click usage error is JSON too under --json
    usage = deliver("config", "check", "--json", "--env")
    assert usage.code == 2 and json.loads(usage.out)["ok"] is False
    assert "--env" in json.loads(usage.out)["problems"][0]["what"]
    # the next invocation in the same process, without --json, prints no JSON
    plain = deliver("config", "check", "--env", "nope")
    assert plain.code == 2 and plain.out == "" and "error:" in plain.err


def test_semantic_and_cross_file_problems_are_reported_together_with_lines(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    """A semantic problem (demos outside the full profile) no longer hides the cross-file ones
    (an unknown upstream env, a model without a spec): one run lists all three, each at its line."""
    _edit(repo_copy, "staging", "demos: false", "demos: true")
    _edit(repo_copy, "staging", "from: dev", "from: qa")
    _edit(repo_copy, "staging", "model: qwen2.5-0.5b-instruct", "model: no-such-model")
    res = deliver("config", "check", "--env", "staging", repo=repo_copy)
    assert res.code == 2, res.err
    text = (repo_copy / "environments/staging/config.yaml").read_text().splitlines()

    def line(fragment: str) -> int:
        return next(i for i, t in enumerate(text, 1) if fragment in t)

    for where, what in (
        (f"environments/staging/config.yaml:{line('demos: true')}: features.demos", "no demos layer"),
        (f"environments/staging/config.yaml:{line('from: qa')}: promotion.from", "unknown environment 'qa'"),
        (
            f"environments/staging/config.yaml:{line('model: no-such-model')}: serving.model",
            "no modelcar spec",
        ),
    ):
        assert f"{where}: " in res.err and what in res.err, res.err
