"""Benchmark: validate every layer of every environment once the schema bundle is cached.

Target: under 3 s for dev + staging + prod (load, kubeconform, policies). The baseline, measured
in the same run, is the naive way: one kubeconform process per file, one after the other, each
compiling the schemas it needs again. Run: ``.venv/bin/python bench/bench_validate.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ci"))

from delivery import config  # noqa: E402
from delivery.schemas import bundle as schema_bundle  # noqa: E402
from delivery.validation import kubeconform, manifests, validate  # noqa: E402

TARGET_SECONDS = 3.0


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def naive_baseline(repo: Path, bundle: schema_bundle.SchemaBundle, minor: str, files: list[str]) -> float:
    """One kubeconform process per file, sequentially (what a simple CI script does)."""
    binary = kubeconform.kubeconform_binary()
    start = time.perf_counter()
    for name in files:
        args = kubeconform.kubeconform_args(binary, bundle, minor, [name], workers=4)
        subprocess.run(args, cwd=repo, capture_output=True, text=True, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the optimised path")
    opts = parser.parse_args()

    envs = config.list_envs(REPO)
    minors = sorted({config.load_env(REPO, e).cluster.kubernetes_version for e in envs})
    if len(minors) != 1:
        print(f"environments span several Kubernetes minors {minors}; the baseline uses {minors[0]}")
    bundle = schema_bundle.ensure_bundle(REPO, minors)  # cached: not part of the measurement
    files = sorted(str(p.relative_to(REPO)) for e in envs for p in manifests.env_files(REPO, e))
    if not files:
        print("no layer manifests under clusters/*/layers: nothing to benchmark", file=sys.stderr)
        return 1

    validate.validate_envs(REPO)  # warm the page cache and Python imports
    times, cpu = [], []
    for _ in range(opts.runs):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        reports = validate.validate_envs(REPO)
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    resources = sum(r.resources for r in reports)
    findings = sum(len(r.findings) for r in reports)

    start = time.perf_counter()
    single = [r for r in kubeconform.run_kubeconform(REPO, bundle, minors[0], files) if r.get("status")]
    one_process = time.perf_counter() - start

    start_cpu = cpu_seconds()
    baseline = naive_baseline(REPO, bundle, minors[0], files)
    baseline_cpu = cpu_seconds() - start_cpu

    best, median, median_cpu = min(times), statistics.median(times), statistics.median(cpu)
    load = os.getloadavg()[0]
    print(f"environments: {', '.join(envs)}; {len(files)} files, {resources} resources, {findings} findings")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (other work slows every figure)")
    print(f"baseline (kubeconform per file, sequential): {baseline:6.2f} s wall, {baseline_cpu:6.2f} s CPU")
    print(f"kubeconform only, one process -n 1:           {one_process:6.2f} s wall ({len(single)} results)")
    print(
        f"deliver validate, all envs (median of {opts.runs}):   {median:6.2f} s wall, {median_cpu:6.2f} s CPU"
        f"  (best {best:.2f} s)"
    )
    print(
        f"speed-up vs baseline: {baseline / median:.1f}x wall (median), {baseline / best:.1f}x (best), "
        f"{baseline_cpu / median_cpu:.1f}x CPU"
    )
    verdict = "meets" if median < TARGET_SECONDS else "MISSES"
    print(f"target < {TARGET_SECONDS:.0f} s: {verdict} the target (median {median:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
