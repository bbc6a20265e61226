"""How modelcar build cost grows with bytes and with file count (run by hand, not a test).

    .venv/bin/python bench/bench_modelcar_scale.py [--gib 2 8] [--files 10 1000 10000] [--files-mib 256]

- bytes: the same 5-file layout as bench_modelcar.py at each size; cold build to an OCI layout and a
  no-op rebuild, time and peak RSS (the process's own, from wait4), with hashlib on all cores and
  ``cp`` of the same bytes in the same run as the limits;
- files: the same total (``--files-mib``) spread over 10, 1,000 and 10,000 files in 100 directories
  (a tokenizer-heavy or sharded repo); cold build and no-op rebuild.
The sources are made more than 2 s before they are built (files changed just before their read are
never cached: see RACY_NS), and every step runs after ``sync``. Prints the load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "ci"))

from bench_modelcar import hashlib_seconds, make_weights, timed_rss  # noqa: E402
from conftest import find_tool  # noqa: E402
from delivery.core import yamlio  # noqa: E402
from delivery.modelcar.busybox import build_busybox_layout  # noqa: E402

OUT = ROOT / "bench" / "out" / "scale"


def many_files(dest: Path, count: int, total: int) -> list[Path]:
    """``count`` files of ``total`` bytes in all, in 100 directories (each file's bytes distinct)."""
    if dest.is_dir() and len(list(dest.rglob("*.json"))) == count:
        return sorted(dest.rglob("*.json"))
    shutil.rmtree(dest, ignore_errors=True)
    size = total // count
    # at most 1 MiB in memory: a big block held here would count in the peak RSS the build reports
    # (a child's ru_maxrss includes the parent's pages it was forked with)
    block = os.urandom(min(size, 1 << 20))
    files = []
    for i in range(count):
        sub = dest / f"d{i % 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{i:05d}.json"
        with path.open("wb") as fh:
            written = 0
            while written < size:
                chunk = ((i + written).to_bytes(8, "little") + block[8:])[: size - written]
                fh.write(chunk)
                written += len(chunk)
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, nargs="*", default=[2.0, 8.0])
    parser.add_argument("--files", type=int, nargs="*", default=[10, 1000, 10000])
    parser.add_argument("--files-mib", type=int, default=256)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    repo = OUT / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "modelcars").mkdir(parents=True)
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    shutil.copytree(ROOT / "environments", repo / "environments")
    base = build_busybox_layout(Path(find_tool("busybox") or "/bin/busybox").resolve(), repo / "base")
    spec = {"source": {"repo": "bench/model", "revision": "0" * 40}, "base": base.spec_ref, "repository": "b"}
    (repo / "modelcars" / "bench.yaml").write_text(yamlio.dump(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "ci"), "CI": "1"}
    deliver = [sys.executable, "-m", "delivery", "--repo", str(repo), "modelcar", "build", "bench", "--json"]
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")

    def build(source: Path, cache: Path) -> tuple[float, int]:
        subprocess.run(["sync"], check=True)
        secs, rss, _, _ = timed_rss(
            [*deliver, "--source", str(source), "--output", str(OUT / "layout"), "--cache-dir", str(cache)],
            env,
        )
        return secs, rss

    def case(name: str, source: Path, files: list[Path], nbytes: int) -> None:
        time.sleep(max(0.0, 2.5 - (time.time() - max(p.stat().st_ctime for p in files))))  # not racy
        for p in files:  # warm the page cache: every contender reads from memory
            with p.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
        cache = OUT / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(OUT / "layout", ignore_errors=True)
        cold, cold_rss = build(source, cache)
        noop, noop_rss = build(source, cache)
        limit_hash = hashlib_seconds(files, os.cpu_count() or 1)
        shutil.rmtree(OUT / "cp", ignore_errors=True)
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(OUT / "cp")], check=True)
        limit_cp = time.perf_counter() - start
        shutil.rmtree(OUT / "cp", ignore_errors=True)
        limit = max(limit_hash, limit_cp)
        print(
            f"{name:>22}: cold {cold:6.2f} s ({nbytes / cold / 1e9:.2f} GB/s, {limit / cold:.2f}x limit, "
            f"RSS {cold_rss} MiB)  no-op {noop:5.2f} s (RSS {noop_rss} MiB)  "
            f"limits: hashlib {limit_hash:.2f} s, cp {limit_cp:.2f} s; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )

    for gib in args.gib:
        total = int(gib * (1 << 30))
        weights = make_weights(OUT / f"weights-{gib:g}g", total)
        nbytes = sum(p.stat().st_size for p in weights)
        case(f"{nbytes / 1e9:.2f} GB in 5 files", OUT / f"weights-{gib:g}g", weights, nbytes)
        shutil.rmtree(OUT / "layout", ignore_errors=True)
    for count in args.files:
        source = OUT / f"files-{count}"
        files = many_files(source, count, args.files_mib << 20)
        case(f"{count} files, {args.files_mib} MiB", source, files, sum(p.stat().st_size for p in files))
    shutil.rmtree(OUT / "layout", ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
