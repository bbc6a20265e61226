"""Promotion end to end: real git (clones of a bare remote), two real registries on loopback, the CLI.

dev publishes a modelcar into registry A; ``deliver promote --to staging`` copies it into registry B
with the same digest (skopeo confirms), writes staging's release and layers, validates them and lands
one commit with trailers and a ledger entry. Every refusal leaves git, the tree and B untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Registry, Result, running_registry
from delivery.core import yamlio
from delivery.gitops.artifacts import promoted_repository
from delivery.oci.auth import ANONYMOUS
from delivery.oci.blobs import BytesBlob
from delivery.oci.push import push_image
from delivery.oci.registry import RegistryClient
from delivery.oci.spec import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, Descriptor, manifest_json
from test_modelcar_helpers import BaseLayout, busybox_base, point_env_at, small_model, write_spec

__all__ = ["busybox_base"]  # the fixture, imported for this module

MODEL = "qwen2.5-0.5b-instruct"
LATER = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")  # past staging's 24h soak


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def tiny_image(host: str, repository: str, payload: bytes) -> str:
    """Push a one-layer image; returns host/repository@digest."""
    layer = BytesBlob(payload, OCI_LAYER_TAR)
    config = BytesBlob(
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}
        ).encode(),
        OCI_CONFIG,
    )
    manifest = manifest_json(
        Descriptor(OCI_CONFIG, config.digest, config.size),
        [Descriptor(OCI_LAYER_TAR, layer.digest, layer.size)],
    )
    with RegistryClient(host, ANONYMOUS) as client:
        push_image(
            client,
            repository,
            layers=[layer],
            config=config,
            manifest=manifest,
            manifest_media_type=OCI_MANIFEST,
        )
    return f"{host}/{repository}@{BytesBlob(manifest).digest}"


@pytest.fixture
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_KUBE_SCHEMAS", str(REPO.parent / "shared" / "kube-schemas"))
    monkeypatch.setenv("DELIVER_SCHEMA_CACHE", str(REPO / ".cache" / "schemas"))
    monkeypatch.delenv("DELIVER_NOW", raising=False)


@pytest.fixture
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry-b")) as reg:
        yield reg


class Platform:
    """A bare remote and a working clone of the platform repo, dev on registry A, staging/prod on B."""

    def __init__(
        self, root: Path, a: Registry, b: Registry, base: BaseLayout, deliver: Callable[..., Result]
    ) -> None:
        self.a, self.b, self.deliver_fn = a, b, deliver
        seed = root / "seed"
        seed.mkdir()
        shutil.copy2(REPO / "pyproject.toml", seed / "pyproject.toml")
        for name in ("environments", "modelcars", "clusters", "tofu"):
            shutil.copytree(REPO / name, seed / name, ignore=shutil.ignore_patterns(".terraform", "*.tfplan"))
        shutil.copy2(REPO / ".gitattributes", seed / ".gitattributes")
        point_env_at(seed, "dev", a.host)
        point_env_at(seed, "staging", b.host)
        point_env_at(seed, "prod", b.host)
        write_spec(seed, MODEL, base.spec_ref, repository=MODEL)
        self.images = {
            "vllm": tiny_image(a.host, a.unique_repo("vllm"), os.urandom(2048)),
            "vllm-cpu": tiny_image(a.host, a.unique_repo("vllm-cpu"), os.urandom(2048)),
        }
        pins = seed / "clusters" / "pins.yaml"
        for name, ref in self.images.items():
            yamlio.set_path(pins, ["images", name], ref)
        for env in ("dev", "staging", "prod"):
            assert deliver("layers", "render", "--env", env, "--write", repo=seed).code == 0
        git(seed, "init", "-q", "-b", "main")
        git(seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "add", "-A")
        git(seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
        self.remote = root / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(self.remote)], check=True)
        self.repo = self.clone(root / "work")
        self.source = small_model(root / "model")
        self.cache = root / "cache"

    def clone(self, dest: Path) -> Path:
        subprocess.run(["git", "clone", "-q", str(self.remote), str(dest)], check=True)
        git(dest, "config", "user.name", "Promoter")
        git(dest, "config", "user.email", "promoter@example.com")
        return dest

    def deliver(self, *args: str, repo: Path | None = None) -> Result:
        return self.deliver_fn(*args, repo=repo or self.repo)

    def publish_dev(self, repo: Path | None = None) -> dict[str, Any]:
        res = self.deliver(
            "modelcar", "publish", MODEL, "--env", "dev",
            "--allow-unverified-source", "--source", str(self.source),
            "--cache-dir", str(self.cache), "--json", repo=repo,
        )  # fmt: skip
        assert res.code == 0, res.err
        work = repo or self.repo
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "publish")
        out: dict[str, Any] = json.loads(res.out)
        return out


@pytest.fixture
def platform(
    tmp_path: Path,
    registry: Registry,
    second_registry: Registry,
    busybox_base: BaseLayout,
    deliver: Any,
    hermetic: None,
) -> Platform:
    return Platform(tmp_path, registry, second_registry, busybox_base, deliver)


def tags_of(ref: str) -> list[str]:
    """The tags of the repository of ``host/repo@digest`` (loopback, anonymous)."""
    host, _, rest = ref.partition("/")
    with RegistryClient(host, ANONYMOUS) as client:
        return client.list_tags(rest.rpartition("@")[0])


def skopeo_digest(ref: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
    ).stdout
    return BytesBlob(raw).digest


def manifest_absent(host: str, repository: str, digest: str) -> bool:
    with RegistryClient(host, ANONYMOUS) as client:
        try:
            client.get_manifest(repository, digest)
        except Exception:
            return True
    return False


def test_promote_copies_by_digest_and_lands_one_commit(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = platform.publish_dev()
    digest = published["digest"]
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging", "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["ok"] and out["from"] == "dev" and out["commit"]
    target = f"{platform.b.host}/modelcars/{MODEL}@{digest}"
    assert out["artifacts"][MODEL]["new"] == target
    assert skopeo_digest(target) == digest  # same digest in the other registry
    for name, ref in platform.images.items():  # the pinned images moved too, each by its own digest
        moved = out["artifacts"][name]["new"]
        assert moved.startswith(f"{platform.b.host}/modelcars/") and moved.endswith(ref.rpartition("@")[2])
        assert skopeo_digest(moved) == ref.rpartition("@")[2]
    # every image the release deploys carries its protected tag (kept by registry cleanup) in both
    # registries: publish tagged it in dev, promotion in staging, each on exactly that digest
    protected = f"release-sha256-{digest.removeprefix('sha256:')}"
    assert protected in tags_of(f"{platform.a.host}/modelcars/{MODEL}@{digest}")
    assert protected in tags_of(target)
    assert skopeo_digest(f"{platform.b.host}/modelcars/{MODEL}:{protected}") == digest
    for name in platform.images:
        moved = out["artifacts"][name]["new"]
        moved_digest = moved.rpartition("@")[2]
        assert f"release-sha256-{moved_digest.removeprefix('sha256:')}" in tags_of(moved), name
    release = yamlio.plain(yamlio.load_file(platform.repo / "clusters/staging/release.yaml"))
    assert release["artifacts"][MODEL]["ref"] == target
    assert release["artifacts"][MODEL]["source"]["repo"] == "sentence-transformers/all-MiniLM-L6-v2"
    deployment = (
        platform.repo / "clusters/staging/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"
    ).read_text()
    assert target in deployment and out["artifacts"]["vllm"]["new"] in deployment
    # one commit on top, with the trailers and the ledger entry; nothing left uncommitted
    assert git(platform.repo, "rev-parse", "HEAD~1").strip() == head
    message = git(platform.repo, "log", "-1", "--format=%B")
    assert "Promoted-From: dev" in message and "Promoted-To: staging" in message
    assert f"Artifact: {MODEL}@{digest}" in message
    ledger = [
        json.loads(line)
        for line in (platform.repo / "clusters/staging/ledger.jsonl").read_text().splitlines()
    ]
    assert [e["kind"] for e in ledger] == ["promote"]
    assert f"Ledger-Id: {ledger[0]['id']}" in message and ledger[0]["id"] == out["ledgerId"]
    assert {g["gate"]: g["passed"] for g in ledger[0]["gates"]} == {
        "hold": True, "freeze": True, "soak": True, "verified": True, "approval": True,
    }  # fmt: skip
    assert ledger[0]["actor"] == "Promoter <promoter@example.com>" and ledger[0]["upstreamCommit"] == head
    assert git(platform.repo, "status", "--porcelain") == ""
    # the promoted env validates and renders in step with its release
    assert platform.deliver("layers", "render", "--env", "staging", "--check").code == 0
    # promoting again is a no-op
    again = platform.deliver("promote", "--to", "staging", "--json")
    assert again.code == 0 and json.loads(again.out)["commit"] is None
    # history and status show it
    hist = platform.deliver("history", "--env", "staging")
    assert hist.code == 0 and "promote" in hist.out and ledger[0]["id"] in hist.out
    status = platform.deliver("status")
    assert status.code == 0, status.err
    assert digest.removeprefix("sha256:")[:12] in status.out


def test_soak_refusal_changes_nothing(platform: Platform) -> None:
    published = platform.publish_dev()
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    res = platform.deliver("promote", "--to", "staging")
    assert res.code == 1
    assert "soak 24h in dev not met" in res.err and "fix:" in res.err
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head
    assert git(platform.repo, "status", "--porcelain") == ""
    assert manifest_absent(platform.b.host, f"modelcars/{MODEL}", published["digest"])
    dry = platform.deliver("promote", "--to", "staging", "--dry-run")
    assert dry.code == 1 and "REFUSED  soak" in dry.out


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["promote", "--to", "dev"], 2, "is an entry environment"),
        (["promote", "--to", "nope"], 2, "unknown environment"),
        (["promote", "--to", "prod"], 2, "upstream environment 'staging' has no release yet"),
        (["promote", "--to", "staging", "--only", "nothing-like-it"], 2, "--only names nothing-like-it"),
        (["history", "--env", "nope"], 2, "unknown environment"),
        (["rollback", "--env", "staging"], 2, "no previous release"),
        (["hold", "release", "--env", "staging"], 2, "not on hold"),
        (["verify-release", "--env", "prod", "--evidence", "x"], 2, "no release to verify"),
    ],
)
def test_bad_promotions_are_one_clear_error(
    platform: Platform, args: list[str], code: int, phrase: str
) -> None:
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    res = platform.deliver(*args)
    assert res.code == code, res.err
    assert phrase in res.err and "fix:" in res.err and "Traceback" not in res.err
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head
    assert git(platform.repo, "status", "--porcelain") == ""


def test_a_dirty_tree_is_refused_before_anything_runs(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.publish_dev()
    (platform.repo / "stray.txt").write_text("work in progress\n")
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging")
    assert res.code == 2 and "uncommitted changes (stray.txt)" in res.err


def test_freeze_window_refuses_and_break_glass_is_recorded(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.publish_dev()
    cfg = platform.repo / "environments/staging/config.yaml"
    text = cfg.read_text().replace(
        "  approvalRequired: false\n",
        "  approvalRequired: false\n  freezeWindows:\n"
        "    - {start: 2020-01-01T00:00:00Z, end: 2099-01-01T00:00:00Z, reason: launch week}\n",
    )
    cfg.write_text(text)
    git(platform.repo, "commit", "-q", "-am", "freeze")
    monkeypatch.setenv("DELIVER_NOW", LATER)
    refused = platform.deliver("promote", "--to", "staging")
    assert refused.code == 1 and "frozen until 2099-01-01T00:00:00Z: launch week" in refused.err
    ok = platform.deliver("promote", "--to", "staging", "--break-glass", "sev1 hotfix", "--json")
    assert ok.code == 0, ok.err
    ledger = json.loads((platform.repo / "clusters/staging/ledger.jsonl").read_text().splitlines()[-1])
    assert ledger["note"] == "break-glass: sev1 hotfix"
    assert any(g.get("override") == "sev1 hotfix" for g in ledger["gates"])


def test_approval_required_commits_on_a_review_branch(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = platform.publish_dev()
    cfg = platform.repo / "environments/staging/config.yaml"
    cfg.write_text(cfg.read_text().replace("approvalRequired: false", "approvalRequired: true"))
    git(platform.repo, "commit", "-q", "-am", "approval")
    assert platform.deliver("layers", "render", "--env", "staging", "--write").code == 0
    git(platform.repo, "commit", "-q", "-am", "re-render")
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging", "--push", "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    branch = f"promote/staging/{published['digest'].removeprefix('sha256:')[:12]}"
    assert out["reviewBranch"] == branch and out["pushed"]
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head  # main untouched
    assert git(platform.repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(platform.remote, "rev-parse", branch).strip() == out["commit"]
    approved = platform.deliver("promote", "--to", "staging", "--approved-by", "alice", "--json")
    assert approved.code == 0, approved.err
    entry = json.loads((platform.repo / "clusters/staging/ledger.jsonl").read_text().splitlines()[-1])
    assert entry["actor"] == "alice"


def test_rollback_sticks_until_the_hold_is_released(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = platform.publish_dev()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    assert platform.deliver("promote", "--to", "staging").code == 0
    (platform.source / "config.json").write_text('{"model_type": "test", "v": 2}\n')
    monkeypatch.delenv("DELIVER_NOW")
    second = platform.publish_dev()
    assert second["digest"] != first["digest"]
    monkeypatch.setenv("DELIVER_NOW", (datetime.now(UTC) + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert platform.deliver("promote", "--to", "staging").code == 0
    res = platform.deliver("rollback", "--env", "staging", "--json")
    assert res.code == 0, res.err
    release = yamlio.plain(yamlio.load_file(platform.repo / "clusters/staging/release.yaml"))
    assert release["artifacts"][MODEL]["ref"].endswith(first["digest"])
    held = platform.deliver("promote", "--to", "staging")
    assert held.code == 1 and "on hold" in held.err and "deliver hold release --env staging" in held.err
    assert platform.deliver("hold", "release", "--env", "staging").code == 0
    assert platform.deliver("promote", "--to", "staging").code == 0
    release = yamlio.plain(yamlio.load_file(platform.repo / "clusters/staging/release.yaml"))
    assert release["artifacts"][MODEL]["ref"].endswith(second["digest"])
    kinds = [
        json.loads(line)["kind"]
        for line in (platform.repo / "clusters/staging/ledger.jsonl").read_text().splitlines()
    ]
    assert kinds == ["promote", "promote", "rollback", "release-hold", "promote"]


def test_push_rebases_over_a_concurrent_change(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    platform.publish_dev()
    git(platform.repo, "push", "-q", "origin", "main")
    other = platform.clone(tmp_path / "other")
    assert (
        platform.deliver(
            "verify-release", "--env", "dev", "--evidence", "https://ci/run/7", "--push", repo=other
        ).code
        == 0
    )
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging", "--push", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["pushed"]
    log = git(platform.remote, "log", "--format=%s", "main")
    assert log.splitlines()[0].startswith("Promote dev -> staging") and "Verify dev" in log


def _deliver_process(repo: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
    return subprocess.Popen(
        ["deliver", "--repo", str(repo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_promotions_at_once_against_one_remote_lose_no_ledger_entry(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clones promote into staging at the same moment (two processes, one bare remote): one lands;
    the other's push loses the race, so it catches up with the remote and decides again (gates,
    update, validation) on what is there now: here, a no-op. Exactly one ledger entry."""
    platform.publish_dev()
    git(platform.repo, "push", "-q", "origin", "main")
    clones = [platform.clone(tmp_path / name) for name in ("a", "b")]
    monkeypatch.setenv("DELIVER_NOW", LATER)  # the processes inherit it
    procs = [
        _deliver_process(c, "promote", "--to", "staging", "--only", MODEL, "--push", "--json") for c in clones
    ]
    results = [
        (p.wait(timeout=300), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "")
        for p in procs
    ]
    assert [code for code, _, _ in results] == [0, 0], results
    outcomes = [json.loads(out) for _, out, _ in results]
    landed = [o["ledgerId"] for o in outcomes if o["ledgerId"]]
    # one lands; the other lost the push race, caught up, decided again and found nothing left to do
    assert len(landed) == 1, outcomes
    (late,) = [o for o in outcomes if not o["ledgerId"]]
    assert late["commit"] is None and late["attempts"] == 2 and not late["pushed"]
    fresh = platform.clone(tmp_path / "check")
    ledger = [json.loads(line) for line in (fresh / "clusters/staging/ledger.jsonl").read_text().splitlines()]
    assert [e["id"] for e in ledger] == landed  # no entry lost, none duplicated
    assert all(e["kind"] == "promote" for e in ledger)
    release = yamlio.plain(yamlio.load_file(fresh / "clusters/staging/release.yaml"))
    assert release["artifacts"][MODEL]["ref"].startswith(platform.b.host)


def test_concurrent_pushes_to_the_same_branch_both_land(platform: Platform, tmp_path: Path) -> None:
    """Two clones record at once; the rejected push rebases and retries; git's union merge of the ledger
    keeps both lines."""
    platform.publish_dev()
    git(platform.repo, "push", "-q", "origin", "main")
    clones = [platform.clone(tmp_path / name) for name in ("a", "b")]
    procs = [
        _deliver_process(c, "verify-release", "--env", "dev", "--evidence", f"run {i}", "--push")
        for i, c in enumerate(clones)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    fresh = platform.clone(tmp_path / "check")
    lines = (fresh / "clusters/dev/ledger.jsonl").read_text().splitlines()
    notes = sorted(json.loads(line)["note"] for line in lines if json.loads(line)["kind"] == "verify")
    assert notes == ["run 0", "run 1"]


def test_401_on_the_target_registry_changes_nothing(
    platform: Platform, auth_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.publish_dev()
    point_env_at(platform.repo, "staging", auth_registry.host)
    assert platform.deliver("layers", "render", "--env", "staging", "--write").code == 0
    git(platform.repo, "commit", "-q", "-am", "staging on an authenticated registry")
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging", "--only", MODEL)
    assert res.code == 1, res.err
    assert "authentication failed" in res.err and "fix:" in res.err
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head
    assert git(platform.repo, "status", "--porcelain") == ""


def test_a_digest_missing_upstream_is_refused(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = f"{platform.a.host}/modelcars/{MODEL}@sha256:{'ab' * 32}"
    (platform.repo / "clusters/dev/release.yaml").write_text(
        f"env: dev\nartifacts:\n  {MODEL}:\n    kind: modelcar\n    ref: {ref}\n"
    )
    (platform.repo / "clusters/dev/ledger.jsonl").write_text(
        json.dumps({"id": "x1", "time": "2026-01-01T00:00:00Z", "actor": "t", "kind": "publish", "env": "dev",
                    "artifacts": {MODEL: {"old": None, "new": ref}}}) + "\n"
    )  # fmt: skip
    git(platform.repo, "add", "-A")
    git(platform.repo, "commit", "-q", "-m", "a release naming a digest nobody pushed")
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    res = platform.deliver("promote", "--to", "staging", "--only", MODEL)
    assert res.code != 0 and "upstream" in res.err and "fix:" in res.err, res.err
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head
    assert git(platform.repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (
            lambda repo: (repo / "clusters/dev/release.yaml").write_text(
                f"env: dev\nartifacts:\n  {MODEL}: {{kind: modelcar, ref: 'r.example/m:v1'}}\n"
            ),
            "artifacts.qwen2.5-0.5b-instruct.ref",
        ),
        (
            lambda repo: (repo / "environments/dev/config.yaml").write_text(
                (repo / "environments/dev/config.yaml")
                .read_text()
                .replace("promotion:\n", "promotion:\n  from: staging\n", 1)
                if "promotion:\n" in (repo / "environments/dev/config.yaml").read_text()
                else (repo / "environments/dev/config.yaml").read_text() + "promotion:\n  from: staging\n"
            ),
            "promotion.from forms a loop",
        ),
        (
            lambda repo: (repo / "environments/staging/config.yaml").write_text(
                (repo / "environments/staging/config.yaml").read_text().replace("from: dev", "from: staging")
            ),
            "promotion.from names this environment itself",
        ),
    ],
    ids=["tag-in-release", "loop", "itself"],
)
def test_bad_releases_and_configs_are_refused(
    platform: Platform, edit: Callable[[Path], object], phrase: str
) -> None:
    edit(platform.repo)
    git(platform.repo, "add", "-A")
    git(platform.repo, "commit", "-q", "-m", "broken")
    head = git(platform.repo, "rev-parse", "HEAD").strip()
    res = platform.deliver("promote", "--to", "staging")
    assert res.code == 2, res.err
    assert phrase in res.err and "fix:" in res.err
    assert git(platform.repo, "rev-parse", "HEAD").strip() == head


def test_a_second_rollback_walks_further_back(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = platform.repo / "environments/staging/config.yaml"
    staging.write_text(staging.read_text().replace("soak: 24h", "soak: 0s"))
    git(platform.repo, "commit", "-q", "-am", "no soak")
    digests = []
    for version in range(3):
        (platform.source / "config.json").write_text(f'{{"model_type": "test", "v": {version}}}\n')
        digests.append(platform.publish_dev()["digest"])
        assert platform.deliver("promote", "--to", "staging", "--only", MODEL).code == 0

    def running() -> str:
        release = yamlio.plain(yamlio.load_file(platform.repo / "clusters/staging/release.yaml"))
        return str(release["artifacts"][MODEL]["ref"]).rpartition("@")[2]

    assert running() == digests[2]
    assert platform.deliver("rollback", "--env", "staging").code == 0
    assert running() == digests[1]
    second = platform.deliver("rollback", "--env", "staging", "--json")
    assert second.code == 0, second.err
    assert running() == digests[0]  # not back to digests[2], which the first rollback undid
    last = json.loads((platform.repo / "clusters/staging/ledger.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "rollback" and last["restores"]


def test_a_detached_head_and_an_existing_review_branch_are_refused(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.publish_dev()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    git(platform.repo, "checkout", "-q", "--detach")
    detached = platform.deliver("promote", "--to", "staging")
    assert detached.code == 2 and "HEAD is detached" in detached.err
    git(platform.repo, "checkout", "-q", "main")
    cfg = platform.repo / "environments/staging/config.yaml"
    cfg.write_text(cfg.read_text().replace("approvalRequired: false", "approvalRequired: true"))
    assert platform.deliver("layers", "render", "--env", "staging", "--write").code == 0
    git(platform.repo, "commit", "-q", "-am", "approval")
    first = platform.deliver("promote", "--to", "staging", "--only", MODEL, "--json")
    assert first.code == 0, first.err
    branch = json.loads(first.out)["reviewBranch"]
    head = git(platform.repo, "rev-parse", branch).strip()
    again = platform.deliver("promote", "--to", "staging", "--only", MODEL)
    assert again.code == 2 and f"branch {branch} already exists" in again.err
    assert git(platform.repo, "rev-parse", branch).strip() == head  # the review commit is kept


# --------------------------------------------------------------------------- import-images (entry env)


def test_import_images_moves_the_pins_into_the_entry_registry_and_promotion_takes_them_from_there(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_deployment = (
        platform.repo / "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"
    )
    assert platform.images["vllm"] in dev_deployment.read_text()  # before: pulled from where it is pinned
    dry = platform.deliver("import-images", "--env", "dev", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert sorted(json.loads(dry.out)["artifacts"]) == ["vllm", "vllm-cpu"]
    assert (
        git(platform.repo, "status", "--porcelain") == ""
        and not (platform.repo / "clusters/dev/release.yaml").exists()
    )

    res = platform.deliver("import-images", "--env", "dev", "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["kind"] == "import" and out["commit"] and out["ledgerId"]
    for name, pinned in platform.images.items():
        digest = pinned.rpartition("@")[2]
        imported = out["artifacts"][name]["new"]
        # the env's registry (<registry>/<the pinned repo's last part>), the same digest
        assert imported == f"{promoted_repository(f'{platform.a.host}/modelcars', pinned)}@{digest}"
        assert skopeo_digest(imported) == digest
        assert f"release-sha256-{digest.removeprefix('sha256:')}" in tags_of(imported)
    assert out["artifacts"]["vllm"]["new"] in dev_deployment.read_text()  # rendered from the release
    assert "Imported-Into: dev" in git(platform.repo, "log", "-1", "--format=%B")
    assert git(platform.repo, "status", "--porcelain") == ""
    assert platform.deliver("layers", "render", "--env", "dev", "--check").code == 0
    again = platform.deliver("import-images", "--env", "dev")
    assert again.code == 0 and "nothing to do" in again.out

    # staging promotes them from dev's registry (what dev runs), with the modelcar
    platform.publish_dev()
    monkeypatch.setenv("DELIVER_NOW", LATER)
    promoted = platform.deliver("promote", "--to", "staging", "--json")
    assert promoted.code == 0, promoted.err
    copies = {c["source"].rpartition("@")[0]: c for c in json.loads(promoted.out)["copies"]}
    assert out["artifacts"]["vllm"]["new"].rpartition("@")[0] in copies

    # a pin bumped after the import: dev deploys the new pin (not the stale import) and promotes that
    bumped = tiny_image(platform.a.host, platform.a.unique_repo("vllm"), os.urandom(2048))
    yamlio.set_path(platform.repo / "clusters/pins.yaml", ["images", "vllm"], bumped)
    assert platform.deliver("layers", "render", "--env", "dev", "--write").code == 0
    assert bumped in dev_deployment.read_text()
    git(platform.repo, "commit", "-qam", "bump vllm")
    dry_promote = platform.deliver("promote", "--to", "staging", "--dry-run", "--json")
    moved = json.loads(dry_promote.out)["artifacts"]
    assert moved["vllm"]["new"].endswith(bumped.rpartition("@")[2])


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["import-images", "--env", "staging"], "its images arrive by promotion"),
        (["import-images", "--env", "dev", "--only", "nope"], "--only names nope"),
        (["import-images", "--env", "nowhere"], "unknown environment"),
    ],
)
def test_bad_imports_are_one_clear_error(platform: Platform, args: list[str], phrase: str) -> None:
    res = platform.deliver(*args)
    assert res.code == 2 and phrase in res.err and "fix:" in res.err, res.err
    assert git(platform.repo, "status", "--porcelain") == ""
