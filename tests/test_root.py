"""`deliver root`: the root AppProject + one Application per layer of the (cumulative) profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from delivery import config as envconfig
from delivery.gitops import conventions
from delivery.gitops import root as profiles

EXPECTED = {
    "platform": ["platform"],
    "serving": ["platform", "serving"],
    "llm-gateway": ["platform", "serving", "routing", "llm-gateway"],
    "full": ["platform", "serving", "routing", "llm-gateway", "demos"],
}


def _docs(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in YAML(typ="safe").load_all(text) if d]


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_root_selects_the_profile_layers_in_order(deliver, profile: str) -> None:  # type: ignore[no-untyped-def]
    res = deliver("root", "--env", "dev", "--profile", profile)
    assert res.code == 0, res.err
    docs = _docs(res.out)
    assert docs[0]["kind"] == "AppProject" and docs[0]["metadata"]["name"] == "layers"
    apps = docs[1:]
    assert [a["metadata"]["labels"]["llm-platform/layer"] for a in apps] == EXPECTED[profile]
    for wave, (app, layer) in enumerate(zip(apps, EXPECTED[profile], strict=True)):
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        assert app["metadata"]["name"] == f"layer-{layer}"
        assert app["metadata"]["namespace"] == "argocd"
        assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == str(wave)
        src = app["spec"]["source"]
        assert src["path"] == f"clusters/dev/layers/{layer}"
        assert src["repoURL"] == "https://github.com/example-org/llm-platform.git"
        assert src["targetRevision"] == "main"
        assert app["spec"]["project"] == "layers"
        assert app["spec"]["destination"] == {
            "server": "https://kubernetes.default.svc",
            "namespace": "argocd",
        }
    assert f"profile '{profile}'" in res.out.splitlines()[0]


def test_profile_defaults_to_the_environment_s(deliver) -> None:  # type: ignore[no-untyped-def]
    staging = _docs(deliver("root", "--env", "staging").out)
    assert [a["metadata"]["name"] for a in staging[1:]] == [f"layer-{x}" for x in EXPECTED["llm-gateway"]]
    dev = _docs(deliver("root", "--env", "dev").out)
    assert len(dev) == 1 + len(EXPECTED["full"])


def test_values_come_from_the_environment_config(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = repo_copy / "environments/prod/config.yaml"
    text = cfg.read_text().replace("repoBranch: main", "repoBranch: release/prod")
    cfg.write_text(text.replace("example-org/llm-platform.git", "fork-org/platform.git"))
    docs = _docs(deliver("root", "--env", "prod", repo=repo_copy).out)
    assert docs[0]["spec"]["sourceRepos"] == ["https://github.com/fork-org/platform.git"]
    for app in docs[1:]:
        assert app["spec"]["source"]["targetRevision"] == "release/prod"
        assert app["spec"]["source"]["path"].startswith("clusters/prod/layers/")
        assert app["metadata"]["labels"]["llm-platform/env"] == "prod"


def test_output_is_deterministic(deliver) -> None:  # type: ignore[no-untyped-def]
    first = deliver("root", "--env", "prod").out
    assert first == deliver("root", "--env", "prod").out
    cfg = envconfig.load_env(Path(__file__).resolve().parent.parent, "prod")
    assert profiles.render_root(cfg) == first


def test_write_then_check(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    res = deliver("root", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 0 and "clusters/dev/root.yaml" in res.out
    written = (repo_copy / "clusters/dev/root.yaml").read_text()
    assert written == deliver("root", "--env", "dev", repo=repo_copy).out
    assert deliver("root", "--env", "dev", "--check", repo=repo_copy).code == 0
    res = deliver("root", "--env", "dev", "--profile", "serving", "--write", repo=repo_copy)
    assert (repo_copy / "clusters/dev/root-serving.yaml").is_file()
    # config changes -> the written root is stale and --check says how to fix it
    cfg = repo_copy / "environments/dev/config.yaml"
    cfg.write_text(cfg.read_text().replace("repoBranch: main", "repoBranch: develop"))
    res = deliver("root", "--env", "dev", "--check", repo=repo_copy)
    assert res.code == 1
    assert "out of date" in res.err and "deliver root --env dev --write" in res.err
    assert list((repo_copy / "clusters/dev").glob(".*.tmp")) == []


def test_committed_roots_match_config(deliver) -> None:  # type: ignore[no-untyped-def]
    for env in ("dev", "staging", "prod"):
        res = deliver("root", "--env", env, "--check")
        assert res.code == 0, res.err


def test_bad_input(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    res = deliver("root", "--env", "qa", repo=repo_copy)
    assert res.code == 2 and "unknown environment 'qa'" in res.err
    res = deliver("root", "--env", "dev", "--profile", "everything", repo=repo_copy)
    assert res.code == 2 and "everything" in res.err
    cfg = repo_copy / "environments/dev/config.yaml"
    cfg.write_text(cfg.read_text().replace("profile: full", "profile: huge"))
    res = deliver("root", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 2 and "profile" in res.err
    assert (
        not (repo_copy / "clusters/dev/root.yaml").exists()
        or "huge" not in (repo_copy / "clusters/dev/root.yaml").read_text()
    )


def test_layers_for_rejects_unknown_profile() -> None:
    assert conventions.layers_for("serving") == ("platform", "serving")
    with pytest.raises(ValueError, match="unknown profile"):
        conventions.layers_for("nope")


def test_check_fails_when_the_root_was_never_written(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    (repo_copy / "clusters/staging/root.yaml").unlink()
    res = deliver("root", "--env", "staging", "--check", repo=repo_copy)
    assert res.code == 1
    assert "clusters/staging/root.yaml: root manifest is missing or out of date" in res.err
    assert "deliver root --env staging --write" in res.err
