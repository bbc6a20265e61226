"""Names the renderer and the checks share: layers and profiles, labels, namespaces and objects.

The one place these are written: the layer builders render them and the policy checks read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from delivery.config import EnvConfig

LAYERS: tuple[str, ...] = ("platform", "serving", "routing", "llm-gateway", "demos")

PROFILES: dict[str, tuple[str, ...]] = {
    "platform": ("platform",),
    "serving": ("platform", "serving"),
    "llm-gateway": ("platform", "serving", "routing", "llm-gateway"),
    "full": ("platform", "serving", "routing", "llm-gateway", "demos"),
}

ARGOCD_NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
ROOT_PROJECT = "layers"
PART_OF = "llm-platform"
COMPONENTS = "components"
LAYER_LABEL = "llm-platform/layer"
ENV_LABEL = "llm-platform/env"
DEMO_LABEL = "llm-platform/demo"
KUEUE_MANAGED_LABEL = "llm-platform/kueue-managed"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"

# Namespaces (one name per concept; policy checks use them too).
SERVING_NS = "serving"
LLMD_NS = "llm-d"
KSERVE_NS = "kserve"  # the KServe controllers
KSERVE_SERVING_NS = "serving-kserve"  # KServe's model servers: apart, so `serving` enforces restricted
GATEWAY_NS = "inference"
LLM_GATEWAY_NS = "llm-gateway"
MONITORING_NS = "monitoring"
DEMOS_NS = "demos"
DEMO_TENANTS = ("demo-tenant-a", "demo-tenant-b")
ESO_NS = "external-secrets"
ESO_KSA = "external-secrets"  # bound to the ESO GSA by the substrate (Workload Identity)

GATEWAY_NAME = "inference-gateway"
POOL_NAME = "raw-vllm"
VLLM_NAME = "raw-vllm"
VLLM_PORT = 8000
MODEL_HEADER = "X-Gateway-Base-Model-Name"
SECRET_STORE = "gcp-secret-manager"
GPU_QUEUE = "gpu"
PROMETHEUS_URL = f"http://prometheus-operated.{MONITORING_NS}.svc:9090"
MODELCAR_MOUNT = "/mnt"
AGENTGATEWAY_METRICS_PORT = 15020

UNPUBLISHED = "sha256:" + "0" * 64


# --- the request path (NetworkPolicies) and Pod Security: what gitops/security.py renders and the
# validation rules request-path and pod-security check

NAME_LABEL = "kubernetes.io/metadata.name"
KSERVE_PORT = 8080  # the predictor's kserve-container (--port=8080)
EPP_GRPC_PORT = 9002  # the gateway's ext-proc calls to the endpoint picker
EPP_METRICS_PORT = 9090
WEBHOOK_PORT = 9443  # KServe's (and llmisvc's) admission webhooks
ANY = "*"  # any namespace: a demo tenant's too
WHY = "llm-platform/why"


@dataclass(frozen=True)
class Edge:
    """Who may open connections into a namespace on the request path, and on which ports."""

    source: str  # a namespace name, or ANY
    ports: tuple[int, ...] | None  # None: every port
    why: str


def request_path(cfg: EnvConfig) -> dict[str, tuple[Edge, ...]]:
    """The allowed ingress of every request-path namespace this env deploys (destination -> edges).

    Ports are the pods' container ports (what NetworkPolicy matches after the Service's DNAT).
    Where a controller we do not configure picks its pods' ports (the agentgateway proxies,
    llm-d's pods), the edge is limited by its source only.
    """
    monitoring = "Prometheus scrapes the metrics ports"
    path: dict[str, tuple[Edge, ...]] = {
        SERVING_NS: (
            Edge(GATEWAY_NS, (VLLM_PORT, EPP_GRPC_PORT), "the gateway -> the model servers and the EPP"),
            Edge(SERVING_NS, (VLLM_PORT,), "the EPP reads the model servers' metrics"),
            Edge(MONITORING_NS, (VLLM_PORT, EPP_METRICS_PORT), monitoring),
        ),
        GATEWAY_NS: (
            Edge(LLM_GATEWAY_NS, None, "LiteLLM -> the inference gateway (the tenancy boundary is LiteLLM)"),
            Edge(MONITORING_NS, (AGENTGATEWAY_METRICS_PORT,), monitoring),
        ),
    }
    if cfg.features.kserve:
        path[KSERVE_SERVING_NS] = (
            Edge(GATEWAY_NS, (KSERVE_PORT,), "the gateway -> KServe's model servers"),
            Edge(MONITORING_NS, (KSERVE_PORT,), monitoring),
        )
    if cfg.features.llm_d:
        path[LLMD_NS] = (
            Edge(GATEWAY_NS, None, "the gateway -> llm-d's scheduler and model servers"),
            Edge(LLMD_NS, None, "prefill <-> decode (KV transfer) and the scheduler's own edges"),
            Edge(MONITORING_NS, None, monitoring),
        )
    if cfg.features.kserve or cfg.features.llm_d:
        path[KSERVE_NS] = (
            Edge(ANY, (WEBHOOK_PORT,), "the API server calls the admission webhooks (not from a pod)"),
            Edge(MONITORING_NS, None, monitoring),
        )
    return path


PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
RESTRICTED = "restricted"
BASELINE = "baseline"


def layers_for(profile: str) -> tuple[str, ...]:
    """The layers a profile deploys, in deployment order (profiles are cumulative)."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}") from None
