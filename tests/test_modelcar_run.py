"""Modelcars verified by running them the way KServe does, with real tools.

publish (our client) -> registry fixture -> skopeo copy back -> umoci unpack -> runc as uid 65532:
KServe's modelcar-init check, then its sidecar (``ln -sf /proc/$$/root/models /mnt/models``) and a
second container sharing the sidecar's pid namespace that reads the weights through /mnt/models.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from delivery.core import yamlio
from delivery.modelcar.busybox import BaseLayout
from test_modelcar_helpers import point_env_at, sha256_file, write_spec

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir

UID = 65532
INIT_CHECK = 'echo checking && [ -d /models ] && [ "$(ls -A /models)" ] && echo OK || (echo NOK && exit 1)'
SIDECAR = "ln -sf /proc/$$/root/models /mnt/models && sleep 60"


def _bundle_config(bundle: Path, args: list[str], *, mnt: Path, pid_ns: str | None = None) -> None:
    path = bundle / "config.json"
    cfg = json.loads(path.read_text())
    cfg["process"]["args"] = args
    cfg["process"]["terminal"] = False
    cfg["process"]["user"] = {"uid": UID, "gid": UID}
    cfg["root"]["readonly"] = True
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/mnt"]
    cfg["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(mnt), "options": ["rbind", "rw"]}
    )
    namespaces = [n for n in cfg["linux"]["namespaces"] if n["type"] not in ("network",)]
    if pid_ns is not None:
        namespaces = [n for n in namespaces if n["type"] != "pid"] + [{"type": "pid", "path": pid_ns}]
    cfg["linux"]["namespaces"] = namespaces
    path.write_text(json.dumps(cfg))


def _unpack(umoci: str, layout: str, bundle: Path) -> None:
    subprocess.run([umoci, "unpack", "--image", layout, str(bundle)], check=True, capture_output=True)


def test_published_modelcar_runs_like_kserve_runs_it(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    minilm_dir: Path,
    registry: Any,
    tools: Any,
    tmp_path: Path,
) -> None:
    skopeo, umoci, runc = tools("skopeo"), tools("umoci"), tools("runc")
    write_spec(repo_copy, "minilm", busybox_base.spec_ref, repository="minilm")
    point_env_at(repo_copy, "dev", registry.host)
    cache = str(tmp_path / "cache")
    result = deliver(
        "modelcar", "publish", "minilm", "--env", "dev",
        "--allow-unverified-source", "--source", str(minilm_dir),
        "--cache-dir", cache, "--json", repo=repo_copy,
    )  # fmt: skip
    assert result.code == 0, result.err
    published = json.loads(result.out)
    digest = published["digest"]
    assert published["uri"] == f"oci://{registry.host}/modelcars/minilm@{digest}"
    assert published["bytesSent"] > 90_000_000
    lock = yamlio.plain(yamlio.load_file(repo_copy / "modelcars" / "minilm.lock.yaml"))
    assert lock["manifest"]["digest"] == digest and "images" not in lock
    release = yamlio.plain(yamlio.load_file(repo_copy / "clusters" / "dev" / "release.yaml"))
    assert release["artifacts"]["minilm"]["ref"] == published["uri"].removeprefix("oci://")
    assert release["artifacts"]["minilm"]["source"]["repo"] == "sentence-transformers/all-MiniLM-L6-v2"
    ledger = [json.loads(line) for line in (repo_copy / "clusters/dev/ledger.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["id"]) for e in ledger] == [("publish", published["ledgerId"])]
    assert ledger[0]["artifacts"]["minilm"] == {"old": None, "new": release["artifacts"]["minilm"]["ref"]}

    # A second publish is a no-op: every blob is already there, nothing is uploaded.
    again = deliver(
        "modelcar", "publish", "minilm", "--env", "dev",
        "--allow-unverified-source", "--source", str(minilm_dir),
        "--cache-dir", cache, "--json", repo=repo_copy,
    )  # fmt: skip
    assert again.code == 0, again.err
    assert json.loads(again.out)["bytesSent"] == 0
    assert json.loads(again.out)["ledgerId"] is None  # the release already says so: no new entry
    assert len((repo_copy / "clusters/dev/ledger.jsonl").read_text().splitlines()) == 1
    assert {b["outcome"] for b in json.loads(again.out)["blobs"]} == {"exists"}

    # Pull it back with skopeo (another client) and check the digest is the one we computed.
    layout = tmp_path / "pulled"
    subprocess.run(
        [skopeo, "copy", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers",
         f"docker://{registry.host}/modelcars/minilm@{digest}",
         f"oci:{layout}:pulled"],
        check=True, capture_output=True,
    )  # fmt: skip
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest

    bundle = tmp_path / "bundle"
    _unpack(umoci, f"{layout}:pulled", bundle)
    mnt = tmp_path / "mnt"
    mnt.mkdir(mode=0o777)
    mnt.chmod(0o777)

    # 1. modelcar-init: /models exists and is not empty, as uid 65532
    _bundle_config(bundle, ["sh", "-c", INIT_CHECK], mnt=mnt)
    init = subprocess.run(
        [runc, "run", "--bundle", str(bundle), f"mc-init-{uuid.uuid4().hex[:8]}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip().endswith("OK")

    # 2. the sidecar links its /models into the shared /mnt and sleeps (bounded)
    sidecar_id = f"mc-sidecar-{uuid.uuid4().hex[:8]}"
    _bundle_config(bundle, ["sh", "-c", SIDECAR], mnt=mnt)
    with (tmp_path / "sidecar.log").open("wb") as log:  # a pipe would stay open as long as the container
        subprocess.run(
            [runc, "run", "--detach", "--bundle", str(bundle), sidecar_id],
            check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60,
        )  # fmt: skip
    try:
        state = json.loads(
            subprocess.run([runc, "state", sidecar_id], check=True, capture_output=True).stdout
        )
        reader_bundle = tmp_path / "reader"
        _unpack(umoci, f"{layout}:pulled", reader_bundle)
        files = [f["path"] for f in lock["files"]]
        script = (
            "i=0; while [ ! -e /mnt/models/config.json ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
        )
        script += "cd /mnt/models/ && sha256sum " + " ".join(f"'{f}'" for f in files)
        _bundle_config(reader_bundle, ["sh", "-c", script], mnt=mnt, pid_ns=f"/proc/{state['pid']}/ns/pid")
        reader = subprocess.run(
            [runc, "run", "--bundle", str(reader_bundle), f"mc-reader-{uuid.uuid4().hex[:8]}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert reader.returncode == 0, reader.stderr + reader.stdout
        assert (mnt / "models").is_symlink()
        seen = {}
        for line in reader.stdout.splitlines():
            sha, _, name = line.partition("  ")
            seen[name] = f"sha256:{sha}"
        assert seen == {f["path"]: f["sha256"] for f in lock["files"]}
        # ... and the lock's sums are those of the source files, hashed here independently
        assert seen == {path: "sha256:" + sha256_file(minilm_dir / path) for path in seen}
        assert "model.safetensors" in seen
    finally:
        subprocess.run([runc, "kill", sidecar_id, "KILL"], capture_output=True)
        subprocess.run([runc, "delete", "--force", sidecar_id], capture_output=True)
