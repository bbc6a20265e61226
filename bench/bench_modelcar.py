"""Modelcar benchmark (run by hand, not a test): ratios against baselines measured in the same run.

    .venv/bin/python bench/bench_modelcar.py [--gib 2] [--rounds 5]

~2 GB of weights in 5 files under bench/out/ (git-ignored). Measures in the same run, each round:
- the limits: SHA-256 with SHA-NI (hashlib.file_digest on one core and on all cores, one file per
  worker; ``openssl dgst -sha256``), ``cp`` of the bytes (the write limit), coreutils sha256sum
  (no SHA-NI; kept for continuity), and the registry's own ingest limit (curl, one monolithic PUT
  per file, the same registry);
- ours, each as a subprocess of the real CLI (peak RSS is the process's own): cold build to an OCI
  layout, cold push, no-op rebuild+push;
- the peers a user would pick instead: umoci insert per file + skopeo copy, the oras CLI
  (``oras push`` of the same files) and oras-py (``OrasClient.push``, from .venv-scan): time and
  peak RSS.
Every contender runs once per round (fresh registry each time, dirty pages flushed before each
step); the report gives the median of each round's own ratio, so one noisy run cannot make or break
a target, and prints the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "ci"))

from conftest import find_tool, running_registry  # noqa: E402
from delivery.core import yamlio  # noqa: E402
from delivery.core.console import ProgressReporter  # noqa: E402
from delivery.modelcar.busybox import build_busybox_layout  # noqa: E402
from delivery.modelcar.pipeline import BuildOptions  # noqa: E402
from delivery.modelcar.publish import publish as publish_fn  # noqa: E402
from delivery.modelcar.tarlayer import _Stage  # noqa: E402

OUT = ROOT / "bench" / "out" / "modelcar"
ORAS_PY_PYTHON = ROOT / ".venv-scan" / "bin" / "python"
REGISTRY_V3 = ROOT / "bench" / "out" / "bin" / "registry"
SHARES = (0.40, 0.30, 0.18, 0.09, 0.03)


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """User and system CPU seconds a running process has used so far (from /proc)."""
    if pid is None:
        return 0.0, 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Steal:
    """The share of CPU time the hypervisor gave to other guests (``steal`` of /proc/stat) since the
    last ``read``: on a shared VM this, more than the load average, says how noisy a round was."""

    def __init__(self) -> None:
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return fields[7], sum(fields)

    def read(self) -> float:
        now = self._sample()
        steal, total = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return steal / total if total else 0.0


def timed_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, float]:
    """Run ``cmd``: wall seconds, the child's own peak RSS (MiB) from wait4, stdout, its CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:8])} failed ({status})")
    return seconds, usage.ru_maxrss // 1024, out.decode(), usage.ru_utime + usage.ru_stime


def hashlib_seconds(files: list[Path], workers: int) -> float:
    """SHA-256 of every file with hashlib (SHA-NI via OpenSSL), ``workers`` files at once."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path) -> str:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - start


def blob_write_seconds(src: Path, dest: Path, *, kernel: bool) -> float:
    """One file through the layer pass's shape (read once; two SHA-256 and the blob write on three
    threads), the blob written either from the read buffers (``write``, what the build does) or by
    the kernel from the source file (``os.copy_file_range`` after a 1 KiB header): is the kernel
    copy worth its cost (the blob's bytes then come from a second read of the file, not from the
    bytes that were hashed)?"""
    import hashlib

    layer, own = hashlib.sha256(), hashlib.sha256()
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    with src.open("rb", buffering=0) as fh, dest.open("wb", buffering=0) as out:
        out.write(b"\0" * 1024)
        source_fd, offset = fh.fileno(), [0]

        def copy(n: object) -> None:
            assert isinstance(n, int)
            while n:
                done = os.copy_file_range(source_fd, out.fileno(), n, offset[0])
                offset[0] += done
                n -= done

        hasher = _Stage("bench-file-sha256", own.update)
        writer = _Stage("bench-blob-write", copy if kernel else out.write)
        while part := fh.read(2 << 20):
            hasher.put(part)
            writer.put(len(part) if kernel else part)
            layer.update(part)
        hasher.close()
        writer.close()
    seconds = time.perf_counter() - start
    dest.unlink()
    return seconds


def curl_ingest(host: str, files: list[Path], curl: str) -> float:
    """The registry's own ingest limit: one monolithic blob upload per file (POST, then a PUT that
    streams the file: ``--upload-file``; ``--data-binary @file`` would read each file into memory
    first and measure curl, not the registry)."""
    import hashlib
    import re

    digests = {}
    for p in files:
        with p.open("rb") as fh:
            digests[p] = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
    start = time.perf_counter()
    for p in files:
        head = subprocess.run(
            [curl, "-sS", "-X", "POST", "-D", "-", "-o", "/dev/null", f"http://{host}/v2/curl/bench/blobs/uploads/"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        location = re.search(r"(?im)^location:\s*(\S+)", head)
        if location is None:
            raise SystemExit(f"curl: no upload location in {head!r}")
        url = location.group(1)
        url = url if url.startswith("http") else f"http://{host}{url}"
        sep = "&" if "?" in url else "?"
        subprocess.run(
            [curl, "-sS", "-f", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
             "--upload-file", str(p), "-o", "/dev/null", f"{url}{sep}digest={digests[p]}"],
            check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - start


ORAS_PY = """
import sys
import oras.client
client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
client.push(target=sys.argv[2], files=sys.argv[3:], disable_path_validation=True)
"""


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
    parser.add_argument("--rounds", type=int, default=5, help="each contender runs this many times")
    parser.add_argument(
        "--registry",
        default=str(REGISTRY_V3) if REGISTRY_V3.exists() else "docker-registry",
        help="registry executable both contenders push to (default: distribution v3.0.0 built by "
        "bench/setup, else Debian's docker-registry 2.8.2)",
    )
    args = parser.parse_args()
    total = int(args.gib * (1 << 30))
    OUT.mkdir(parents=True, exist_ok=True)
    weights = make_weights(OUT / "weights", total)
    nbytes = sum(p.stat().st_size for p in weights)
    load = os.getloadavg()
    cores = os.cpu_count() or 1
    registry = shutil.which(args.registry) or args.registry
    print(f"data: {nbytes / 1e9:.2f} GB in {len(weights)} files; cpus={cores} load={load[0]:.2f}")
    version = subprocess.run([registry, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"registry: {registry} ({version or 'unknown version'})")

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

    cache = OUT / "cache"
    umoci, skopeo = find_tool("umoci"), find_tool("skopeo")
    oras, curl = find_tool("oras"), find_tool("curl")
    if not (umoci and skopeo and oras and curl and ORAS_PY_PYTHON.exists()):
        raise SystemExit("needs umoci, skopeo, oras, curl and .venv-scan (oras-py): run bash .ci/install")
    config_yaml = repo / "environments" / "dev" / "config.yaml"

    def settle() -> None:
        """Flush the dirty pages a previous step left, so their writeback does not eat the next step's CPU."""
        subprocess.run(["sync"], check=True)

    def cold_publish() -> tuple[float, int, dict[str, object], float]:
        shutil.rmtree(cache, ignore_errors=True)
        settle()
        secs, rss, out, cpu = timed_rss(publish, env)
        return secs, rss, json.loads(out), cpu

    def peer_push(host: str) -> float:
        """umoci insert (one layer per file) into a copy of the base, then skopeo copy."""
        peer = OUT / "peer"
        shutil.rmtree(peer, ignore_errors=True)
        shutil.copytree(OUT / "base", peer)
        settle()
        start = time.perf_counter()
        for p in [*weights, OUT / "weights" / "config.json"]:
            subprocess.run(
                [umoci, "insert", "--image", f"{peer}:latest", str(p), f"/models/{p.name}"],
                check=True, capture_output=True,
            )  # fmt: skip
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{peer}:latest", f"docker://{host}/peer/bench:x"],
            check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - start

    for p in weights:  # warm the page cache so every contender reads from memory
        subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)
    # synthetic weights: no hub listing can vouch for them, so they are published marked unverified
    publish = [*deliver, "publish", "bench", "--env", "dev", "--source", str(OUT / "weights"),
               "--allow-unverified-source", "--cache-dir", str(cache), "--json"]  # fmt: skip
    rounds: list[dict[str, float]] = []
    rss: dict[str, int] = {}
    steal = Steal()
    for n in range(1, args.rounds + 1):
        r: dict[str, float] = {}
        settle()
        r["sha"], peak, _, _ = timed_rss(["sha256sum", *map(str, weights)])
        rss["sha"] = max(rss.get("sha", 0), peak)
        r["hash1"] = hashlib_seconds(weights, 1)
        r["hashN"] = hashlib_seconds(weights, cores)
        r["openssl"], _, _, _ = timed_rss(
            ["sh", "-c", 'cat "$@" | openssl dgst -sha256', "sh", *map(str, weights)]
        )
        shutil.rmtree(OUT / "cp", ignore_errors=True)
        settle()
        r["cp"], _, _, r["cp_cpu"] = timed_rss(["cp", "-r", str(OUT / "weights"), str(OUT / "cp")])
        shutil.rmtree(OUT / "cp", ignore_errors=True)
        r["limit"] = max(r["hashN"], r["cp"])  # the build can go no faster than the slower of the two
        # the floor of the work a verified build must do: every byte hashed twice (layer digest and the
        # file's own sha256, which the hub check and the lock need) and written once, on all cores
        r["floor"] = max((2 * r["hash1"] + r["cp_cpu"]) / cores, r["cp"])
        biggest = max(weights, key=lambda p: p.stat().st_size)
        r["pass_write"] = blob_write_seconds(biggest, OUT / "blob-write", kernel=False)
        r["pass_kernel"] = blob_write_seconds(biggest, OUT / "blob-write", kernel=True)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(OUT / "layout", ignore_errors=True)
        settle()
        r["build"], peak, _, _ = timed_rss(
            [*deliver, "build", "bench", "--source", str(OUT / "weights"), "--output", str(OUT / "layout"),
             "--cache-dir", str(cache), "--json"], env,
        )  # fmt: skip
        rss["build"] = max(rss.get("build", 0), peak)
        # each contender pushes to a fresh registry (empty data directory) on loopback
        with running_registry(OUT / "registry-ours", binary=registry) as reg:
            yamlio.set_path(config_yaml, ["registry"], f"{reg.host}/modelcars")
            before = cpu_seconds(reg.pid)
            r["push"], peak, cold, r["push_cpu"] = cold_publish()
            rss["push"] = max(rss.get("push", 0), peak)
            after = cpu_seconds(reg.pid)
            r["push_registry_user"], r["push_registry_sys"] = after[0] - before[0], after[1] - before[1]
            if n == args.rounds:
                r["noop"], rss["noop"], out, _ = timed_rss(publish, env)  # measured once, in the last round
                noop = json.loads(out)
                # in-process no-op (without interpreter start-up and imports)
                start = time.perf_counter()
                inproc = publish_fn(
                    repo, "bench", "dev", BuildOptions(source_dir=OUT / "weights", cache_dir=cache),
                    ProgressReporter(quiet=True), allow_unverified_source=True,
                )  # fmt: skip
                r["noop_inproc"] = time.perf_counter() - start
        shutil.rmtree(OUT / "registry-ours", ignore_errors=True)
        with running_registry(OUT / "registry-peer", binary=registry) as reg:
            before = cpu_seconds(reg.pid)
            r["peer"] = peer_push(reg.host)
            after = cpu_seconds(reg.pid)
            r["peer_registry_cpu"] = after[0] + after[1] - before[0] - before[1]
        shutil.rmtree(OUT / "registry-peer", ignore_errors=True)
        everything = [*map(str, weights), str(OUT / "weights" / "config.json")]
        with running_registry(OUT / "registry-curl", binary=registry) as reg:
            settle()
            r["curl"] = curl_ingest(reg.host, [*weights, OUT / "weights" / "config.json"], curl)
        shutil.rmtree(OUT / "registry-curl", ignore_errors=True)
        with running_registry(OUT / "registry-oras", binary=registry) as reg:
            settle()
            before = cpu_seconds(reg.pid)
            r["oras"], peak, _, r["oras_cpu"] = timed_rss(
                [
                    oras,
                    "push",
                    "--plain-http",
                    "--disable-path-validation",
                    f"{reg.host}/oras/bench:x",
                    *everything,
                ]
            )
            rss["oras"] = max(rss.get("oras", 0), peak)
            after = cpu_seconds(reg.pid)
            r["oras_registry_cpu"] = after[0] + after[1] - before[0] - before[1]
        shutil.rmtree(OUT / "registry-oras", ignore_errors=True)
        with running_registry(OUT / "registry-oraspy", binary=registry) as reg:
            settle()
            r["oraspy"], peak, _, _ = timed_rss(
                [str(ORAS_PY_PYTHON), "-c", ORAS_PY, reg.host, f"{reg.host}/oraspy/bench:x", *everything]
            )
            rss["oraspy"] = max(rss.get("oraspy", 0), peak)
        shutil.rmtree(OUT / "registry-oraspy", ignore_errors=True)
        # a push on loopback shares the cores with the registry: the CPU both spend, spread over all
        # cores, is as fast as that push can be here
        r["push_floor"] = (r["push_cpu"] + r["push_registry_user"] + r["push_registry_sys"]) / cores
        r["oras_floor"] = (r["oras_cpu"] + r["oras_registry_cpu"]) / cores
        r["steal"] = steal.read()
        rounds.append(r)
        print(
            f"round {n}: hashlib {r['hash1']:.2f} s (1 core) {r['hashN']:.2f} s (all), cp {r['cp']:.2f} s "
            f"({r['cp_cpu']:.2f} s CPU), floor {r['floor']:.2f} s, "
            f"layer pass write() {r['pass_write']:.2f} s / copy_file_range {r['pass_kernel']:.2f} s, "
            f"curl {r['curl']:.2f} s, oras {r['oras']:.2f} s, oras-py {r['oraspy']:.2f} s; "
            f"sha256sum {r['sha']:.2f} s, build {r['build']:.2f} s, push {r['push']:.2f} s, "
            f"peer {r['peer']:.2f} s -> push vs peer {r['peer'] / r['push']:.2f}x "
            f"(CPU: our client {r['push_cpu']:.1f} s, registry {r['push_registry_user']:.1f} s user + "
            f"{r['push_registry_sys']:.1f} s sys during ours, "
            f"{r['peer_registry_cpu']:.1f} s during the peer's; oras CLI {r['oras_cpu']:.1f} s, "
            f"registry {r['oras_registry_cpu']:.1f} s during it; "
            f"load {os.getloadavg()[0]:.2f}, steal {r['steal']:.0%})",
            flush=True,
        )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    def med_ratio(num: str, den: str) -> float:
        return statistics.median(r[num] / r[den] for r in rounds)

    last = rounds[-1]
    rows = [
        ("hashlib sha256, 1 core", med("hash1"), 0),
        (f"hashlib sha256, {cores} cores (limit)", med("hashN"), 0),
        ("openssl dgst -sha256, 1 core", med("openssl"), 0),
        ("cp of the bytes (write limit)", med("cp"), 0),
        ("floor: 2 hashes + a write, all cores", med("floor"), 0),
        ("coreutils sha256sum (no SHA-NI)", med("sha"), rss["sha"]),
        ("curl PUT per file (registry ingest)", med("curl"), 0),
        ("our cold build -> OCI layout", med("build"), rss["build"]),
        ("our cold push -> registry", med("push"), rss["push"]),
        ("peer: umoci insert + skopeo copy", med("peer"), 0),
        ("peer: oras push (CLI)", med("oras"), rss["oras"]),
        ("peer: oras-py OrasClient.push", med("oraspy"), rss["oraspy"]),
        ("our no-op rebuild + push (CLI)", last["noop"], rss["noop"]),
    ]
    print(f"\nmedians of {len(rounds)} round(s); ratios are medians of each round's own ratio")
    print(f"{'step':38} {'seconds':>8} {'GB/s':>6} {'x limit':>8} {'peak RSS MiB':>13}")
    for name, secs, peak in rows:
        shown = str(peak) if peak else "-"
        print(f"{name:38} {secs:8.2f} {nbytes / secs / 1e9:6.2f} {med('limit') / secs:8.2f} {shown:>13}")
    print(f"{'our no-op rebuild + push (in-process)':36} {last['noop_inproc']:8.2f}")
    ratios = sorted(r["peer"] / r["push"] for r in rounds)
    print("'x limit' = max(hashlib on all cores, cp) / the step's time")
    print(f"\ncold build vs limit:     {med_ratio('limit', 'build'):.2f}x  (target >= 0.8)")
    print(
        f"cold build vs floor:     {med_ratio('floor', 'build'):.2f}x  (floor = max((2 x hashlib 1 core + "
        "cp's CPU) / cores, cp): the work a build that checks every file's sha256 cannot skip)"
    )
    big = max(p.stat().st_size for p in weights) / 1e9
    print(
        f"layer pass of the biggest file ({big:.2f} GB) into a blob: write() {med('pass_write'):.2f} s, "
        f"copy_file_range {med('pass_kernel'):.2f} s "
        f"(kernel / write() {med_ratio('pass_kernel', 'pass_write'):.2f})"
    )
    curl_x = med_ratio("curl", "push")
    print(
        f"push time curl / ours: {curl_x:.2f} (curl: the registry's own ingest, one monolithic PUT per file)"
    )
    oras_x, oraspy_x = med_ratio("oras", "push"), med_ratio("oraspy", "push")
    print(
        f"push time oras CLI / ours: {oras_x:.2f}, oras-py / ours: {oraspy_x:.2f} (above 1: ours is faster)"
    )
    print(
        f"push CPU (client + registry, over {cores} cores): ours {med('push_floor'):.2f} s of "
        f"{med('push'):.2f} s ({med_ratio('push_floor', 'push'):.2f}x of its CPU floor), oras CLI "
        f"{med('oras_floor'):.2f} s of {med('oras'):.2f} s ({med_ratio('oras_floor', 'oras'):.2f}x); "
        f"client CPU ours {med('push_cpu'):.1f} s, oras {med('oras_cpu'):.1f} s"
    )
    sha_push, sha_build = med_ratio("sha", "push"), med_ratio("sha", "build")
    print(f"(continuity) cold push vs sha256sum: {sha_push:.2f}x, build {sha_build:.2f}x")
    print(f"cold push vs peer:       {med_ratio('peer', 'push'):.2f}x faster, rounds "
          f"{', '.join(f'{x:.2f}' for x in ratios)}  (target >= 3)")  # fmt: skip
    print(f"no-op rebuild+push:      {last['noop']:.2f} s CLI, {last['noop_inproc']:.2f} s in-process, "
          f"{noop['bytesSent']} blob bytes sent (cold: {cold['bytesSent']}), "
          f"in-process {inproc.bytes_sent}")  # fmt: skip
    print(f"peak RSS:                build {rss['build']} MiB, push {rss['push']} MiB (target < 200); "
          f"oras CLI {rss['oras']} MiB, oras-py {rss['oraspy']} MiB")  # fmt: skip
    stolen = ", ".join(f"{r['steal']:.0%}" for r in rounds)
    print(f"load after: {os.getloadavg()[0]:.2f}; CPU stolen by the hypervisor per round: {stolen}")


if __name__ == "__main__":
    main()
