"""Promotion copy benchmark (run by hand, not a test): ratios against peers measured in the same run.

    .venv/bin/python bench/bench_promote.py [--gib 2] [--rounds 3] [--registries docker-registry,v3]

A ~2 GB image (5 uncompressed tar layers of random files, cached under bench/out/promote/) is
pushed once to an upstream loopback registry; then, each round, every contender copies it by digest
to a fresh target registry (new process, empty storage, dirty pages flushed with ``sync`` before
each step): ours (``delivery.promotion.copy.copy_image``, as a subprocess like the others, so
start-up counts), ``skopeo copy --preserve-digests`` and ``crane copy`` (bench/setup installs
crane). The order of contenders rotates per round; the report gives each round's own ratio and
their median, so one noisy run cannot make or break the target (ours >= 1.5x faster than skopeo).
Every copy is checked: the target serves the same digest. Then a same-registry promotion (another
repository of the upstream registry, through a recording proxy): < 1 s and 0 blob bytes sent.
Target storage is tmpfs by default (``--targets``; the upstream stays on disk, page-cached): on this
VM the disk's writeback stalls every contender alike and hides the copiers' own cost. Runs for
each registry given: Debian's ``docker-registry`` (distribution 2.8.2) and distribution v3.0.0
when ``bash bench/setup`` built it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "ci"))

from conftest import find_tool, running_registry  # noqa: E402
from delivery.oci.auth import ANONYMOUS  # noqa: E402
from delivery.oci.blobs import BytesBlob, FileBlob  # noqa: E402
from delivery.oci.push import push_image  # noqa: E402
from delivery.oci.reference import ImageRef  # noqa: E402
from delivery.oci.registry import RegistryClient  # noqa: E402
from delivery.oci.spec import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, Descriptor, manifest_json  # noqa: E402
from delivery.promotion.copy import CopyReport, copy_image  # noqa: E402

OUT = ROOT / "bench" / "out" / "promote"
BIN = ROOT / "bench" / "out" / "bin"
SHARES = (0.40, 0.30, 0.18, 0.09, 0.03)
FILES_PER_LAYER = 3
UPSTREAM_REPO = "dev/bench"


class RandomReader:
    """``size`` bytes of incompressible data, generated as read (a counter stamped on a random block)."""

    def __init__(self, size: int, block: bytes) -> None:
        self.left, self.block, self.n = size, block, 0

    def read(self, amount: int = -1) -> bytes:
        amount = self.left if amount < 0 else min(amount, self.left)
        parts = []
        while amount > 0:
            piece = (self.n.to_bytes(8, "little") + self.block[8:])[:amount]
            parts.append(piece)
            amount -= len(piece)
            self.left -= len(piece)
            self.n += 1
        return b"".join(parts)


def make_layers(total: int) -> list[Path]:
    """Tar layers of random files (cached: rebuilt only when a size changed)."""
    dest = OUT / "layers"
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, share in enumerate(SHARES):
        path = dest / f"layer-{i + 1}.tar"
        stamp = dest / f"layer-{i + 1}.size"
        want = str(int(total * share))
        if not path.exists() or not stamp.exists() or stamp.read_text() != want:
            per_file = int(want) // FILES_PER_LAYER
            with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
                for j in range(FILES_PER_LAYER):
                    info = tarfile.TarInfo(f"models/layer{i + 1}/part-{j + 1}.bin")
                    info.size, info.mtime, info.mode = per_file, 0, 0o644
                    tar.addfile(info, RandomReader(per_file, os.urandom(1 << 20)))
            stamp.write_text(want)
        paths.append(path)
    return paths


def push_upstream(host: str, layers: list[Path]) -> str:
    blobs = [FileBlob.of(p, OCI_LAYER_TAR) for p in layers]
    config = BytesBlob(
        json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode(),
        OCI_CONFIG,
    )
    manifest = manifest_json(
        Descriptor(OCI_CONFIG, config.digest, config.size),
        [Descriptor(OCI_LAYER_TAR, b.digest, b.size) for b in blobs],
    )
    with RegistryClient(host) as client:
        return push_image(
            client,
            UPSTREAM_REPO,
            layers=blobs,
            config=config,
            manifest=manifest,
            manifest_media_type=OCI_MANIFEST,
        ).digest


def timed(cmd: list[str]) -> tuple[float, int, float, str]:
    """Run ``cmd``: wall seconds, the child's own peak RSS (MiB) from wait4, its CPU seconds, stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime, out.decode()


def ours_once(source: str, target: str) -> None:
    """The subprocess side of our contender: one copy_image, its report as JSON on stdout."""
    report = copy_image(
        ImageRef.parse(source),
        ImageRef.parse(target),
        source_credentials=ANONYMOUS,
        target_credentials=ANONYMOUS,
    )
    print(json.dumps(report.as_dict()))


def crane_path() -> str | None:
    found: str | None = find_tool("crane")
    return found or (str(BIN / "crane") if (BIN / "crane").exists() else None)


def settle() -> None:
    subprocess.run(["sync"], check=True)


def bench_registry(
    binary: str, label: str, layers: list[Path], rounds: int, nbytes: int, targets: Path
) -> dict[str, object]:
    skopeo, crane = find_tool("skopeo"), crane_path()
    base = OUT / label
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    with running_registry(base / "upstream", binary=binary) as upstream:
        digest = push_upstream(upstream.host, layers)
        source = f"{upstream.host}/{UPSTREAM_REPO}@{digest}"
        print(f"\n[{label}] {binary}: upstream {source}", flush=True)

        def ours(host: str) -> list[str]:
            return [sys.executable, __file__, "--one", source, f"{host}/prod/bench"]

        def skopeo_copy(host: str) -> list[str]:
            assert skopeo is not None
            return [
                skopeo, "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
                "--dest-tls-verify=false", f"docker://{source}", f"docker://{host}/prod/bench:promoted",
            ]  # fmt: skip

        def crane_copy(host: str) -> list[str]:
            assert crane is not None
            return [crane, "copy", "--insecure", source, f"{host}/prod/bench:promoted"]

        contenders: dict[str, Callable[[str], list[str]]] = {"ours": ours}
        if skopeo:
            contenders["skopeo"] = skopeo_copy
        if crane:
            contenders["crane"] = crane_copy
        names = list(contenders)
        times: dict[str, list[float]] = {name: [] for name in names}
        rss: dict[str, list[int]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            line = []
            for name in order:
                target_dir = targets / f"{label}-{name}-{r}"
                with running_registry(target_dir, binary=binary) as target:
                    settle()
                    secs, peak, used, _ = timed(contenders[name](target.host))
                    with RegistryClient(target.host) as client:
                        if not client.manifest_exists("prod/bench", digest):
                            raise SystemExit(f"{name}: the target has no manifest {digest}")
                times[name].append(secs)
                rss[name].append(peak)
                cpu[name].append(used)
                line.append(
                    f"{name} {secs:.2f}s ({nbytes / secs / 1e9:.2f} GB/s, {peak} MiB, cpu {used:.1f}s)"
                )
                shutil.rmtree(target_dir, ignore_errors=True)
                settle()
            print(f"  round {r + 1} (load {os.getloadavg()[0]:.2f}): " + "; ".join(line), flush=True)
        ratios = {
            peer: statistics.median(p / o for p, o in zip(times[peer], times["ours"], strict=True))
            for peer in names
            if peer != "ours"
        }
        same = [same_registry(upstream.host, digest, f"prod/same{r}") for r in range(rounds)]
    for peer, ratio in ratios.items():
        print(f"  median {peer}/ours time ratio: {ratio:.2f}x (> 1: ours faster)")
    print(
        f"  same-registry promotion: {statistics.median(s for s, _, _ in same):.3f}s median of {rounds}; "
        f"blobs mounted {same[0][1].blobs_mounted}, copied {max(r.blobs_copied for _, r, _ in same)}; "
        f"blob bytes: {max(b for _, _, b in same)} through the proxy, "
        f"{max(r.bytes_sent for _, r, _ in same)} in the report"
    )
    return {
        "registry": label,
        "median_seconds": {n: round(statistics.median(t), 2) for n, t in times.items()},
        "ratios": {n: round(r, 2) for n, r in ratios.items()},
        "peak_rss_mib": {n: max(v) for n, v in rss.items()},
        "median_cpu_seconds": {n: round(statistics.median(v), 2) for n, v in cpu.items()},
        "same_registry_seconds": [round(s, 3) for s, _, _ in same],
    }


def same_registry(host: str, digest: str, repo: str) -> tuple[float, CopyReport, int]:
    """Promote within one registry host (dev/bench -> ``repo``) through a recording proxy."""
    from faultproxy import FaultProxy

    with FaultProxy(host) as proxy:
        start = time.perf_counter()
        report = copy_image(
            ImageRef(proxy.host, UPSTREAM_REPO, digest=digest),
            ImageRef(proxy.host, repo),
            source_credentials=ANONYMOUS,
            target_credentials=ANONYMOUS,
        )
        return time.perf_counter() - start, report, proxy.blob_bytes_sent()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--registries", default="docker-registry,v3", help="docker-registry and/or v3")
    parser.add_argument(
        "--targets",
        type=Path,
        default=Path("/dev/shm/bench-promote") if Path("/dev/shm").is_dir() else OUT / "targets",
        help="where the fresh target registries keep their storage (default: tmpfs)",
    )
    parser.add_argument("--one", nargs=2, metavar=("SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        ours_once(*args.one)
        return
    layers = make_layers(int(args.gib * (1 << 30)))
    nbytes = sum(p.stat().st_size for p in layers)
    skopeo, crane = find_tool("skopeo"), crane_path()
    peers = [
        subprocess.run([skopeo, "--version"], capture_output=True, text=True).stdout.strip()
        if skopeo
        else "no skopeo",
        "crane " + subprocess.run([crane, "version"], capture_output=True, text=True).stdout.strip()
        if crane
        else "no crane (run bash bench/setup)",
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"data: {nbytes / 1e9:.2f} GB in {len(layers)} layers; cpus={os.cpu_count()} load={load}")
    print(f"peers: {'; '.join(peers)}; upstream storage {OUT} (disk), targets {args.targets}")
    results = []
    for name in args.registries.split(","):
        if name == "v3" and not (BIN / "registry").exists():
            print("\n[v3] skipped: run `bash bench/setup` to build distribution v3.0.0")
            continue
        binary = str(BIN / "registry") if name == "v3" else (find_tool(name) or name)
        try:
            results.append(bench_registry(binary, name, layers, args.rounds, nbytes, args.targets))
        finally:
            shutil.rmtree(args.targets, ignore_errors=True)
            shutil.rmtree(OUT / name, ignore_errors=True)
    print("\n" + json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
