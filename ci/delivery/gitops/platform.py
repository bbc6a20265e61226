"""The platform layer: cluster services (Argo CD, cert-manager, ESO, CRDs, Kueue, KEDA, monitoring)."""

from __future__ import annotations

from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.builder import (
    LayerBuild,
    eso_service_account,
    gpu_scheduling,
    node_shape,
    object_meta,
)
from delivery.gitops.conventions import (
    ARGOCD_NAMESPACE,
    ESO_KSA,
    ESO_NS,
    GPU_QUEUE,
    KUEUE_MANAGED_LABEL,
    MONITORING_NS,
    SECRET_STORE,
)
from delivery.gitops.pins import Pins

APPLICATION_HEALTH_LUA = """hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
"""


def platform_layer(cfg: EnvConfig, pins: Pins) -> LayerBuild:
    """Argo CD, cert-manager, ESO + secret store, Gateway API/GIE CRDs, Kueue, KEDA, monitoring, DCGM."""
    b = LayerBuild(cfg, "platform", [], {})
    project = cfg.cluster.project_id
    argocd = b.helm_app(
        "argo-cd",
        pins.chart("argo-cd"),
        ARGOCD_NAMESPACE,
        -3,
        {
            "global": {"domain": f"argocd.{cfg.domain}"},
            "configs": {
                "params": {"server.insecure": True},
                # Applications report their health again, so sync waves wait for the previous wave's
                # Applications (root -> layers -> components) to be Healthy, not merely applied
                "cm": {"resource.customizations.health.argoproj.io_Application": APPLICATION_HEALTH_LUA},
            },
        },
        release="argocd",  # the release the bootstrap `helm install argocd` created: adopt it
    )
    # Argo CD manages itself: deleting this Application must not cascade into deleting Argo CD
    del argocd["metadata"]["finalizers"]
    b.helm_app("cert-manager", pins.chart("cert-manager"), "cert-manager", -3, {"crds": {"enabled": True}})
    b.helm_app(
        "external-secrets",
        pins.chart("external-secrets"),
        ESO_NS,
        -3,
        {
            "installCRDs": True,
            "serviceAccount": {
                "name": ESO_KSA,
                # GKE Workload Identity: this KSA acts as the GSA the substrate grants secretAccessor.
                "annotations": {"iam.gke.io/gcp-service-account": eso_service_account(cfg)},
            },
        },
    )
    b.crd_app(
        "gateway-api-crds", [pins.crds["gateway-api"], pins.crds["gateway-api-inference-extension"]], -3
    )
    b.helm_app("kueue", pins.chart("kueue"), "kueue-system", -3)
    b.helm_app("keda", pins.chart("keda"), "keda", -3)
    b.helm_app(
        "kube-prometheus-stack",
        pins.chart("kube-prometheus-stack"),
        MONITORING_NS,
        -3,
        {
            "prometheus": {
                "prometheusSpec": {
                    # pick up every ServiceMonitor/PodMonitor, not only the chart's own
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "retention": "7d",
                }
            },
            "grafana": {"enabled": True},
        },
        server_side=True,
    )
    cpus, mem = node_shape(cfg.gpu.machine_type)
    nodes = cfg.gpu.max_nodes
    config_docs: list[dict[str, Any]] = [
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": object_meta(cfg, "platform", SECRET_STORE),
            "spec": {
                "provider": {
                    "gcpsm": {
                        "projectID": project,
                        "auth": {
                            "workloadIdentity": {
                                "clusterProjectID": project,
                                "clusterName": cfg.cluster.name,
                                "clusterLocation": cfg.cluster.location,
                                "serviceAccountRef": {"name": ESO_KSA, "namespace": ESO_NS},
                            }
                        },
                    }
                }
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": object_meta(cfg, "platform", cfg.gpu.type),
            "spec": {
                "nodeLabels": gpu_scheduling(cfg)["nodeSelector"],
                "tolerations": gpu_scheduling(cfg)["tolerations"],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": object_meta(cfg, "platform", GPU_QUEUE),
            "spec": {
                # only namespaces that opt in (Kueue's webhooks must not gate the rest of the platform)
                "namespaceSelector": {"matchLabels": {KUEUE_MANAGED_LABEL: "true"}},
                "queueingStrategy": "BestEffortFIFO",
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": cfg.gpu.type,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": str(cpus * nodes)},
                                    {"name": "memory", "nominalQuota": f"{mem * nodes}Gi"},
                                    {"name": "nvidia.com/gpu", "nominalQuota": str(cfg.gpu.max_gpus)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            # GKE installs the NVIDIA driver, device plugin and a managed DCGM exporter on GPU nodes
            # (GPU Operator only off GKE); scrape it into kube-prometheus-stack.
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": object_meta(cfg, "platform", "dcgm-exporter", MONITORING_NS),
            "spec": {
                "namespaceSelector": {"matchNames": ["gke-managed-system"]},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "gke-managed-dcgm-exporter"}},
                "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}],
            },
        },
    ]
    b.git_app("platform-config", MONITORING_NS, 0, config_docs)
    return b
