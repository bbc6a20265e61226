"""`deliver demo`: the main job on the embedded default works end to end and leaves the repo alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import REPO, require_tool


def _tree_state(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in ("environments", "modelcars", "clusters")
        for p in sorted((root / d).rglob("*"))
        if p.is_file()
    }


def test_demo_builds_publishes_and_reads_back(deliver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for tool in ("docker-registry", "busybox", "kubeconform", "skopeo"):
        require_tool(tool)
    before = _tree_state(REPO)
    res = deliver("demo", "--output", str(tmp_path / "demo"), "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["ok"] and out["environments"] == ["dev", "prod", "staging"]
    assert out["resources_validated"] > 0
    assert out["files"] >= 10 and out["bytes"] > 90_000_000  # the real MiniLM weights
    assert out["published"].startswith("oci://127.0.0.1:")
    assert out["published"].endswith("/modelcars/all-minilm-l6-v2@" + out["digest"])
    # the layout is a real OCI layout holding the same digest
    index = json.loads((Path(out["layout"]) / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [out["digest"]]
    inspected = subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", f"oci:{out['layout']}"], capture_output=True, check=True
    )
    assert (
        inspected.stdout == (Path(out["layout"]) / "blobs/sha256" / out["digest"].split(":")[1]).read_bytes()
    )
    assert _tree_state(REPO) == before, "the demo modified the repo"
    # same inputs, same digest: a second run is reproducible
    again = json.loads(deliver("demo", "--output", str(tmp_path / "demo2"), "--json").out)
    assert again["digest"] == out["digest"]
