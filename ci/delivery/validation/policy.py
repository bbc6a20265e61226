"""Policy checks on an environment's Argo CD layers (and the repo's substrate boundary).

``check_policies(repo, cfg, manifests)`` is called by ``deliver validate`` after kubeconform. Each
rule has an id (the Finding's ``check``) and names the file, the resource, the JSON path and what to do:

- ``image-digest``: every container image is pinned by ``@sha256:`` digest.
- ``oci-digest``: every ``oci://`` model/image reference is pinned by digest (chart sources: ``chart-pin``).
- ``cloud-resource-kind``: no cloud-resource kinds (Config Connector, Crossplane, ACK, ASO) under
  clusters/: the substrate belongs to OpenTofu.
- ``tofu-provider``: no kubernetes/helm/kubectl providers or resources under tofu/: the in-cluster
  lifecycle belongs to Argo CD.
- ``demo-on-request-path``: routing and llm-gateway never reference a demo (namespace, service, label).
- ``llm-d-gpus``: llm-d (LLMInferenceService) only where features.llm-d is on and the GPU pool has ≥ 2
  GPUs, and never more GPUs than the pool has.
- ``profile-layers``: the layer directories are exactly the env profile's layers.
- ``secret-data``: no Secret with data in git (secrets come from ESO ExternalSecrets).
- ``app-project-destination``: every Application names a defined AppProject and a destination.
- ``chart-pin``: every chart (and third-party git) source is pinned to an exact version.
- ``repo-branch``: the platform repo's own sources use the env's repoURL, repoBranch and directory.
- ``inference-api``: InferencePools use the GA group inference.networking.k8s.io (not x-k8s.io).
- ``route-pool-namespace``: an HTTPRoute reaches an InferencePool only in its own namespace.
- ``scale-from-zero``: a ScaledObject that may reach 0 replicas has a trigger that exists at 0.

``check_warnings`` reports what is allowed but must stay visible (``unpublished-modelcar``: a reference
with the all-zero digest clusters/pins.yaml uses until the modelcar's first publish writes its lock).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from delivery.config import EnvConfig
from delivery.core.paths import layers_dir
from delivery.core.patterns import COMMIT, DIGEST_SUFFIX, SEMVER, SHA256_HEX
from delivery.gitops.conventions import (
    ARGOCD_NAMESPACE,
    COMPONENTS,
    DEMO_LABEL,
    DEMO_TENANTS,
    DEMOS_NS,
    LAYERS,
    UNPUBLISHED,
    layers_for,
)
from delivery.validation.findings import Finding
from delivery.validation.manifests import Manifest

EXACT_VERSION = re.compile(rf"^{SEMVER}$|^sha256:{SHA256_HEX}$")
CLOUD_GROUPS = re.compile(
    r"(^|\.)(cnrm\.cloud\.google\.com|crossplane\.io|upbound\.io|services\.k8s\.aws|azure\.com)$"
)
OLD_INFERENCE_GROUP = "inference.networking.x-k8s.io"
GA_INFERENCE_GROUP = "inference.networking.k8s.io"
DEMO_NAMESPACE = re.compile(r"^demo(s|-[a-z0-9-]+)$")
DEMO_SERVICE_HOST = re.compile(r"\.(demos|demo-[a-z0-9-]+)\.svc\b")
REQUEST_PATH_LAYERS = ("routing", "llm-gateway")
APP_KINDS = ("Application", "ApplicationSet")

JsonPath = tuple[str | int, ...]


def _pointer(path: JsonPath) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else ""


def _walk(node: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Every (path, value) in a document, depth first, containers included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))


def tier_of(manifest: Manifest) -> str:
    """The layer a manifest belongs to: ``<layer>/…`` or ``components/<layer>/…`` under layers/."""
    parts = manifest.path.parts
    try:
        i = parts.index("layers")
    except ValueError:
        return manifest.layer
    rest = parts[i + 1 :]
    if len(rest) >= 3 and rest[0] == COMPONENTS:
        return rest[1]
    return rest[0] if len(rest) >= 2 else ""


def _finding(m: Manifest, rule: str, message: str, path: JsonPath = ()) -> Finding:
    return Finding(str(m.path), m.resource, rule, message, _pointer(path))


def _app_sources(doc: dict[str, Any]) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """The sources of an Application (or an ApplicationSet's template), with their JSON paths."""
    spec = doc.get("spec") or {}
    prefix: JsonPath = ("spec",)
    if doc.get("kind") == "ApplicationSet":
        spec = ((spec.get("template") or {}).get("spec")) or {}
        prefix = ("spec", "template", "spec")
    if isinstance(spec.get("source"), dict):
        yield (*prefix, "source"), spec["source"]
    for i, src in enumerate(spec.get("sources") or []):
        if isinstance(src, dict):
            yield (*prefix, "sources", i), src


def _app_spec(doc: dict[str, Any]) -> tuple[JsonPath, dict[str, Any]]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "ApplicationSet":
        return ("spec", "template", "spec"), ((spec.get("template") or {}).get("spec")) or {}
    return ("spec",), spec


# --------------------------------------------------------------------------- rules


def check_images(m: Manifest) -> list[Finding]:
    """``image-digest`` and ``oci-digest``."""
    found = []
    # chart/git source URLs (Applications, AppProject sourceRepos) are pinned by version: ``chart-pin``
    source_urls = {(*p, "repoURL") for p, _ in _app_sources(m.doc)} if m.kind in APP_KINDS else set()
    if m.kind == "AppProject":
        repos = (m.doc.get("spec") or {}).get("sourceRepos") or []
        source_urls = {("spec", "sourceRepos", i) for i in range(len(repos))}
    for path, value in _walk(m.doc):
        if isinstance(value, dict) and path and path[-1] == "image" and "repository" in value:
            if not str(value.get("digest") or "").startswith("sha256:"):
                found.append(
                    _finding(
                        m,
                        "image-digest",
                        f"image {value.get('repository')!r} (tag {value.get('tag') or 'none'}) has no "
                        "digest; set image.digest: sha256:<digest> next to repository/tag",
                        path,
                    )
                )
            continue
        if not isinstance(value, str) or not path:
            continue
        key = path[-1]
        is_image = key in ("image", "imageName") or (
            key == "reference" and len(path) > 1 and path[-2] == "image"
        )
        if is_image and not DIGEST_SUFFIX.search(value):
            tag = value.rsplit("/", 1)[-1].partition(":")[2] or "none (defaults to latest)"
            found.append(
                _finding(
                    m,
                    "image-digest",
                    f"image {value!r} is not pinned by digest (tag: {tag}); "
                    "pin it as <image>@sha256:<digest> (see clusters/pins.yaml)",
                    path,
                )
            )
        elif value.startswith("oci://") and path not in source_urls and not DIGEST_SUFFIX.search(value):
            found.append(
                _finding(
                    m,
                    "oci-digest",
                    f"oci reference {value!r} is not pinned by digest; use oci://<registry>/<repo>@sha256:<digest>"
                    " (the modelcar lock names it)",
                    path,
                )
            )
    return found


def check_scale_from_zero(m: Manifest) -> list[Finding]:
    """``scale-from-zero``: a ScaledObject allowed to reach 0 needs a trigger that exists at 0 replicas.

    Metrics of the scaled pods themselves (``vllm:*``, cpu, memory) vanish with the last replica, so
    they can never activate the workload again; a gateway, queue or router signal can.
    """
    if m.kind != "ScaledObject":
        return []
    spec = m.doc.get("spec") or {}
    if int(spec.get("minReplicaCount", 0) or 0) > 0:
        return []
    triggers = spec.get("triggers") or []

    def survives_zero(trigger: Any) -> bool:
        if not isinstance(trigger, dict) or trigger.get("type") in ("cpu", "memory"):
            return False
        query = str((trigger.get("metadata") or {}).get("query", ""))
        return not re.search(r"\bvllm:", query)

    if any(survives_zero(t) for t in triggers):
        return []
    return [
        _finding(
            m,
            "scale-from-zero",
            "minReplicaCount is 0 but every trigger reads a metric of the scaled pods (vllm:*, cpu, "
            "memory), which does not exist at zero replicas, so the workload could never wake up; add a "
            "trigger on an upstream signal (e.g. agentgateway_requests_total) or set minReplicaCount: 1",
            ("spec", "triggers"),
        )
    ]


def check_cloud_kinds(m: Manifest) -> list[Finding]:
    """``cloud-resource-kind``: the substrate (cloud resources) is OpenTofu's, never Argo's."""
    group = m.api_version.rpartition("/")[0]
    if group and CLOUD_GROUPS.search(group):
        return [
            _finding(
                m,
                "cloud-resource-kind",
                f"{m.kind} ({m.api_version}) is a cloud resource: the substrate belongs to OpenTofu (tofu/), "
                "never to in-cluster GitOps; move it to the tofu module",
                ("apiVersion",),
            )
        ]
    return []


def check_secret_data(m: Manifest) -> list[Finding]:
    """``secret-data``: secret values never enter git."""
    if m.kind != "Secret" or m.api_version != "v1":
        return []
    found = []
    for key in ("data", "stringData"):
        if m.doc.get(key):
            keys = ", ".join(sorted(str(k) for k in m.doc[key]))
            found.append(
                _finding(
                    m,
                    "secret-data",
                    f"Secret carries {key} ({keys}) in git; store the value in Secret Manager and "
                    "materialise it with an ExternalSecret (ClusterSecretStore gcp-secret-manager)",
                    (key,),
                )
            )
    return found


def check_inference_api(m: Manifest) -> list[Finding]:
    """``inference-api`` and ``route-pool-namespace``."""
    found = []
    group = m.api_version.rpartition("/")[0]
    if group == OLD_INFERENCE_GROUP and m.kind in ("InferencePool", "InferenceModel"):
        found.append(
            _finding(
                m,
                "inference-api",
                f"{m.kind} uses the retired alpha API {m.api_version}; use "
                f"{GA_INFERENCE_GROUP}/v1 InferencePool (spec.selector.matchLabels, spec.targetPorts, "
                "spec.endpointPickerRef)",
                ("apiVersion",),
            )
        )
    if m.kind == "HTTPRoute":
        rules = (m.doc.get("spec") or {}).get("rules") or []
        for i, rule in enumerate(rules):
            for j, ref in enumerate((rule or {}).get("backendRefs") or []):
                if not isinstance(ref, dict) or ref.get("kind") != "InferencePool":
                    continue
                path: JsonPath = ("spec", "rules", i, "backendRefs", j)
                if ref.get("group") != GA_INFERENCE_GROUP:
                    found.append(
                        _finding(
                            m,
                            "inference-api",
                            f"backendRef to InferencePool {ref.get('name')!r} uses group "
                            f"{ref.get('group')!r}; use {GA_INFERENCE_GROUP}",
                            (*path, "group"),
                        )
                    )
                if ref.get("namespace") not in (None, m.namespace):
                    found.append(
                        _finding(
                            m,
                            "route-pool-namespace",
                            f"backendRef to InferencePool {ref.get('namespace')}/{ref.get('name')} crosses "
                            "namespaces; agentgateway ignores ReferenceGrants for pools, so put the route "
                            f"in namespace {ref.get('namespace')!r}",
                            (*path, "namespace"),
                        )
                    )
    return found


def _demo_namespaces(manifests: list[Manifest]) -> set[str]:
    """Namespaces the demos layer deploys into (Argo CD's own namespace holds every layer's Applications)."""
    names = {DEMOS_NS, *DEMO_TENANTS}
    for m in manifests:
        if tier_of(m) != "demos":
            continue
        if m.kind == "Namespace":
            names.add(m.name)
        elif m.kind in APP_KINDS:
            dest = _app_spec(m.doc)[1].get("destination") or {}
            if dest.get("namespace"):
                names.add(str(dest["namespace"]))
        elif m.kind != "AppProject" and m.namespace:
            names.add(m.namespace)
    names.discard(ARGOCD_NAMESPACE)
    return names


def check_demos(m: Manifest, demo_namespaces: set[str]) -> list[Finding]:
    """``demo-on-request-path``: routing and llm-gateway never reach into demos."""
    tier = tier_of(m)
    if tier not in REQUEST_PATH_LAYERS:
        return []
    found = []

    def flag(what: str, path: JsonPath) -> None:
        found.append(
            _finding(
                m,
                "demo-on-request-path",
                f"the {tier} layer {what}; demos are illustrations and must never be on the request path",
                path,
            )
        )

    labels = m.metadata.get("labels") or {}
    if str(labels.get(DEMO_LABEL, "")).lower() == "true":
        flag(f"holds a resource labelled {DEMO_LABEL}=true", ("metadata", "labels", DEMO_LABEL))
    if m.namespace in demo_namespaces or DEMO_NAMESPACE.match(m.namespace):
        flag(f"deploys into demo namespace {m.namespace!r}", ("metadata", "namespace"))
    for path, value in _walk(m.doc):
        if not isinstance(value, str) or not path or path[:2] == ("metadata", "namespace"):
            continue
        key = path[-1]
        if key == "namespace" and (value in demo_namespaces or DEMO_NAMESPACE.match(value)):
            flag(f"references demo namespace {value!r}", path)
        elif DEMO_SERVICE_HOST.search(value):
            flag(f"calls a demo service ({value!r})", path)
        elif key == "path" and f"/{COMPONENTS}/demos/" in f"/{value}/":
            flag(f"deploys demo manifests ({value!r})", path)
    return found


def _gpus_of(template: Any) -> int:
    total = 0
    for path, value in _walk(template):
        if path and path[-1] == "nvidia.com/gpu" and len(path) >= 2 and path[-2] == "limits":
            try:
                total += int(str(value))
            except ValueError:
                continue
    return total


def check_llm_d(m: Manifest, cfg: EnvConfig) -> list[Finding]:
    """``llm-d-gpus``: llm-d is opt-in and needs at least 2 GPUs in the env's pool."""
    max_gpus = cfg.gpu.max_gpus
    is_llmisvc = m.kind == "LLMInferenceService"
    is_llmd_chart = m.kind in APP_KINDS and any(
        "llmisvc" in str(s.get("repoURL", "")) + str(s.get("chart", "")) for _, s in _app_sources(m.doc)
    )
    if not (is_llmisvc or is_llmd_chart):
        return []
    pool = f"gpu.perNode {cfg.gpu.per_node} x gpu.maxNodes {cfg.gpu.max_nodes} = {max_gpus} GPU(s)"
    found = []
    if not cfg.features.llm_d:
        found.append(
            _finding(
                m,
                "llm-d-gpus",
                f"llm-d is deployed but features.llm-d is false in {cfg.path}; remove it "
                "or enable the feature",
                ("kind",),
            )
        )
    if max_gpus < 2:
        found.append(
            _finding(
                m,
                "llm-d-gpus",
                f"llm-d needs at least 2 GPUs (prefill + decode) but env {cfg.name!r} has {pool}; "
                "serve with raw vLLM, or raise the GPU pool",
                ("kind",),
            )
        )
    if is_llmisvc:
        spec = m.doc.get("spec") or {}
        decode = int(spec.get("replicas", 1) or 0) * max(_gpus_of(spec.get("template")), 1)
        prefill_spec = spec.get("prefill") or {}
        prefill = (
            int(prefill_spec.get("replicas", 1) or 0) * max(_gpus_of(prefill_spec.get("template")), 1)
            if prefill_spec
            else 0
        )
        if max_gpus >= 2 and decode + prefill > max_gpus:
            found.append(
                _finding(
                    m,
                    "llm-d-gpus",
                    f"llm-d asks for {decode + prefill} GPUs (decode {decode} + prefill {prefill}) but env "
                    f"{cfg.name!r} has {pool}",
                    ("spec",),
                )
            )
    return found


def check_applications(
    m: Manifest, cfg: EnvConfig, projects: set[str], profile_layers: tuple[str, ...]
) -> list[Finding]:
    """``app-project-destination``, ``chart-pin`` and ``repo-branch`` on Applications/ApplicationSets."""
    if m.kind not in APP_KINDS:
        return []
    found = []
    prefix, spec = _app_spec(m.doc)
    project = spec.get("project")
    if not project:
        found.append(
            _finding(
                m,
                "app-project-destination",
                "Application has no spec.project; name its tier's AppProject",
                (*prefix, "project"),
            )
        )
    elif project not in projects:
        found.append(
            _finding(
                m,
                "app-project-destination",
                f"Application names AppProject {project!r}, which no layer defines "
                f"(defined: {', '.join(sorted(projects)) or 'none'})",
                (*prefix, "project"),
            )
        )
    dest = spec.get("destination")
    if not isinstance(dest, dict) or not (dest.get("server") or dest.get("name")):
        found.append(
            _finding(
                m,
                "app-project-destination",
                "Application has no destination (spec.destination.server or .name); "
                "use server https://kubernetes.default.svc and a namespace",
                (*prefix, "destination"),
            )
        )
    if not any(True for _ in _app_sources(m.doc)):
        found.append(_finding(m, "chart-pin", "Application has no source", (*prefix, "source")))
    for path, src in _app_sources(m.doc):
        found.extend(_check_source(m, cfg, path, src, profile_layers))
    return found


def _check_source(
    m: Manifest, cfg: EnvConfig, path: JsonPath, src: dict[str, Any], profile_layers: tuple[str, ...]
) -> list[Finding]:
    found = []
    url = str(src.get("repoURL") or "")
    rev = str(src.get("targetRevision") or "")
    src_path = str(src.get("path") or "")
    own = url == cfg.repo_url or src_path.startswith("clusters/")
    if own:
        if url != cfg.repo_url:
            found.append(
                _finding(
                    m,
                    "repo-branch",
                    f"the platform repo source uses repoURL {url!r}, but {cfg.path} says "
                    f"repoURL {cfg.repo_url!r}",
                    (*path, "repoURL"),
                )
            )
        if rev != cfg.repo_branch:
            found.append(
                _finding(
                    m,
                    "repo-branch",
                    f"the platform repo source tracks {rev or '(default branch)'!r}, but env {cfg.name!r} "
                    f"tracks repoBranch {cfg.repo_branch!r} ({cfg.path}); set targetRevision: "
                    f"{cfg.repo_branch}",
                    (*path, "targetRevision"),
                )
            )
        mine = f"clusters/{cfg.name}/"
        if not src_path.startswith(mine):
            found.append(
                _finding(
                    m,
                    "repo-branch",
                    f"source path {src_path!r} is outside this environment ({mine})",
                    (*path, "path"),
                )
            )
        else:
            parts = src_path[len(mine) :].split("/")
            if parts[:1] == ["layers"] and len(parts) > 1:
                layer = parts[2] if parts[1] == COMPONENTS and len(parts) > 2 else parts[1]
                if layer not in profile_layers:
                    found.append(
                        _finding(
                            m,
                            "profile-layers",
                            f"source path {src_path!r} deploys layer {layer!r}, which profile "
                            f"{cfg.profile!r} does not include ({', '.join(profile_layers)})",
                            (*path, "path"),
                        )
                    )
        return found
    is_chart = bool(src.get("chart")) or url.startswith("oci://")
    what = "chart" if is_chart else "git source"
    ok = bool(EXACT_VERSION.match(rev)) or (not is_chart and bool(COMMIT.match(rev)))
    if not ok:
        name = src.get("chart") or url
        why = "no version" if not rev else f"{rev!r} is not an exact version"
        found.append(
            _finding(
                m,
                "chart-pin",
                f"{what} {name} is not pinned: {why} (ranges, latest, HEAD and branches float); "
                "set targetRevision to an exact version such as 1.2.3 (see clusters/pins.yaml)",
                (*path, "targetRevision"),
            )
        )
    return found


def check_profile_layout(repo: Path, cfg: EnvConfig) -> list[Finding]:
    """``profile-layers``: clusters/<env>/layers/ holds exactly the profile's layers (+ components)."""
    base = layers_dir(repo, cfg.name)
    wanted = layers_for(cfg.profile)
    found = []
    rel = base.relative_to(repo)
    present = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for name in present:
        if name == COMPONENTS:
            for sub in sorted(p.name for p in (base / name).iterdir() if p.is_dir()):
                if sub not in wanted:
                    found.append(_layer_finding(f"{rel}/{name}/{sub}", sub, cfg, wanted))
        elif name not in wanted:
            found.append(_layer_finding(f"{rel}/{name}", name, cfg, wanted))
    for layer in wanted:
        if layer not in present:
            found.append(
                Finding(
                    f"{rel}/{layer}",
                    "",
                    "profile-layers",
                    f"profile {cfg.profile!r} deploys layer {layer!r} but the directory is missing "
                    f"(the root Application layer-{layer} points at it); run: deliver layers render "
                    f"--env {cfg.name} --write",
                )
            )
    return found


def _layer_finding(path: str, layer: str, cfg: EnvConfig, wanted: tuple[str, ...]) -> Finding:
    known = layer in LAYERS
    what = f"layer {layer!r} is outside profile {cfg.profile!r}" if known else f"{layer!r} is not a layer"
    return Finding(
        path,
        "",
        "profile-layers",
        f"{what} of env {cfg.name!r} (layers: {', '.join(wanted)}); remove the directory "
        f"(deliver layers render --env {cfg.name} --write)",
    )


# --------------------------------------------------------------------------- substrate boundary (tofu/)

_TF_COMMENT = re.compile(r"(#|//)[^\n]*|/\*.*?\*/", re.S)
_TF_RULES = (
    (re.compile(r'^\s*provider\s+"(kubernetes|helm|kubectl)"', re.M), "provider {0!r}"),
    (
        re.compile(r'source\s*=\s*"([\w.-]+/)?(hashicorp|gavinbunney|alekc)/(kubernetes|helm|kubectl)"'),
        "provider source {0!r}",
    ),
    (re.compile(r'^\s*(?:resource|data)\s+"((?:kubernetes|helm|kubectl)_[a-z0-9_]+)"', re.M), "{0}"),
)


def check_tofu(repo: Path, envs: set[str] | None = None, env: str | None = None) -> list[Finding]:
    """``tofu-provider``: the substrate (tofu/) never manages in-cluster objects.

    With ``env``, only files of that env's root and shared modules (paths naming no other env).
    """
    base = repo / "tofu"
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.rglob("*.tf")):
        rel = path.relative_to(repo)
        if ".terraform" in rel.parts:
            continue
        if env is not None and envs and any(p in envs and p != env for p in rel.parts):
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        text = _TF_COMMENT.sub(lambda mt: re.sub(r"[^\n]", " ", mt.group(0)), raw)
        for pattern, label in _TF_RULES:
            for hit in pattern.finditer(text):
                line = text.count("\n", 0, hit.start()) + 1
                name = hit.group(hit.lastindex or 0)
                resource = label.format(name) if "{0" in label else label
                found.append(
                    Finding(
                        f"{rel}:{line}",
                        resource,
                        "tofu-provider",
                        f"{resource} manages Kubernetes objects from OpenTofu; the in-cluster lifecycle "
                        "belongs to Argo CD: move it to a layer under clusters/ and drop the provider",
                    )
                )
    return found


# --------------------------------------------------------------------------- entry point


def check_policies(repo: Path, cfg: EnvConfig, manifests: list[Manifest]) -> list[Finding]:
    """Every policy finding for one environment (empty when the env is clean).

    ``manifests``: the env's roots and layers (``manifests.load_env_manifests``); roots belong to no layer.
    """
    profile_layers = layers_for(cfg.profile)
    projects = {m.name for m in manifests if m.kind == "AppProject"}
    demo_namespaces = _demo_namespaces(manifests)
    findings: list[Finding] = []
    for m in manifests:
        findings.extend(check_images(m))
        findings.extend(check_scale_from_zero(m))
        findings.extend(check_cloud_kinds(m))
        findings.extend(check_secret_data(m))
        findings.extend(check_inference_api(m))
        findings.extend(check_applications(m, cfg, projects, profile_layers))
        findings.extend(check_llm_d(m, cfg))
    for m in manifests:
        findings.extend(check_demos(m, demo_namespaces))
        tier = tier_of(m)
        if tier and tier not in profile_layers:
            findings.append(
                _finding(
                    m,
                    "profile-layers",
                    f"resource is in layer {tier!r}, outside profile {cfg.profile!r} "
                    f"({', '.join(profile_layers)})",
                )
            )
    findings.extend(check_profile_layout(repo, cfg))
    envs = {p.parent.name for p in (repo / "environments").glob("*/config.yaml")}
    findings.extend(check_tofu(repo, envs, cfg.name))
    return findings


def check_warnings(cfg: EnvConfig, manifests: list[Manifest]) -> list[Finding]:
    """``unpublished-modelcar``: references to a modelcar that was never published (all-zero digest).

    They validate (the reference is digest-shaped) but no cluster can pull them, so every one is named.
    """
    found = []
    for m in manifests:
        for path, value in _walk(m.doc):
            if isinstance(value, str) and value.endswith("@" + UNPUBLISHED):
                found.append(
                    _finding(
                        m,
                        "unpublished-modelcar",
                        f"{value} has the all-zero placeholder digest (clusters/pins.yaml modelcars): the "
                        "modelcar was never published and cannot be pulled; run `deliver modelcar publish "
                        f"{cfg.serving.model} --env {cfg.name}`, then `deliver layers render "
                        f"--env {cfg.name} --write`",
                        path,
                    )
                )
    return found
