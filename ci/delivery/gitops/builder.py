"""Building blocks of a layer: labels and metadata, Applications, AppProjects, shared objects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.conventions import (
    ARGOCD_NAMESPACE,
    COMPONENTS,
    ENV_LABEL,
    IN_CLUSTER,
    LAYER_LABEL,
    PART_OF,
    SECRET_STORE,
    SYNC_WAVE,
)
from delivery.gitops.pins import ChartPin, CrdSource


def object_labels(cfg: EnvConfig, layer: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, ENV_LABEL: cfg.name, LAYER_LABEL: layer, **extra}


def object_meta(
    cfg: EnvConfig, layer: str, name: str, namespace: str | None = None, **labels: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = object_labels(cfg, layer, **labels)
    return meta


def eso_service_account(cfg: EnvConfig) -> str:
    """The GSA the substrate creates for ESO (tofu/modules/gke/iam.tf: ``<env>-eso-sa``)."""
    return f"{cfg.name}-eso-sa@{cfg.cluster.project_id}.iam.gserviceaccount.com"


def served_model_name(cfg: EnvConfig) -> str:
    """The model name clients send (``"model": …``) and vLLM serves: the env's serving.model."""
    return cfg.serving.model


def component_path(cfg: EnvConfig, layer: str, component: str) -> str:
    """Repo-relative directory of a component's manifests."""
    return f"clusters/{cfg.name}/layers/{COMPONENTS}/{layer}/{component}"


@dataclass
class LayerBuild:
    """The files of one layer: Applications (with their sources' repos and namespaces) and components."""

    cfg: EnvConfig
    layer: str
    apps: list[dict[str, Any]]
    components: dict[str, list[dict[str, Any]]]

    def helm_app(
        self,
        name: str,
        pin: ChartPin,
        namespace: str,
        wave: int,
        values: dict[str, Any] | None = None,
        *,
        release: str | None = None,
        server_side: bool = False,
    ) -> dict[str, Any]:
        helm: dict[str, Any] = {"releaseName": release or name}
        if values:
            helm["valuesObject"] = values
        source: dict[str, Any] = {"repoURL": pin.repo_url, "targetRevision": pin.version}
        if pin.chart:
            source["chart"] = pin.chart
        else:
            source["path"] = "."
        source["helm"] = helm
        return self._app(name, namespace, wave, {"source": source}, server_side=server_side)

    def git_app(
        self,
        name: str,
        namespace: str,
        wave: int,
        docs: list[dict[str, Any]],
        *,
        ignore_differences: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An Application deploying components/<layer>/<name>/ from this repo on the env's branch."""
        self.components[name] = docs
        source = {
            "repoURL": self.cfg.repo_url,
            "targetRevision": self.cfg.repo_branch,
            "path": component_path(self.cfg, self.layer, name),
            "directory": {"recurse": True},
        }
        app = self._app(name, namespace, wave, {"source": source})
        if ignore_differences:
            app["spec"]["ignoreDifferences"] = ignore_differences
            app["spec"]["syncPolicy"]["syncOptions"].append("RespectIgnoreDifferences=true")
        return app

    def crd_app(self, name: str, sources: list[CrdSource], wave: int) -> dict[str, Any]:
        return self._app(
            name,
            "default",
            wave,
            {
                "sources": [
                    {
                        "repoURL": s.repo_url,
                        "targetRevision": s.revision,
                        "path": s.path,
                        "directory": {"include": s.include},
                    }
                    for s in sources
                ]
            },
            server_side=True,
        )

    def _app(
        self, name: str, namespace: str, wave: int, source: dict[str, Any], *, server_side: bool = False
    ) -> dict[str, Any]:
        options = ["CreateNamespace=true"]
        if server_side:
            options.append("ServerSideApply=true")
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                **object_meta(self.cfg, self.layer, name, ARGOCD_NAMESPACE),
                "annotations": {SYNC_WAVE: str(wave)},
                "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            },
            "spec": {
                "project": self.layer,
                **source,
                "destination": {"server": IN_CLUSTER, "namespace": namespace},
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": options,
                },
            },
        }
        self.apps.append(app)
        return app

    def project(self, description: str) -> dict[str, Any]:
        """The tier's AppProject: exactly the repos and namespaces its Applications use."""
        repos: set[str] = set()
        namespaces: set[str] = set()
        for app in self.apps:
            spec = app["spec"]
            for src in spec.get("sources", [spec.get("source")]):
                repos.add(src["repoURL"])
            namespaces.add(spec["destination"]["namespace"])
        for docs in self.components.values():
            namespaces.update(d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"])
            namespaces.update(d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")
        cluster_kinds = (
            [{"group": "", "kind": "Namespace"}]
            if self.layer == "demos"
            else [{"group": "*", "kind": "*"}]  # installs CRDs, webhooks and cluster roles
        )
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {
                **object_meta(self.cfg, self.layer, self.layer, ARGOCD_NAMESPACE),
                "annotations": {SYNC_WAVE: "-10"},
            },
            "spec": {
                "description": description,
                "sourceRepos": sorted(repos),
                "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in sorted(namespaces)],
                "clusterResourceWhitelist": cluster_kinds,
            },
        }


def namespace_doc(cfg: EnvConfig, layer: str, name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": object_meta(cfg, layer, name, **labels)}


def external_secret(
    cfg: EnvConfig, layer: str, name: str, namespace: str, keys: dict[str, str]
) -> dict[str, Any]:
    """An ExternalSecret: Kubernetes Secret ``name`` from Secret Manager entries (key -> remote key)."""
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": object_meta(cfg, layer, name, namespace),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": SECRET_STORE},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [{"secretKey": k, "remoteRef": {"key": remote}} for k, remote in keys.items()],
        },
    }


def gpu_scheduling(cfg: EnvConfig) -> dict[str, Any]:
    selector: dict[str, str] = {"cloud.google.com/gke-accelerator": cfg.gpu.type}
    if cfg.gpu.spot:
        selector["cloud.google.com/gke-spot"] = "true"
    return {
        "nodeSelector": selector,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def node_shape(machine_type: str) -> tuple[int, int]:
    """(vCPU, GiB) of one GPU node: ``*-standard-N``/``*-highmem-N`` style names, else an a2/a3 ratio."""
    m = re.search(r"-(standard|highmem|highcpu)-(\d+)$", machine_type)
    if m:
        cpus = int(m.group(2))
        per_cpu = {"standard": 4, "highmem": 8, "highcpu": 1}[m.group(1)]
        return cpus, cpus * per_cpu
    return 12, 85
