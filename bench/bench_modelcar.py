"""Modelcar benchmark (run by hand, not a test): ratios against baselines measured in the same run.

    .venv/bin/python bench/bench_modelcar.py [--gib 2]

~2 GB of weights in 5 files under bench/out/ (git-ignored). Measures, each as a subprocess of the
real CLI (so peak RSS is the process's own): sha256sum of the same bytes (the limit), our cold build
to an OCI layout, our cold push to a local registry, the peer (umoci insert per file + skopeo copy),
and our no-op rebuild+push; prints throughput ratios, blob bytes sent and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "ci"))

from conftest import find_tool, running_registry  # noqa: E402
from delivery import yamlio  # noqa: E402
from delivery.modelcar.busybox import build_busybox_layout  # noqa: E402

OUT = ROOT / "bench" / "out" / "modelcar"
SHARES = (0.40, 0.30, 0.18, 0.09, 0.03)


def timed_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Like run(), with the child's own peak RSS from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:8])} failed ({status})")
    return seconds, usage.ru_maxrss // 1024, out.decode()


def make_weights(dest: Path, total: int) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for i, share in enumerate(SHARES):
        path = dest / f"model-{i + 1:05d}-of-{len(SHARES):05d}.safetensors"
        size = int(total * share)
        if not path.exists() or path.stat().st_size != size:
            block = os.urandom(1 << 20)
            with path.open("wb") as fh:
                written = 0
                n = 0
                while written < size:
                    chunk = (n.to_bytes(8, "little") + block[8:])[: size - written]
                    fh.write(chunk)
                    written += len(chunk)
                    n += 1
        files.append(path)
    (dest / "config.json").write_text('{"model_type": "bench"}\n')
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args()
    total = int(args.gib * (1 << 30))
    OUT.mkdir(parents=True, exist_ok=True)
    weights = make_weights(OUT / "weights", total)
    nbytes = sum(p.stat().st_size for p in weights)
    load = os.getloadavg()
    print(f"data: {nbytes / 1e9:.2f} GB in {len(weights)} files; cpus={os.cpu_count()} load={load[0]:.2f}")

    repo = OUT / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    shutil.copytree(ROOT / "environments", repo / "environments")
    (repo / "modelcars").mkdir()
    base = build_busybox_layout(Path(find_tool("busybox") or "/bin/busybox").resolve(), OUT / "base")
    spec = {
        "source": {"repo": "bench/model", "revision": "0" * 40},
        "base": base.spec_ref,
        "repository": "bench",
    }
    (repo / "modelcars" / "bench.yaml").write_text(yamlio.dump(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "ci"), "CI": "1"}
    deliver = [sys.executable, "-m", "delivery", "--repo", str(repo), "modelcar"]

    for p in weights:  # warm the page cache so every contender reads from memory
        subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)
    sha_s, sha_rss, _ = timed_rss(["sha256sum", *map(str, weights)])
    limit = nbytes / sha_s

    cache = OUT / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(OUT / "layout", ignore_errors=True)
    build_s, build_rss, _ = timed_rss(
        [*deliver, "build", "bench", "--source", str(OUT / "weights"), "--output", str(OUT / "layout"),
         "--cache-dir", str(cache), "--json"], env,
    )  # fmt: skip

    with running_registry(OUT / "registry-data-run") as reg:
        yamlio.set_path(repo / "environments" / "dev" / "config.yaml", ["registry"], f"{reg.host}/modelcars")
        shutil.rmtree(cache, ignore_errors=True)
        publish = [*deliver, "publish", "bench", "--env", "dev", "--source", str(OUT / "weights"),
                   "--cache-dir", str(cache), "--json"]  # fmt: skip
        push_s, push_rss, out = timed_rss(publish, env)
        cold = json.loads(out)
        noop_s, noop_rss, out = timed_rss(publish, env)
        noop = json.loads(out)
        # in-process no-op (without interpreter start-up and imports)
        sys.path.insert(0, str(ROOT / "ci"))
        from delivery.console import ProgressReporter
        from delivery.modelcar.build import BuildOptions
        from delivery.modelcar.build import publish as publish_fn

        start = time.perf_counter()
        inproc = publish_fn(
            repo, "bench", "dev", BuildOptions(source_dir=OUT / "weights", cache_dir=cache),
            ProgressReporter(quiet=True),
        )  # fmt: skip
        noop_inproc_s = time.perf_counter() - start

        # the peer: umoci insert (one layer per file) into a copy of the base, then skopeo copy
        umoci, skopeo = find_tool("umoci"), find_tool("skopeo")
        peer = OUT / "peer"
        shutil.rmtree(peer, ignore_errors=True)
        shutil.copytree(OUT / "base", peer)
        start = time.perf_counter()
        for p in [*weights, OUT / "weights" / "config.json"]:
            subprocess.run(
                [umoci, "insert", "--image", f"{peer}:latest", str(p), f"/models/{p.name}"],
                check=True, capture_output=True,
            )  # fmt: skip
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{peer}:latest", f"docker://{reg.host}/peer/bench:x"],
            check=True, capture_output=True,
        )  # fmt: skip
        peer_s = time.perf_counter() - start
        shutil.rmtree(OUT / "registry-data-run", ignore_errors=True)

    rows = [
        ("sha256sum (limit)", sha_s, sha_rss),
        ("our cold build -> OCI layout", build_s, build_rss),
        ("our cold push -> registry", push_s, push_rss),
        ("peer: umoci insert + skopeo copy", peer_s, 0),
        ("our no-op rebuild + push (CLI)", noop_s, noop_rss),
    ]
    print(f"\n{'step':36} {'seconds':>8} {'GB/s':>6} {'x limit':>8} {'peak RSS MiB':>13}")
    for name, secs, rss in rows:
        ratio = (nbytes / secs) / limit
        print(f"{name:36} {secs:8.2f} {nbytes / secs / 1e9:6.2f} {ratio:8.2f} {rss:13}")
    print(f"{'our no-op rebuild + push (in-process)':36} {noop_inproc_s:8.2f}")
    print(f"\ncold push vs sha256sum:  {(nbytes / push_s) / limit:.2f}x  (target >= 0.6)")
    print(f"cold build vs sha256sum: {(nbytes / build_s) / limit:.2f}x  (target >= 0.7)")
    print(f"cold push vs peer:       {peer_s / push_s:.1f}x faster  (target >= 3)")
    print(f"no-op rebuild+push:      {noop_s:.2f} s CLI, {noop_inproc_s:.2f} s in-process, "
          f"{noop['bytesSent']} blob bytes sent (cold: {cold['bytesSent']}), "
          f"in-process {inproc.bytes_sent}")  # fmt: skip
    print(f"peak RSS:                build {build_rss} MiB, push {push_rss} MiB (target < 200)")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
