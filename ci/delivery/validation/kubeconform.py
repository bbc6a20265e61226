"""kubeconform: find the binary, build its command line, split files over processes, read its JSON.

kubeconform runs with ``-strict -output json -verbose -summary`` against the schema bundle and is
never told to ignore missing schemas: a kind without a schema is an error. Its exit code cannot
tell invalid manifests from a broken run, so the JSON is parsed instead.
"""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from delivery.core.errors import ToolError
from delivery.schemas import SchemaBundle, schema_relpath

KUBECONFORM_ENV = "KUBECONFORM"
KUBECONFORM_CHECK = "kubeconform"


def kubeconform_binary() -> str:
    """Path of kubeconform: ``$KUBECONFORM``, PATH, or ~/go/bin (where ``go install`` puts it)."""
    override = os.environ.get(KUBECONFORM_ENV)
    candidates = [override] if override else []
    found = shutil.which("kubeconform")
    candidates += [found] if found else []
    gopath = Path(os.environ.get("GOPATH", str(Path.home() / "go")))
    candidates += [str(gopath / "bin" / "kubeconform"), str(Path.home() / "go" / "bin" / "kubeconform")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolError(
        "kubeconform not found",
        where=f"${KUBECONFORM_ENV}" if override else "PATH",
        fix="run bash .ci/install (go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0) "
        f"or set {KUBECONFORM_ENV}=/path/to/kubeconform",
    )


def kubeconform_args(
    binary: str, bundle: SchemaBundle, minor: str, files: Sequence[str], workers: int = 1
) -> list[str]:
    """The kubeconform command line: strict, JSON, every resource reported, hermetic schemas only.

    One worker per process by default: kubeconform's workers each compile a schema they have not
    seen yet, so several workers compile the same big schema in parallel; parallelism comes from
    several processes over disjoint kinds instead (``partition_files``).
    """
    args = [
        binary,
        "-strict",
        "-summary",
        "-verbose",
        "-output",
        "json",
        "-kubernetes-version",
        f"{minor}.0",
        "-n",
        str(workers),
    ]
    for location in bundle.locations():
        args += ["-schema-location", location]
    return [*args, *files]


# Relative cost of validating one more resource, next to compiling a schema (cost: its size).
_PER_FILE_COST = 4096


def partition_files(
    files: Sequence[str], kinds_of: Mapping[str, set[str]], cost: Mapping[str, int], parts: int
) -> list[list[str]]:
    """Split ``files`` into at most ``parts`` balanced groups that share as few schemas as possible.

    Compiling a schema dominates kubeconform's time, so a file goes to the group where it adds the
    least work (a group that already holds its kinds pays only for the resource itself), and among
    equals to the least loaded group.
    """
    parts = max(1, min(parts, len(files)))
    groups: list[list[str]] = [[] for _ in range(parts)]
    seen: list[set[str]] = [set() for _ in range(parts)]
    load = [0] * parts

    def weight(name: str) -> int:
        return sum(cost.get(k, 0) for k in kinds_of.get(name, set()))

    for name in sorted(files, key=lambda f: (-weight(f), f)):
        kinds = kinds_of.get(name, set())

        def added(i: int, kinds: set[str] = kinds) -> int:
            return sum(cost.get(k, 0) for k in kinds - seen[i]) + _PER_FILE_COST

        best = min(range(parts), key=lambda i: (added(i), load[i], i))
        load[best] += added(best)
        seen[best] |= kinds
        groups[best].append(name)
    return [sorted(g) for g in groups if g]


def _parse_report(proc: subprocess.CompletedProcess[str], args: Sequence[str]) -> list[dict[str, Any]]:
    try:
        out = json.loads(proc.stdout)
        results = out["resources"]
        if not isinstance(results, list):
            raise TypeError("resources is not a list")
    except (ValueError, KeyError, TypeError):
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolError(
            f"kubeconform failed (exit {proc.returncode}) without a JSON report: "
            + (detail[0] if detail else "no output"),
            where=" ".join(args[:2]),
            fix="check the kubeconform version (v0.7.0) and the schema bundle (deliver schemas)",
        ) from None
    return results


def run_kubeconform(
    repo: Path,
    bundle: SchemaBundle,
    minor: str,
    files: Sequence[str],
    binary: str | None = None,
    *,
    kinds_of: Mapping[str, set[str]] | None = None,
    processes: int = 1,
) -> list[dict[str, Any]]:
    """Run kubeconform on ``files`` (relative to ``repo``) and return its parsed resource results.

    With ``processes`` > 1 the files are split by kind (``kinds_of``: file -> "apiVersion/Kind")
    over that many kubeconform processes running at once.
    """
    if not files:
        return []  # kubeconform would read stdin
    exe = binary or kubeconform_binary()
    cost = {k: _schema_size(bundle, minor, k) for kinds in (kinds_of or {}).values() for k in kinds}
    groups = partition_files(files, kinds_of or {}, cost, processes) if processes > 1 else [list(files)]
    commands = [kubeconform_args(exe, bundle, minor, group) for group in groups]
    running = [
        subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results: list[dict[str, Any]] = []
    for cmd, proc in zip(commands, running, strict=True):
        out, err = proc.communicate()
        results += _parse_report(subprocess.CompletedProcess(cmd, proc.returncode, out, err), cmd)
    return results


def _schema_size(bundle: SchemaBundle, minor: str, gvk: str) -> int:
    api_version, _, kind = gvk.rpartition("/")
    rel = schema_relpath(api_version, kind)
    for path in (
        bundle.root / "kubernetes" / f"v{minor}.0-standalone-strict" / rel,
        bundle.root / "crds" / "standalone-strict" / rel,
    ):
        try:
            return path.stat().st_size
        except OSError:
            continue
    return 0


def default_processes() -> int:
    """kubeconform processes to run at once: one per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


_CAUSE = re.compile(r"- at '(?P<path>[^']*)': (?P<msg>.*?)(?=\s+- at '|\Z)", re.DOTALL)


def leaf_causes(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON path, message) of each leaf validation error of an invalid resource.

    kubeconform's ``validationErrors`` keeps only the top-level causes ("validation failed" at
    ``/spec``); its ``msg`` holds the whole tree, so the leaves are read from there.
    """
    leaves = [
        (m.group("path"), m.group("msg").strip())
        for m in _CAUSE.finditer(str(result.get("msg") or ""))
        if m.group("msg").strip() != "validation failed"
    ]
    if leaves:
        return leaves
    errors = result.get("validationErrors") or []
    found = [(str(e.get("path", "")), str(e.get("msg", ""))) for e in errors if isinstance(e, dict)]
    return found or [("", str(result.get("msg") or "invalid"))]


def missing_schema_message(bundle: SchemaBundle, minor: str, kind: str, api_version: str) -> str:
    known = bundle.api_versions(kind, minor)
    text = f"no schema for {kind} at apiVersion {api_version} (Kubernetes {minor}, strict)"
    if known:
        return f"{text}: wrong apiVersion? the bundle has {kind} at {', '.join(known)}"
    return f"{text}: no {kind} kind at any apiVersion; add its CRD to the schema bundle or fix the kind"
