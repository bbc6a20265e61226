"""Rules on what runs and serves: Secrets without values, objects the API server accepts, scaling
that can wake up from zero, llm-d within the GPU pool, and the GA Inference API reached from routes
in the pool's own namespace."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from delivery.gitops.conventions import SECRET_STORE
from delivery.validation.findings import Finding
from delivery.validation.manifests import Manifest
from delivery.validation.policy.context import APP_KINDS, EnvContext, JsonPath, app_sources, finding, walk

OLD_INFERENCE_GROUP = "inference.networking.x-k8s.io"
GA_INFERENCE_GROUP = "inference.networking.k8s.io"
_POD_METRIC = re.compile(r"\bvllm:")


def secret_data(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``secret-data``: secret values never enter git."""
    if m.kind != "Secret" or m.api_version != "v1":
        return []
    return [
        finding(
            m,
            "secret-data",
            f"Secret carries {key} ({', '.join(sorted(str(k) for k in m.doc[key]))}) in git",
            "store the value in Secret Manager and materialise it with an ExternalSecret "
            f"(ClusterSecretStore {SECRET_STORE}); delete this Secret from git",
            (key,),
        )
        for key in ("data", "stringData")
        if m.doc.get(key)
    ]


# The API server's own limits (k8s.io/kubernetes pkg/apis/core/validation: MaxSecretSize for the
# data of a ConfigMap or Secret, TotalAnnotationSizeLimitB for an object's annotations) and etcd's
# default --max-request-bytes (1.5 MiB) for a whole object.
MAX_DATA_BYTES = 1 << 20
MAX_ANNOTATION_BYTES = 256 << 10
MAX_OBJECT_BYTES = 3 << 19
# Argo CD applies client-side unless told otherwise: kubectl then stores the whole object in the
# last-applied-configuration annotation, which the annotation limit above caps (with some room
# for the annotation's own key and kubectl's additions).
MAX_CLIENT_SIDE_BYTES = MAX_ANNOTATION_BYTES - (4 << 10)
SERVER_SIDE = "ServerSideApply=true"
_MIB = 1 << 20


def _decoded_len(value: Any) -> int:
    """Bytes of a base64 ``data``/``binaryData`` value (its text length when it is not base64)."""
    text = str(value)
    try:
        return len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return len(text.encode("utf-8"))


def _mapping(node: Any, key: str) -> dict[str, Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _data_bytes(m: Manifest) -> int:
    """What the API server counts against the 1 MiB: every value of the object's data, decoded."""
    if m.kind == "ConfigMap":
        text, binary = _mapping(m.doc, "data"), _mapping(m.doc, "binaryData")
        return sum(len(str(v).encode("utf-8")) for v in text.values()) + sum(
            _decoded_len(v) for v in binary.values()
        )
    data, strings = _mapping(m.doc, "data"), _mapping(m.doc, "stringData")
    sizes = {str(k): _decoded_len(v) for k, v in data.items()}
    sizes.update({str(k): len(str(v).encode("utf-8")) for k, v in strings.items()})  # stringData wins
    return sum(sizes.values())


def _server_side(m: Manifest, ctx: EnvContext) -> bool:
    """Whether Argo CD applies ``m`` server-side: its own sync-options annotation or its app's."""
    notes = _mapping(_mapping(m.doc, "metadata"), "annotations")
    if SERVER_SIDE in str(notes.get("argocd.argoproj.io/sync-options", "")):
        return True
    app = ctx.owning_app(m) or {}
    options = _mapping(app, "syncPolicy").get("syncOptions") or []
    return SERVER_SIDE in [str(o) for o in options]


def object_size(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``object-size``: objects the API server would refuse for their size, found before a sync fails."""
    found = []
    if m.kind in ("ConfigMap", "Secret") and m.api_version == "v1":
        size = _data_bytes(m)
        if size > MAX_DATA_BYTES:
            found.append(
                finding(
                    m,
                    "object-size",
                    f"{m.kind} data is {size:,} bytes; "
                    f"the API server refuses more than {MAX_DATA_BYTES:,} (1 MiB)",
                    "split it into several objects, or ship the content another way (an image, a volume)",
                    ("data",),
                )
            )
    annotations = _mapping(_mapping(m.doc, "metadata"), "annotations")
    notes = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if notes > MAX_ANNOTATION_BYTES:
        found.append(
            finding(
                m,
                "object-size",
                f"annotations are {notes:,} bytes; the API server refuses more than {MAX_ANNOTATION_BYTES:,}",
                "move the content out of annotations (into a ConfigMap or the spec)",
                ("metadata", "annotations"),
            )
        )
    total = len(json.dumps(m.doc, separators=(",", ":"), default=str).encode("utf-8"))
    if MAX_CLIENT_SIDE_BYTES < total <= MAX_OBJECT_BYTES and not _server_side(m, ctx):
        found.append(
            finding(
                m,
                "object-size",
                f"the object is {total:,} bytes as JSON and is applied client-side: its "
                f"last-applied-configuration annotation would pass the {MAX_ANNOTATION_BYTES:,}-byte limit",
                f"sync it server-side (annotation argocd.argoproj.io/sync-options: {SERVER_SIDE}, or the "
                "Application's syncOptions), or split it",
                ("kind",),
            )
        )
    if total > MAX_OBJECT_BYTES:
        found.append(
            finding(
                m,
                "object-size",
                f"the object is {total / _MIB:.1f} MiB as JSON; etcd refuses requests over 1.5 MiB",
                "split it into several objects",
                ("kind",),
            )
        )
    return found


def _survives_zero(trigger: Any) -> bool:
    """A trigger whose metric exists with no pod running (a gateway, queue or router signal)."""
    if not isinstance(trigger, dict) or trigger.get("type") in ("cpu", "memory"):
        return False
    query = str((trigger.get("metadata") or {}).get("query", ""))
    return not _POD_METRIC.search(query)


def scale_from_zero(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``scale-from-zero``: a ScaledObject allowed to reach 0 needs a trigger that exists at 0 replicas.

    Metrics of the scaled pods themselves (``vllm:*``, cpu, memory) vanish with the last replica, so
    they can never activate the workload again; a gateway, queue or router signal can.
    """
    if m.kind != "ScaledObject":
        return []
    spec = m.doc.get("spec") or {}
    if int(spec.get("minReplicaCount", 0) or 0) > 0 or any(
        _survives_zero(t) for t in spec.get("triggers") or []
    ):
        return []
    return [
        finding(
            m,
            "scale-from-zero",
            "minReplicaCount is 0 but every trigger reads a metric of the scaled pods (vllm:*, cpu, "
            "memory), which does not exist at zero replicas, so the workload could never wake up",
            "add a trigger on an upstream signal (e.g. agentgateway_requests_total), "
            "or set minReplicaCount: 1",
            ("spec", "triggers"),
        )
    ]


def _gpus_of(template: Any) -> int:
    total = 0
    for path, value in walk(template):
        if path and path[-1] == "nvidia.com/gpu" and len(path) >= 2 and path[-2] == "limits":
            try:
                total += int(str(value))
            except ValueError:
                continue
    return total


def _replica_gpus(spec: dict[str, Any]) -> int:
    """GPUs of ``replicas`` x (the template's GPU limits, at least 1)."""
    return int(spec.get("replicas", 1) or 0) * max(_gpus_of(spec.get("template")), 1)


def llm_d_gpus(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``llm-d-gpus``: llm-d is opt-in, needs at least 2 GPUs in the env's pool and no more than it has."""
    cfg = ctx.cfg
    is_llmisvc = m.kind == "LLMInferenceService"
    is_llmd_chart = m.kind in APP_KINDS and any(
        "llmisvc" in str(s.get("repoURL", "")) + str(s.get("chart", "")) for _, s in app_sources(m.doc)
    )
    if not (is_llmisvc or is_llmd_chart):
        return []
    max_gpus = cfg.gpu.max_gpus
    pool = f"gpu.perNode {cfg.gpu.per_node} x gpu.maxNodes {cfg.gpu.max_nodes} = {max_gpus} GPU(s)"
    found = []
    if not cfg.features.llm_d:
        found.append(
            finding(
                m,
                "llm-d-gpus",
                f"llm-d is deployed but features.llm-d is false in {cfg.path}",
                f"remove it (deliver layers render --env {cfg.name} --write), or enable features.llm-d",
                ("kind",),
            )
        )
    if max_gpus < 2:
        found.append(
            finding(
                m,
                "llm-d-gpus",
                f"llm-d needs at least 2 GPUs (prefill + decode) but env {cfg.name!r} has {pool}",
                "serve with raw vLLM, or raise the GPU pool",
                ("kind",),
            )
        )
    if is_llmisvc:
        spec = m.doc.get("spec") or {}
        decode = _replica_gpus(spec)
        prefill = _replica_gpus(spec["prefill"]) if spec.get("prefill") else 0
        if max_gpus >= 2 and decode + prefill > max_gpus:
            found.append(
                finding(
                    m,
                    "llm-d-gpus",
                    f"llm-d asks for {decode + prefill} GPUs (decode {decode} + prefill {prefill}) but env "
                    f"{cfg.name!r} has {pool}",
                    f"lower the replicas or GPUs of decode/prefill, or raise gpu.maxNodes in {cfg.path}",
                    ("spec",),
                )
            )
    return found


def _pool_refs(m: Manifest) -> list[tuple[JsonPath, dict[str, Any]]]:
    """An HTTPRoute's backendRefs to InferencePools, with their JSON paths."""
    if m.kind != "HTTPRoute":
        return []
    refs: list[tuple[JsonPath, dict[str, Any]]] = []
    for i, rule in enumerate((m.doc.get("spec") or {}).get("rules") or []):
        for j, ref in enumerate((rule or {}).get("backendRefs") or []):
            if isinstance(ref, dict) and ref.get("kind") == "InferencePool":
                refs.append((("spec", "rules", i, "backendRefs", j), ref))
    return refs


def inference_api(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``inference-api``: InferencePools and the routes to them use the GA group, not the retired alpha."""
    found = []
    group = m.api_version.rpartition("/")[0]
    if group == OLD_INFERENCE_GROUP and m.kind in ("InferencePool", "InferenceModel"):
        found.append(
            finding(
                m,
                "inference-api",
                f"{m.kind} uses the retired alpha API {m.api_version}",
                f"use {GA_INFERENCE_GROUP}/v1 InferencePool (spec.selector.matchLabels, spec.targetPorts, "
                "spec.endpointPickerRef)",
                ("apiVersion",),
            )
        )
    for path, ref in _pool_refs(m):
        if ref.get("group") != GA_INFERENCE_GROUP:
            found.append(
                finding(
                    m,
                    "inference-api",
                    f"backendRef to InferencePool {ref.get('name')!r} uses group {ref.get('group')!r}",
                    f"use {GA_INFERENCE_GROUP} (set group: {GA_INFERENCE_GROUP})",
                    (*path, "group"),
                )
            )
    return found


def route_pool_namespace(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``route-pool-namespace``: an HTTPRoute reaches an InferencePool only in its own namespace."""
    return [
        finding(
            m,
            "route-pool-namespace",
            f"backendRef to InferencePool {ref.get('namespace')}/{ref.get('name')} crosses namespaces; "
            "agentgateway ignores ReferenceGrants for pools",
            f"put the route in namespace {ref.get('namespace')!r} and drop backendRefs[].namespace",
            (*path, "namespace"),
        )
        for path, ref in _pool_refs(m)
        if ref.get("namespace") not in (None, m.namespace)
    ]
