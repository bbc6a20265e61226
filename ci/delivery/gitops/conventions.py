"""Names the renderer and the checks share: layers and profiles, labels, namespaces and objects.

The one place these are written: the layer builders render them and the policy checks read them.
"""

from __future__ import annotations

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


def layers_for(profile: str) -> tuple[str, ...]:
    """The layers a profile deploys, in deployment order (profiles are cumulative)."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}") from None
