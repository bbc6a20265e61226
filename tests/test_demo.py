"""`deliver demo`: the main job on the embedded default works end to end and leaves the repo alone.

Real tools only: two loopback registries (restarted over the demo's data to read both back), real
git (the scratch repo and its bare remote), kubeconform, skopeo, busybox.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import REPO, require_tool, running_registry
from delivery.config import load_env
from delivery.oci import ImageRef, RegistryClient
from delivery.release import read_ledger, read_release

MODEL = "all-minilm-l6-v2"
# the paths the demo reads from the repo (and must never change there)
DATA_PATHS = (
    "environments",
    "modelcars",
    "clusters",
    "tofu",
    "pyproject.toml",
    ".gitattributes",
    ".gitignore",
)


def _tree_state(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in ("environments", "modelcars", "clusters")
        for p in sorted((root / d).rglob("*"))
        if p.is_file()
    }


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _repo_status() -> str:
    """The repo's git status over what the demo reads (other paths may be edited meanwhile)."""
    return _git(REPO, "status", "--porcelain=v1", "--untracked-files=all", "--", *DATA_PATHS)


def _manifest(registry_data: Path, uri: str) -> tuple[str, bytes]:
    """Restart a registry over the demo's data directory and fetch ``uri``'s manifest by digest."""
    ref = ImageRef.parse(uri.removeprefix("oci://"))
    with running_registry(registry_data) as reg, RegistryClient(reg.host) as client:
        got = client.get_manifest(ref.repository, ref.digest or "")
    return got.digest, got.data


def test_demo_builds_publishes_promotes_and_reads_back(deliver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for tool in ("docker-registry", "busybox", "kubeconform", "skopeo", "git"):
        require_tool(tool)
    before, status_before = _tree_state(REPO), _repo_status()
    demo = tmp_path / "demo"
    res = deliver("demo", "--output", str(demo), "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["ok"] and out["environments"] == ["dev", "prod", "staging"]
    assert out["resources_validated"] > 0
    assert out["files"] >= 10 and out["bytes"] > 90_000_000  # the real MiniLM weights
    assert out["published"].startswith("oci://127.0.0.1:")
    assert out["published"].endswith(f"/modelcars/{MODEL}@" + out["digest"])
    # the layout is a real OCI layout holding the same digest
    index = json.loads((Path(out["layout"]) / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [out["digest"]]
    inspected = subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", f"oci:{out['layout']}"], capture_output=True, check=True
    )
    assert (
        inspected.stdout == (Path(out["layout"]) / "blobs/sha256" / out["digest"].split(":")[1]).read_bytes()
    )

    # promoted: the same digest in a second registry, on another port
    dev_ref = ImageRef.parse(out["published"].removeprefix("oci://"))
    stg_ref = ImageRef.parse(out["promoted"].removeprefix("oci://"))
    assert stg_ref.registry.startswith("127.0.0.1:") and stg_ref.registry != dev_ref.registry
    assert stg_ref.repository == dev_ref.repository and stg_ref.digest == out["digest"]
    dev_digest, dev_bytes = _manifest(demo / "registry" / "dev", out["published"])
    stg_digest, stg_bytes = _manifest(demo / "registry" / "staging", out["promoted"])
    assert dev_digest == stg_digest == out["digest"] and dev_bytes == stg_bytes

    # the promotion's outcome: dev -> staging, only the model, every gate passed, pushed
    promotion = out["promotion"]
    assert promotion["ok"] and promotion["kind"] == "promote" and promotion["pushed"]
    assert (promotion["env"], promotion["from"]) == ("staging", "dev")
    assert promotion["artifacts"] == {MODEL: {"old": None, "new": out["promoted"].removeprefix("oci://")}}
    assert all(g["passed"] for g in promotion["gates"]) and {g["gate"] for g in promotion["gates"]} >= {
        "soak"
    }
    assert [c["target"] for c in promotion["copies"]] and promotion["commit"] == out["commit"]
    assert promotion["ledgerId"] == out["ledgerId"]

    # the scratch repo: staging's release and ledger written and committed, the tree clean
    scratch, remote = Path(out["scratch"]), Path(out["remote"])
    assert scratch == demo / "repo" and remote == demo / "remote.git"
    release = read_release(scratch, "staging")
    assert release is not None and release.artifacts[MODEL].ref == out["promoted"].removeprefix("oci://")
    assert [e.id for e in read_ledger(scratch, "staging")] == [out["ledgerId"]]
    assert read_ledger(scratch, "staging")[0].kind == "promote"
    assert _git(scratch, "status", "--porcelain") == ""
    assert _git(scratch, "rev-parse", "HEAD") == out["commit"]
    message = _git(scratch, "log", "-1", "--format=%an <%ae>%n%B")
    assert message.startswith("deliver demo <") and "Promoted-To: staging" in message
    assert f"Ledger-Id: {out['ledgerId']}" in message
    # ... pushed to the bare remote
    assert _git(remote, "rev-parse", "--is-bare-repository") == "true"
    assert _git(remote, "rev-parse", "refs/heads/main") == out["commit"]
    # the scratch config says what the demo changed; the repo's does not change
    scratch_staging = load_env(scratch, "staging")
    assert scratch_staging.promotion.soak == "0s"
    assert scratch_staging.registry == f"{stg_ref.registry}/modelcars"
    assert load_env(REPO, "staging").promotion.soak == "24h"
    assert any("soak" in n and "0s" in n for n in out["notes"])
    assert any("pins.yaml" in n for n in out["notes"])

    # status: staging runs the model by the same digest, in step with dev
    cells = {(c["env"], c["artifact"]): c for c in out["status"]}
    staging = cells[("staging", MODEL)]
    assert staging["ref"] == out["promoted"].removeprefix("oci://") and staging["pending"] == "in step"
    assert staging["upstream"] == out["published"].removeprefix("oci://") and staging["since"]
    assert cells[("dev", MODEL)]["ref"] == staging["upstream"]

    # the repo itself is untouched
    assert _tree_state(REPO) == before, "the demo modified the repo"
    assert _repo_status() == status_before, "the demo changed the repo's git status"

    # same inputs, same digest: a second run is reproducible; its text output ends with the status table
    text = deliver("demo", "--output", str(tmp_path / "demo2"))
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0].startswith("oci://127.0.0.1:") and lines[0].endswith("@" + out["digest"])
    assert lines[1].startswith("promoted to staging: oci://127.0.0.1:") and out["digest"] in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("ENV "))
    assert lines[header].split() == ["ENV", "ARTIFACT", "DEPLOYED", "SINCE", "UPSTREAM", "PENDING"]
    row = next(line for line in lines[header:] if line.split()[:2] == ["staging", MODEL])
    short = out["digest"].removeprefix("sha256:")[:12]
    assert row.split()[2] == short and row.split()[4] == short and row.endswith("in step")
    assert _repo_status() == status_before
