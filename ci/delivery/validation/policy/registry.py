"""The policy rules as one table, and the runner over it.

Each ``Rule`` is an id (the finding's ``check``), a one-line summary of what it catches (the README's
policy table is ``rules_table()``, checked by a test), the function and its scope:

- ``Scope.MANIFEST``: ``check(manifest, ctx)``, called once for every manifest of the env;
- ``Scope.ENVIRONMENT``: ``check(ctx)``, called once with all of the env's manifests (and its layout);
- ``Scope.REPO``: ``check(ctx)``, called once, looking at the repo beyond clusters/<env>/ (tofu/).

``status`` says whether its findings fail validation or only warn. ``run_rules`` runs the table in
order; within a rule, findings follow the manifests' order (roots, then layers, files sorted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

from delivery.config import EnvConfig
from delivery.validation.findings import Finding, Status
from delivery.validation.manifests import Manifest
from delivery.validation.policy.applications import (
    app_project_destination,
    chart_pin,
    profile_layers,
    repo_branch,
)
from delivery.validation.policy.boundaries import cloud_resource_kind, demo_on_request_path, tofu_provider
from delivery.validation.policy.context import EnvContext
from delivery.validation.policy.images import image_digest, oci_digest, unpublished
from delivery.validation.policy.network import pod_security, request_path_rule
from delivery.validation.policy.workloads import (
    inference_api,
    llm_d_gpus,
    object_size,
    route_pool_namespace,
    scale_from_zero,
    secret_data,
)

ManifestCheck = Callable[[Manifest, EnvContext], Iterable[Finding]]
EnvCheck = Callable[[EnvContext], Iterable[Finding]]


class Scope(StrEnum):
    MANIFEST = "manifest"
    ENVIRONMENT = "environment"
    REPO = "repo"


@dataclass(frozen=True)
class Rule:
    """One policy rule: build it with ``per_manifest``, ``per_env`` or ``per_repo`` (they type ``check``)."""

    id: str
    catches: str
    check: ManifestCheck | EnvCheck
    scope: Scope
    status: Status = Status.FAILURE

    def run(self, ctx: EnvContext) -> list[Finding]:
        if self.scope is Scope.MANIFEST:
            check = cast(ManifestCheck, self.check)
            return [f for m in ctx.manifests for f in check(m, ctx)]
        return list(cast(EnvCheck, self.check)(ctx))


def per_manifest(id: str, catches: str, check: ManifestCheck, status: Status = Status.FAILURE) -> Rule:
    return Rule(id, catches, check, Scope.MANIFEST, status)


def per_env(id: str, catches: str, check: EnvCheck) -> Rule:
    return Rule(id, catches, check, Scope.ENVIRONMENT)


def per_repo(id: str, catches: str, check: EnvCheck) -> Rule:
    return Rule(id, catches, check, Scope.REPO)


RULES: tuple[Rule, ...] = (
    per_manifest(
        "image-digest",
        "a container image (also `imageName`, image volumes, Helm `image:` values) without `@sha256:`",
        image_digest,
    ),
    per_manifest(
        "oci-digest",
        "an `oci://` model/image reference without a digest (chart sources are `chart-pin`'s)",
        oci_digest,
    ),
    per_manifest(
        "cloud-resource-kind",
        "Config Connector, Crossplane, ACK or ASO kinds under `clusters/` (the substrate is OpenTofu's)",
        cloud_resource_kind,
    ),
    per_repo(
        "tofu-provider",
        "`kubernetes`/`helm`/`kubectl` providers or resources in `tofu/` modules (in-cluster is Argo's)",
        tofu_provider,
    ),
    per_manifest(
        "demo-on-request-path",
        "routing or llm-gateway referring to a demo namespace, demo service URL, demo path or label",
        demo_on_request_path,
    ),
    per_manifest(
        "llm-d-gpus",
        "llm-d where `features.llm-d` is off, where the pool has < 2 GPUs, "
        "or asking for more GPUs than it has",
        llm_d_gpus,
    ),
    per_env(
        "profile-layers",
        "a layer directory or resource outside the env's profile, or a profile layer missing",
        profile_layers,
    ),
    per_manifest(
        "secret-data",
        "a `Secret` with `data`/`stringData` in git (values come from ExternalSecrets)",
        secret_data,
    ),
    per_env(
        "request-path",
        "a NetworkPolicy letting a namespace outside the request path's graph reach the model servers, the "
        "gateway or KServe (or selecting namespaces by a label tenants can set), or a namespace on the "
        "path without default-deny ingress",
        request_path_rule,
    ),
    per_manifest(
        "pod-security",
        "a pod we render that is not Pod Security `restricted`, an InferenceService pod without "
        "runAsNonRoot/seccomp, a namespace without an enforce level (restricted where only our pods run)",
        pod_security,
    ),
    per_manifest(
        "object-size",
        "a ConfigMap/Secret whose data is over 1 MiB, annotations over 256 KiB, any object over "
        "1.5 MiB, or one applied client-side over ~252 KiB: what the API server (or etcd) refuses",
        object_size,
    ),
    per_manifest(
        "app-project-destination",
        "an Application without a project, naming an undefined AppProject, or without a destination",
        app_project_destination,
    ),
    per_manifest(
        "chart-pin",
        "a chart or third-party git source on a range, `latest`, `HEAD`, a branch or no version",
        chart_pin,
    ),
    per_manifest(
        "repo-branch",
        "a source of this repo (root included) not on the env's "
        "`repoURL`/`repoBranch`, or outside `clusters/<env>/`",
        repo_branch,
    ),
    per_manifest(
        "inference-api",
        "an InferencePool/InferenceModel or route backend on the "
        "retired `inference.networking.x-k8s.io` group",
        inference_api,
    ),
    per_manifest(
        "route-pool-namespace",
        "an HTTPRoute sending to an InferencePool in another namespace "
        "(agentgateway ignores ReferenceGrants)",
        route_pool_namespace,
    ),
    per_manifest(
        "scale-from-zero",
        "a ScaledObject that may reach 0 replicas with only triggers on "
        "the scaled pods' own metrics (`vllm:*`, cpu, memory)",
        scale_from_zero,
    ),
    per_manifest(
        "unpublished",
        "a warning (shown, never failing): a modelcar or image reference with the all-zero placeholder "
        "digest: an artifact the environment's release does not have yet, which no cluster can pull",
        unpublished,
        Status.WARNING,
    ),
)

RULE_IDS = tuple(rule.id for rule in RULES)


def rules_table(rules: Sequence[Rule] = RULES) -> str:
    """The README's policy table (``| rule | catches |``), one row per rule in registry order."""
    rows = [f"| `{r.id}` | {r.catches} |" for r in rules]
    return "\n".join(["| rule | catches |", "|---|---|", *rows]) + "\n"


def run_rules(
    repo: Path, cfg: EnvConfig, manifests: Sequence[Manifest], rules: Sequence[Rule] = RULES
) -> list[Finding]:
    """Every finding of ``rules`` (failures and warnings) for one environment.

    ``manifests``: the env's roots and layers (``manifests.load_env_manifests``); roots belong to no layer.
    """
    ctx = EnvContext(repo, cfg, manifests)
    return [f for rule in rules for f in rule.run(ctx)]


def check_policies(repo: Path, cfg: EnvConfig, manifests: Sequence[Manifest]) -> list[Finding]:
    """The findings that fail validation for one environment (empty when the env is clean)."""
    rules = [r for r in RULES if r.status is Status.FAILURE]
    return run_rules(repo, cfg, manifests, rules)


def check_warnings(repo: Path, cfg: EnvConfig, manifests: Sequence[Manifest]) -> list[Finding]:
    """What is allowed but must stay visible (``unpublished``)."""
    return run_rules(repo, cfg, manifests, [r for r in RULES if r.status is Status.WARNING])
