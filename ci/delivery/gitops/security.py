"""What keeps the request path the only path, and the pods we render restricted, as manifests.

- NetworkPolicies from ``conventions.request_path`` (the glossary's edges: LiteLLM -> the inference
  gateway -> the model servers, the EPP's own edges, plus Prometheus and the API server's webhook
  calls): default-deny ingress per namespace and one allow policy per edge; ``deliver validate``'s
  ``request-path`` rule checks the rendered policies against the same graph.
- Pod Security Standards: the namespace labels, and the security contexts of the pods we render.

Namespaces are selected by ``kubernetes.io/metadata.name`` only: the API server sets that label
from the name, so no tenant can put it on its own namespace (any other label it can).
"""

from __future__ import annotations

from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.builder import object_meta
from delivery.gitops.conventions import ANY, NAME_LABEL, RESTRICTED, WHY, request_path


def _peer(source: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAME_LABEL: source}}}


def network_policies(cfg: EnvConfig, layer: str, namespace: str) -> list[dict[str, Any]]:
    """Default-deny ingress for ``namespace`` and one allow policy per edge of ``request_path``."""
    edges = request_path(cfg)[namespace]
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta(cfg, layer, "default-deny-ingress", namespace),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    ]
    for edge in edges:
        rule: dict[str, Any] = {}
        if edge.source != ANY:
            rule["from"] = [_peer(edge.source)]
        if edge.ports is not None:
            rule["ports"] = [{"protocol": "TCP", "port": p} for p in edge.ports]
        name = "allow-from-" + ("any-namespace" if edge.source == ANY else edge.source)
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {**object_meta(cfg, layer, name, namespace), "annotations": {WHY: edge.why}},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [rule]},
            }
        )
    return docs


def model_server_egress(cfg: EnvConfig, layer: str, namespace: str, pods: dict[str, str]) -> dict[str, Any]:
    """The model servers call nobody: egress only to the cluster DNS (no hub, no telemetry)."""
    dns = [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(cfg, layer, "model-servers-egress-dns-only", namespace),
        "spec": {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Egress"],
            "egress": [{"to": [_peer("kube-system")], "ports": dns}],
        },
    }


# --------------------------------------------------------------------------- Pod Security Standards


def pss_labels(cfg: EnvConfig, enforce: str) -> dict[str, str]:
    """Pod Security admission labels: ``enforce`` as given, warn and audit always ``restricted``,
    all pinned to the cluster's Kubernetes minor (a cluster upgrade does not tighten them unseen)."""
    version = f"v{cfg.cluster.kubernetes_version}"
    labels: dict[str, str] = {}
    for mode, level in (("enforce", enforce), ("warn", RESTRICTED), ("audit", RESTRICTED)):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


RUN_AS = 65532  # the modelcar's files are readable by this uid; both containers must share it


def restricted_container() -> dict[str, Any]:
    """A container security context that meets the ``restricted`` profile, read-only root included."""
    return {
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod() -> dict[str, Any]:
    """The pod-level part (it survives KServe's webhook, which replaces the container's)."""
    return {
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
