"""Validation of an environment's roots and layers: kubeconform (strict, hermetic schemas) plus policies.

kubeconform runs with ``-strict -output json -verbose -summary`` against the schema bundle and is
never told to ignore missing schemas: a kind without a schema is an error. Its exit code cannot
tell invalid manifests from a broken run, so the JSON is parsed: every resource must come back
valid, and every document we loaded must have been validated (zero skipped). Policy checks
(``delivery.validation.policy``) run on the same manifests.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery import config as envconfig
from delivery.config import EnvConfig
from delivery.core.errors import ConfigError, UsageError
from delivery.schemas import SchemaBundle, ensure_bundle
from delivery.validation.findings import Finding, Report
from delivery.validation.kubeconform import (
    KUBECONFORM_CHECK,
    default_processes,
    kubeconform_binary,
    leaf_causes,
    missing_schema_message,
    run_kubeconform,
)
from delivery.validation.manifests import Manifest, env_files, load_file_manifests
from delivery.validation.policy import run_rules

YAML_CHECK = "yaml"


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
    for path in env_files(repo, env):
        rel = str(path.relative_to(repo))
        files.append(rel)
        try:
            found.extend(load_file_manifests(repo, env, path))
        except ConfigError as err:
            problem = err.problems[0]
            line = problem.where.line
            at = f" at line {line}" if line else ""
            broken[rel] = Finding.at(rel, "", YAML_CHECK, f"{problem.what}{at}", problem.fix, line=line)
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
                Finding.at(filename, resource, KUBECONFORM_CHECK, msg, path=path)
                for path, msg in leaf_causes(result)
            ]
        elif status == "statusError" and str(result.get("msg", "")).startswith("could not find schema"):
            findings.append(
                Finding.at(
                    filename,
                    resource,
                    KUBECONFORM_CHECK,
                    missing_schema_message(bundle, minor, kind, version),
                )
            )
        elif status == "statusSkipped":
            findings.append(
                Finding.at(filename, resource, KUBECONFORM_CHECK, "skipped: not validated against a schema")
            )
        else:
            findings.append(
                Finding.at(filename, resource, KUBECONFORM_CHECK, str(result.get("msg") or status))
            )
    for queue in pending.values():
        for m in queue:
            if str(m.path) not in env_input.broken:
                findings.append(
                    Finding.at(
                        str(m.path),
                        m.resource,
                        KUBECONFORM_CHECK,
                        "not validated: kubeconform reported no result",
                    )
                )
    findings += env_input.broken.values()
    return findings, checked


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
        if policies:
            findings += run_rules(repo, env_input.cfg, env_input.manifests)
        reports.append(
            Report(
                env=env,
                resources=len(env_input.manifests),
                results=tuple(findings),
                checked=tuple(sorted(checked)),
            )
        )
    return reports
