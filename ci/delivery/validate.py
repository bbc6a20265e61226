"""Validation of an environment's roots and layers: kubeconform (strict, hermetic schemas) plus policies.

kubeconform runs with ``-strict -output json -verbose -summary`` against the schema bundle and is
never told to ignore missing schemas: a kind without a schema is an error. Its exit code cannot
tell invalid manifests from a broken run, so the JSON is parsed: every resource must come back
valid, and every document we loaded must have been validated (zero skipped). Policy checks
(``delivery.policy.check_policies``) run on the same manifests.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from delivery import config as envconfig
from delivery import manifests as layer_manifests
from delivery.config import EnvConfig
from delivery.errors import ConfigError, ToolError, UsageError
from delivery.manifests import Manifest
from delivery.schemas import SchemaBundle, ensure_bundle, schema_relpath

KUBECONFORM_ENV = "KUBECONFORM"
KUBECONFORM_CHECK = "kubeconform"
YAML_CHECK = "yaml"


@dataclass(frozen=True)
class Finding:
    """One problem in one resource: ``check`` is "kubeconform" or a policy rule id.

    ``file`` is relative to the repo; ``resource`` is ``Kind/namespace/name``; ``path`` is the JSON
    path inside the resource when known (e.g. ``/spec/template/spec/containers/0/image``).
    """

    file: str
    resource: str
    check: str
    message: str
    path: str = ""

    def render(self) -> str:
        where = f"{self.file}: {self.resource}" if self.resource else self.file
        at = f" at {self.path}" if self.path else ""
        return f"{where}: [{self.check}]{at} {self.message}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """The result of validating one environment: how many resources were checked and what failed."""

    env: str
    resources: int
    findings: list[Finding] = field(default_factory=list)
    # allowed but visible (e.g. an unpublished modelcar); they do not fail validation
    warnings: list[Finding] = field(default_factory=list)
    # every resource checked, as (file, resource), for per-resource reports such as JUnit
    checked: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "ok": self.ok,
            "resources": self.resources,
            "findings": [f.as_dict() for f in self.findings],
            "warnings": [w.as_dict() for w in self.warnings],
        }


# --------------------------------------------------------------------------- kubeconform


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


def _causes(result: dict[str, Any]) -> list[tuple[str, str]]:
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


def _missing_schema_message(bundle: SchemaBundle, minor: str, kind: str, api_version: str) -> str:
    known = bundle.api_versions(kind, minor)
    text = f"no schema for {kind} at apiVersion {api_version} (Kubernetes {minor}, strict)"
    if known:
        return f"{text}: wrong apiVersion? the bundle has {kind} at {', '.join(known)}"
    return f"{text}: no {kind} kind at any apiVersion; add its CRD to the schema bundle or fix the kind"


# --------------------------------------------------------------------------- per environment


@dataclass
class _EnvInput:
    cfg: EnvConfig
    files: list[str]
    manifests: list[Manifest]
    broken: dict[str, Finding]  # file -> YAML syntax finding


def _load_env_input(repo: Path, env: str) -> _EnvInput:
    cfg = envconfig.load_env(repo, env)
    files: list[str] = []
    found: list[Manifest] = []
    broken: dict[str, Finding] = {}
    for path in layer_manifests.env_files(repo, env):
        rel = str(path.relative_to(repo))
        files.append(rel)
        try:
            found.extend(layer_manifests.load_file_manifests(repo, env, path))
        except ConfigError as err:
            problem = err.problems[0]
            line = problem.where.rsplit(":", 1)[-1] if ":" in problem.where else ""
            at = f" at line {line}" if line.isdigit() else ""
            broken[rel] = Finding(rel, "", YAML_CHECK, f"{problem.what}{at}")
    return _EnvInput(cfg, files, found, broken)


def _findings_for(
    env_input: _EnvInput, results: list[dict[str, Any]], bundle: SchemaBundle, minor: str
) -> tuple[list[Finding], set[tuple[str, str]]]:
    """Turn kubeconform results for one env into findings; every loaded manifest must be covered."""
    pending: dict[tuple[str, str, str, str], deque[Manifest]] = defaultdict(deque)
    for m in env_input.manifests:
        pending[(str(m.path), m.kind, m.name, m.api_version)].append(m)
    findings: list[Finding] = []
    checked: set[tuple[str, str]] = set()
    files = set(env_input.files)
    for result in results:
        filename = str(result.get("filename", ""))
        if filename not in files:
            continue
        status = result.get("status")
        if not status:
            continue  # an empty document (e.g. before a leading ---): nothing to validate
        kind, name, version = (str(result.get(k) or "") for k in ("kind", "name", "version"))
        queue = pending.get((filename, kind, name, version))
        manifest = queue.popleft() if queue else None
        resource = manifest.resource if manifest else "/".join(p for p in (kind, name) if p)
        if filename in env_input.broken:
            continue  # reported once, with its line, as a YAML finding
        checked.add((filename, resource))
        if status == "statusValid":
            continue
        if status == "statusInvalid":
            findings += [
                Finding(filename, resource, KUBECONFORM_CHECK, msg, path) for path, msg in _causes(result)
            ]
        elif status == "statusError" and str(result.get("msg", "")).startswith("could not find schema"):
            findings.append(
                Finding(
                    filename,
                    resource,
                    KUBECONFORM_CHECK,
                    _missing_schema_message(bundle, minor, kind, version),
                )
            )
        elif status == "statusSkipped":
            findings.append(
                Finding(filename, resource, KUBECONFORM_CHECK, "skipped: not validated against a schema")
            )
        else:
            findings.append(Finding(filename, resource, KUBECONFORM_CHECK, str(result.get("msg") or status)))
    for queue in pending.values():
        for m in queue:
            if str(m.path) not in env_input.broken:
                findings.append(
                    Finding(
                        str(m.path),
                        m.resource,
                        KUBECONFORM_CHECK,
                        "not validated: kubeconform reported no result",
                    )
                )
    findings += env_input.broken.values()
    return findings, checked


def run_policies(repo: Path, cfg: EnvConfig, found: list[Manifest]) -> tuple[list[Finding], list[Finding]]:
    """The findings and warnings of ``delivery.policy`` (owned by the layers) for one environment."""
    try:
        policy = importlib.import_module("delivery.policy")
    except ModuleNotFoundError as err:
        if err.name != "delivery.policy":
            raise
        raise ToolError(
            "policy checks are missing (module delivery.policy)",
            fix="install the complete project (pip install -e .)",
        ) from None
    findings: list[Finding] = policy.check_policies(repo, cfg, found)
    warnings: list[Finding] = policy.check_warnings(cfg, found)
    return findings, warnings


def validate_envs(
    repo: Path,
    envs: Sequence[str] | None = None,
    *,
    schemas: Path | None = None,
    offline: bool = False,
    source_dir: Path | None = None,
    policies: bool = True,
    processes: int | None = None,
) -> list[Report]:
    """Validate the layers of these environments (default: all), one kubeconform run per Kubernetes minor."""
    names = list(envs) if envs else envconfig.list_envs(repo)
    if not names:
        raise UsageError("no environments found", where=str(repo / "environments"))
    inputs = {env: _load_env_input(repo, env) for env in names}
    minors = sorted({i.cfg.cluster.kubernetes_version for i in inputs.values()})
    if schemas is not None:
        bundle = SchemaBundle.load(schemas)
        lacking = [m for m in minors if m not in bundle.kubernetes_versions]
        if lacking:
            raise UsageError(
                f"the schema bundle has no Kubernetes {', '.join(lacking)} schemas "
                f"(it has {', '.join(bundle.kubernetes_versions)})",
                where=str(schemas),
                fix="rebuild it with: deliver schemas --output DIR (for every env)",
            )
    else:
        bundle = ensure_bundle(repo, minors, offline=offline, source_dir=source_dir)
    binary = kubeconform_binary()
    reports: list[Report] = []
    results_by_minor: dict[str, list[dict[str, Any]]] = {}
    for minor in minors:
        files = sorted(
            {f for i in inputs.values() if i.cfg.cluster.kubernetes_version == minor for f in i.files}
        )
        kinds_of: dict[str, set[str]] = defaultdict(set)
        for i in inputs.values():
            for m in i.manifests:
                kinds_of[str(m.path)].add(f"{m.api_version}/{m.kind}")
        results_by_minor[minor] = run_kubeconform(
            repo, bundle, minor, files, binary, kinds_of=kinds_of, processes=processes or default_processes()
        )
    for env in names:
        env_input = inputs[env]
        minor = env_input.cfg.cluster.kubernetes_version
        findings, checked = _findings_for(env_input, results_by_minor[minor], bundle, minor)
        warnings: list[Finding] = []
        if policies:
            policy_findings, warnings = run_policies(repo, env_input.cfg, env_input.manifests)
            findings += policy_findings
        reports.append(
            Report(
                env=env,
                resources=len(env_input.manifests),
                findings=findings,
                warnings=warnings,
                checked=tuple(sorted(checked)),
            )
        )
    return reports


def validate_env(repo: Path, env: str, *, schemas: Path | None = None) -> Report:
    """Validate one environment's layers: kubeconform (strict, hermetic) and the policy checks."""
    return validate_envs(repo, [env], schemas=schemas)[0]


# --------------------------------------------------------------------------- reports


def junit_xml(reports: Sequence[Report]) -> str:
    """JUnit XML: one testsuite per environment, one testcase per resource (policy and file findings too)."""
    suites = ElementTree.Element("testsuites", name="deliver validate")
    total_tests = total_failures = 0
    for report in reports:
        by_case: dict[tuple[str, str], list[Finding]] = {case: [] for case in report.checked}
        for finding in report.findings:
            by_case.setdefault((finding.file, finding.resource), []).append(finding)
        suite = ElementTree.SubElement(suites, "testsuite", name=report.env)
        failures = 0
        for (file, resource), found in sorted(by_case.items()):
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{report.env}.{file}", name=resource or file
            )
            if found:
                failures += 1
                failure = ElementTree.SubElement(
                    case, "failure", message=found[0].message, type=",".join(sorted({f.check for f in found}))
                )
                failure.text = "\n".join(f.render() for f in found)
        suite.set("tests", str(len(by_case)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += len(by_case)
        total_failures += failures
    suites.set("tests", str(total_tests))
    suites.set("failures", str(total_failures))
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
    )
