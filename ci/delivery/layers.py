"""The platform as Argo CD layers, rendered from environments/<env>/config.yaml and clusters/pins.yaml.

Layout of ``clusters/<env>/layers/`` (what the root Applications in ``clusters/<env>/root.yaml`` point at):

- ``<layer>/`` for each layer of the env's profile: the tier's AppProject (``project.yaml``) and one
  Argo CD Application per component (``<component>.yaml``). The root applies these directories,
  recursively, under its ``layers`` project, which admits only Applications and AppProjects, so nothing
  else may live in them.
- ``components/<layer>/<component>/``: the platform's own Kubernetes manifests (vLLM Deployment,
  InferencePool route, Kueue queues, ClusterSecretStore, ...). Exactly one Application of the layer
  deploys each directory; no root points at ``components/``. They sit under ``layers/`` so that
  ``deliver validate`` checks them with everything else.

Environment values (project, registry, domain, GPU, branch, repoURL) are typed once in the env's config,
chart versions and image digests once in ``clusters/pins.yaml``; the modelcar digest comes from the model
lock ``modelcars/<model>.lock.yaml`` when it exists. Output is deterministic: the same inputs give the same
bytes, and ``deliver layers render --check`` fails when the committed files differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field

from delivery import yamlio
from delivery.config import EnvConfig, Strict, load_typed
from delivery.errors import ConfigError, Problem
from delivery.fsutil import atomic_directory
from delivery.modelcar.lock import env_repository, lock_path, read_lock
from delivery.modelcar.spec import load_spec
from delivery.paths import layers_dir
from delivery.profiles import ARGOCD_NAMESPACE, IN_CLUSTER, PART_OF, layers_for

_T = TypeVar("_T")

PINS_FILE = Path("clusters") / "pins.yaml"
COMPONENTS = "components"
LAYER_LABEL = "llm-platform/layer"
ENV_LABEL = "llm-platform/env"
DEMO_LABEL = "llm-platform/demo"
KUEUE_MANAGED_LABEL = "llm-platform/kueue-managed"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
OCI_DIGEST_REF = re.compile(r"^oci://(?P<ref>[^@\s]+@sha256:[0-9a-f]{64})$")

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


# --------------------------------------------------------------------------- pins


class ChartPin(Strict):
    """A Helm chart: a classic repo + ``chart``, or a native OCI source (``oci://…/<chart>``)."""

    repo_url: Annotated[str, Field(alias="repoURL", pattern=r"^(https://|oci://)\S+$")]
    chart: str | None = None
    version: Annotated[str, Field(pattern=r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")]


class CrdSource(Strict):
    """CRDs shipped as YAML in an upstream git repository at a release tag."""

    repo_url: Annotated[str, Field(alias="repoURL", pattern=r"^https://\S+$")]
    revision: Annotated[str, Field(pattern=r"^(v?\d+\.\d+\.\d+|[0-9a-f]{40})$")]
    path: str
    include: str


class Pins(Strict):
    """clusters/pins.yaml: every chart version, CRD source and image digest the layers deploy."""

    charts: dict[str, ChartPin]
    crds: dict[str, CrdSource]
    images: dict[str, Annotated[str, Field(pattern=r"^\S+@sha256:[0-9a-f]{64}$")]]
    modelcars: dict[str, Annotated[str, Field(pattern=DIGEST.pattern)]] = Field(default_factory=dict)

    def chart(self, name: str) -> ChartPin:
        return _pick(self.charts, name, "charts")

    def image(self, name: str) -> str:
        return _pick(self.images, name, "images")


def _pick(table: dict[str, _T], name: str, section: str) -> _T:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(
            f"{section}.{name} is missing", where=str(PINS_FILE), fix=f"add {section}.{name} to {PINS_FILE}"
        ) from None


def load_pins(repo: Path) -> Pins:
    """Load and check clusters/pins.yaml (all problems at once)."""
    pins, _ = load_typed(repo / PINS_FILE, PINS_FILE, Pins, docs=f"the comments in {PINS_FILE}")
    return pins


# --------------------------------------------------------------------------- the modelcar


@dataclass(frozen=True)
class Modelcar:
    """The env's modelcar image: ``image`` (registry/repo@digest) and where its digest came from."""

    image: str
    source: str

    @property
    def oci_uri(self) -> str:
        return f"oci://{self.image}"


def modelcar_for(repo: Path, cfg: EnvConfig, pins: Pins) -> Modelcar:
    """The env's modelcar by digest: from the model lock if present, else ``modelcars`` in pins.yaml.

    The lock (``deliver modelcar build|publish``) names each env's ``oci://<registry>/<repo>@sha256:…``;
    this env's entry is used while it is under the env's current ``registry``, else the lock's manifest
    digest under that registry (the digest is the same everywhere). Without a lock, the digest typed
    once in clusters/pins.yaml is used (the all-zero digest: never published, see modelcar_warnings).
    """
    model = cfg.serving.model
    spec = load_spec(repo, model)
    image_repo = env_repository(cfg.registry, spec.repository)
    prefix = f"{image_repo}@"
    lock = read_lock(repo, model)
    if lock is not None:
        shown = str(lock_path(repo, model).relative_to(repo))
        mine = OCI_DIGEST_REF.match(lock.images.get(cfg.name, ""))
        if mine and mine.group("ref").startswith(prefix):
            return Modelcar(mine.group("ref"), shown)
        if DIGEST.match(lock.digest):
            return Modelcar(prefix + lock.digest, shown)
        raise ConfigError(
            f"lock of modelcar {model!r} has no sha256 manifest digest (got {lock.digest!r})",
            where=shown,
            fix=f"run: deliver modelcar build {model}",
        )
    digest = pins.modelcars.get(model)
    if digest is None:
        raise ConfigError(
            f"no digest for modelcar {model!r}: no lock at modelcars/{model}.lock.yaml and no "
            f"modelcars.{model} in {PINS_FILE}",
            where=str(cfg.path),
            fix=f"publish the modelcar (writes the lock), or add modelcars.{model}: sha256:… to {PINS_FILE}",
        )
    return Modelcar(prefix + digest, f"{PINS_FILE} (modelcars.{model})")


UNPUBLISHED = "sha256:" + "0" * 64


def modelcar_warnings(car: Modelcar) -> list[str]:
    """Human warnings about the modelcar reference (e.g. not published yet)."""
    if car.image.endswith(UNPUBLISHED):
        return [
            f"modelcar {car.image} is not published yet (digest from {car.source}); "
            "run `deliver modelcar publish` to write the lock, then re-render"
        ]
    return []


# --------------------------------------------------------------------------- building blocks


def _labels(cfg: EnvConfig, layer: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, ENV_LABEL: cfg.name, LAYER_LABEL: layer, **extra}


def _meta(
    cfg: EnvConfig, layer: str, name: str, namespace: str | None = None, **labels: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = _labels(cfg, layer, **labels)
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
                **_meta(self.cfg, self.layer, name, ARGOCD_NAMESPACE),
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
                **_meta(self.cfg, self.layer, self.layer, ARGOCD_NAMESPACE),
                "annotations": {SYNC_WAVE: "-10"},
            },
            "spec": {
                "description": description,
                "sourceRepos": sorted(repos),
                "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in sorted(namespaces)],
                "clusterResourceWhitelist": cluster_kinds,
            },
        }


def _namespace(cfg: EnvConfig, layer: str, name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(cfg, layer, name, **labels)}


def _external_secret(
    cfg: EnvConfig, layer: str, name: str, namespace: str, keys: dict[str, str]
) -> dict[str, Any]:
    """An ExternalSecret: Kubernetes Secret ``name`` from Secret Manager entries (key -> remote key)."""
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": _meta(cfg, layer, name, namespace),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": SECRET_STORE},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [{"secretKey": k, "remoteRef": {"key": remote}} for k, remote in keys.items()],
        },
    }


def _gpu_scheduling(cfg: EnvConfig) -> dict[str, Any]:
    selector: dict[str, str] = {"cloud.google.com/gke-accelerator": cfg.gpu.type}
    if cfg.gpu.spot:
        selector["cloud.google.com/gke-spot"] = "true"
    return {
        "nodeSelector": selector,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def _node_shape(machine_type: str) -> tuple[int, int]:
    """(vCPU, GiB) of one GPU node: ``*-standard-N``/``*-highmem-N`` style names, else an a2/a3 ratio."""
    m = re.search(r"-(standard|highmem|highcpu)-(\d+)$", machine_type)
    if m:
        cpus = int(m.group(2))
        per_cpu = {"standard": 4, "highmem": 8, "highcpu": 1}[m.group(1)]
        return cpus, cpus * per_cpu
    return 12, 85


# --------------------------------------------------------------------------- platform

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
    cpus, mem = _node_shape(cfg.gpu.machine_type)
    nodes = cfg.gpu.max_nodes
    config_docs: list[dict[str, Any]] = [
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": _meta(cfg, "platform", SECRET_STORE),
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
            "metadata": _meta(cfg, "platform", cfg.gpu.type),
            "spec": {
                "nodeLabels": _gpu_scheduling(cfg)["nodeSelector"],
                "tolerations": _gpu_scheduling(cfg)["tolerations"],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": _meta(cfg, "platform", GPU_QUEUE),
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
            "metadata": _meta(cfg, "platform", "dcgm-exporter", MONITORING_NS),
            "spec": {
                "namespaceSelector": {"matchNames": ["gke-managed-system"]},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "gke-managed-dcgm-exporter"}},
                "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}],
            },
        },
    ]
    b.git_app("platform-config", MONITORING_NS, 0, config_docs)
    return b


# --------------------------------------------------------------------------- serving


def _vllm_deployment(cfg: EnvConfig, pins: Pins, car: Modelcar) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": VLLM_NAME}
    model_link = {"name": "model-link", "mountPath": MODELCAR_MOUNT}
    as_user = {
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
    }
    spec: dict[str, Any] = {
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": {**_labels(cfg, "serving"), **labels}},
            "spec": {
                # The modelcar runs as a native sidecar and links its /models into the shared /mnt; vLLM
                # reads /mnt/models through the shared process namespace (KServe's modelcar mechanism).
                "shareProcessNamespace": True,
                "initContainers": [
                    {
                        "name": "modelcar",
                        "image": car.image,
                        "restartPolicy": "Always",
                        "command": ["sh", "-c", "ln -sf /proc/$$/root/models /mnt/models && sleep infinity"],
                        "volumeMounts": [model_link],
                        "startupProbe": {
                            "exec": {"command": ["sh", "-c", "test -e /mnt/models/config.json"]},
                            "periodSeconds": 2,
                            "failureThreshold": 150,
                        },
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        "securityContext": as_user,
                    }
                ],
                "containers": [
                    {
                        "name": "vllm",
                        "image": pins.image("vllm"),
                        "args": [
                            f"--model={MODELCAR_MOUNT}/models",
                            f"--served-model-name={served_model_name(cfg)}",
                            f"--port={VLLM_PORT}",
                            "--gpu-memory-utilization=0.90",
                        ],
                        "env": [
                            {"name": "HOME", "value": "/tmp"},
                            {
                                "name": "VLLM_API_KEY",
                                "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}},
                            },
                        ],
                        "ports": [{"name": "http", "containerPort": VLLM_PORT}],
                        "readinessProbe": {
                            "httpGet": {"path": "/health", "port": "http"},
                            "periodSeconds": 5,
                        },
                        "startupProbe": {
                            "httpGet": {"path": "/health", "port": "http"},
                            "periodSeconds": 5,
                            "failureThreshold": 120,
                        },
                        "resources": {
                            "requests": {"cpu": "2", "memory": "12Gi", "nvidia.com/gpu": "1"},
                            "limits": {"memory": "24Gi", "nvidia.com/gpu": "1"},
                        },
                        "volumeMounts": [
                            model_link,
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                        ],
                        "securityContext": as_user,
                    }
                ],
                "volumes": [
                    {"name": "model-link", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
                ],
                **_gpu_scheduling(cfg),
            },
        },
    }
    if not cfg.features.autoscaling:
        spec = {"replicas": 1, **spec}  # with autoscaling, KEDA owns the replica count (0 when idle)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(cfg, "serving", VLLM_NAME, SERVING_NS, **labels),
        "spec": spec,
    }


# Written as a comment above the rendered ScaledObject (the manifest an operator reads), and followed
# by the triggers in _scaled_object below.
SCALE_FROM_ZERO_NOTE = (
    "Scale-from-zero: vllm:num_requests_waiting only exists while a vLLM pod runs, so at zero replicas\n"
    "it is empty and cannot wake the Deployment. Activation (0 -> 1) therefore uses\n"
    "agentgateway_requests_total, counted by the agentgateway data plane in front of the InferencePool,\n"
    "which runs whatever vLLM's replica count is: any request in the last 2 minutes activates it.\n"
    "Queue depth (vllm:num_requests_waiting > 5 per replica) drives scale-out from 1 to maxReplicaCount."
)


def _scaled_object(cfg: EnvConfig) -> dict[str, Any]:
    served = served_model_name(cfg)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(cfg, "serving", VLLM_NAME, SERVING_NS),
        "spec": {
            "scaleTargetRef": {"name": VLLM_NAME},
            "minReplicaCount": 0,
            "maxReplicaCount": cfg.serving.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 600,
            "triggers": [
                {
                    # Scale out on queue depth. This series only exists while a vLLM pod runs, so at zero
                    # replicas it is empty (= 0) and can never wake the Deployment up by itself.
                    "type": "prometheus",
                    "name": "queue-depth",
                    "metadata": {
                        "serverAddress": PROMETHEUS_URL,
                        "query": f'sum(vllm:num_requests_waiting{{namespace="{SERVING_NS}",'
                        f'model_name="{served}"}})',
                        "threshold": "5",
                        "activationThreshold": "0",
                    },
                },
                {
                    # Scale from zero: requests counted by the agentgateway data plane in front of the
                    # InferencePool. The gateway runs whatever the replica count, so this signal exists at
                    # zero replicas; any request in the last 2 minutes activates the Deployment (0 -> 1).
                    # Its threshold is high so it never drives scale-out (queue depth does).
                    "type": "prometheus",
                    "name": "gateway-requests",
                    "metadata": {
                        "serverAddress": PROMETHEUS_URL,
                        "query": "sum(increase(agentgateway_requests_total[2m]))",
                        "threshold": "1000000",
                        "activationThreshold": "0",
                        "ignoreNullValues": "true",
                    },
                },
            ],
        },
    }


def _kserve_isvc(
    cfg: EnvConfig, layer: str, name: str, namespace: str, image: str, car: Modelcar, *, gpu: bool
) -> dict[str, Any]:
    resources = (
        {"requests": {"cpu": "2", "memory": "12Gi", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
        if gpu
        else {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "12Gi"}}
    )
    predictor: dict[str, Any] = {
        "minReplicas": 0,
        "maxReplicas": cfg.serving.max_replicas if gpu else 1,
        # custom-container form: the webhook rejects `model` together with `containers`, so the modelcar
        # is named by the STORAGE_URI env var of kserve-container (KServe injects the modelcar sidecar)
        "containers": [
            {
                "name": "kserve-container",
                "image": image,
                "args": [
                    "--model=/mnt/models",
                    f"--served-model-name={served_model_name(cfg)}",
                    "--port=8080",
                ],
                "env": [{"name": "STORAGE_URI", "value": car.oci_uri}],
                "resources": resources,
            }
        ],
    }
    if gpu:
        predictor.update(_gpu_scheduling(cfg))
    labels = {DEMO_LABEL: "true"} if layer == "demos" else {}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            **_meta(cfg, layer, name, namespace, **labels),
            "annotations": {
                "serving.kserve.io/deploymentMode": "Standard",
                # no HPA (it cannot go below 1): parked at minReplicas 0, the managed alternative costs
                # nothing until an operator scales it or points traffic at it; raw vLLM is the default
                "serving.kserve.io/autoscalerClass": "external",
            },
        },
        "spec": {"predictor": predictor},
    }


def _llm_inference_service(cfg: EnvConfig, car: Modelcar, with_gateway: bool) -> dict[str, Any]:
    gpu_main = {"name": "main", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    router: dict[str, Any] = {"scheduler": {}, "route": {}}
    router["gateway"] = {"refs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NS}]} if with_gateway else {}
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": _meta(cfg, "serving", f"{served_model_name(cfg)}-llm-d", LLMD_NS),
        "spec": {
            "model": {"uri": car.oci_uri, "name": served_model_name(cfg)},
            # disaggregated: one decode and one prefill replica, one GPU each (needs >= 2 GPUs)
            "replicas": 1,
            "template": {"containers": [gpu_main], **_gpu_scheduling(cfg)},
            "prefill": {"replicas": 1, "template": {"containers": [gpu_main], **_gpu_scheduling(cfg)}},
            "router": router,
        },
    }


def serving_layer(cfg: EnvConfig, pins: Pins, car: Modelcar) -> LayerBuild:
    """Raw vLLM on the modelcar (default), KServe modelcar ISVC (features.kserve), llm-d (features.llm-d)."""
    b = LayerBuild(cfg, "serving", [], {})
    b.git_app(
        "serving-namespaces",
        SERVING_NS,
        -5,
        [
            _namespace(cfg, "serving", ns, **{KUEUE_MANAGED_LABEL: "true"})
            for ns in ([SERVING_NS, LLMD_NS] if cfg.features.llm_d else [SERVING_NS])
        ],
    )
    if cfg.features.kserve or cfg.features.llm_d:
        b.helm_app("kserve-crd", pins.chart("kserve-crd"), "kserve", -3, server_side=True)
        b.helm_app(
            "kserve",
            pins.chart("kserve-resources"),
            "kserve",
            -2,
            {
                "kserve": {
                    "controller": {"deploymentMode": "Standard"},
                    "storage": {"enableModelcar": True, "uidModelcar": 65532},
                }
            },
        )
    if cfg.features.llm_d:
        b.helm_app("kserve-llmisvc-crd", pins.chart("kserve-llmisvc-crd"), "kserve", -3, server_side=True)
        # the GIE CRDs come from the platform layer (pinned), so the chart must not bring its own
        b.helm_app(
            "kserve-llmisvc", pins.chart("kserve-llmisvc-resources"), "kserve", -2, {"createGIECRDs": False}
        )
    vllm_docs: list[dict[str, Any]] = [
        _external_secret(cfg, "serving", "vllm-api-key", SERVING_NS, {"api-key": "vllm-api-key"}),
        _vllm_deployment(cfg, pins, car),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(cfg, "serving", VLLM_NAME, SERVING_NS),
            "spec": {
                "selector": {"app.kubernetes.io/name": VLLM_NAME},
                "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(cfg, "serving", VLLM_NAME, SERVING_NS),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": VLLM_NAME}},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        },
        {
            # batch GPU work (evaluations, benchmarks) queues here; the serving Deployment is not gated
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": _meta(cfg, "serving", GPU_QUEUE, SERVING_NS),
            "spec": {"clusterQueue": GPU_QUEUE},
        },
    ]
    ignore = None
    if cfg.features.autoscaling:
        vllm_docs.append(_scaled_object(cfg))
        ignore = [
            {"group": "apps", "kind": "Deployment", "name": VLLM_NAME, "jsonPointers": ["/spec/replicas"]}
        ]
    b.git_app("raw-vllm", SERVING_NS, 1, vllm_docs, ignore_differences=ignore)
    if cfg.features.kserve:
        isvc = _kserve_isvc(
            cfg, "serving", f"{served_model_name(cfg)}-kserve", SERVING_NS, pins.image("vllm"), car, gpu=True
        )
        b.git_app("kserve-modelcar", SERVING_NS, 1, [isvc])
    if cfg.features.llm_d:
        with_gateway = "routing" in layers_for(cfg.profile)
        llmd_queue = {
            # GPU batch work beside llm-d queues on the same ClusterQueue (the llm-d pods are not gated)
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": _meta(cfg, "serving", GPU_QUEUE, LLMD_NS),
            "spec": {"clusterQueue": GPU_QUEUE},
        }
        b.git_app("llm-d", LLMD_NS, 1, [llmd_queue, _llm_inference_service(cfg, car, with_gateway)])
    return b


# --------------------------------------------------------------------------- routing


def routing_layer(cfg: EnvConfig, pins: Pins) -> LayerBuild:
    """agentgateway Gateway, InferencePool + EPP (GIE chart), model-name HTTPRoute in the pool's namespace."""
    b = LayerBuild(cfg, "routing", [], {})
    b.helm_app(
        "agentgateway-crds", pins.chart("agentgateway-crds"), "agentgateway-system", -3, server_side=True
    )
    b.helm_app(
        "agentgateway",
        pins.chart("agentgateway"),
        "agentgateway-system",
        -2,
        {"inferenceExtension": {"enabled": True}},
    )
    gateway_docs = [
        _namespace(cfg, "routing", GATEWAY_NS),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": _meta(cfg, "routing", GATEWAY_NAME, GATEWAY_NS),
            "spec": {
                "gatewayClassName": "agentgateway",
                "listeners": [
                    {
                        "name": "http",
                        "port": 80,
                        "protocol": "HTTP",
                        # only the serving namespaces may attach routes (demos never reach this gateway)
                        "allowedRoutes": {
                            "namespaces": {
                                "from": "Selector",
                                "selector": {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/metadata.name",
                                            "operator": "In",
                                            "values": [SERVING_NS, LLMD_NS]
                                            if cfg.features.llm_d
                                            else [SERVING_NS],
                                        }
                                    ]
                                },
                            }
                        },
                    }
                ],
            },
        },
        {
            # model-name routing: copy the OpenAI body's "model" into a header before route selection
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayPolicy",
            "metadata": _meta(cfg, "routing", "model-name-header", GATEWAY_NS),
            "spec": {
                "targetRefs": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY_NAME}
                ],
                "traffic": {
                    "phase": "PreRouting",
                    "transformation": {
                        "request": {
                            "set": [{"name": MODEL_HEADER, "value": "string(json(request.body).model)"}]
                        }
                    },
                },
            },
        },
        {
            # the data plane's request counter is the scale-from-zero signal of the vLLM ScaledObject
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(cfg, "routing", GATEWAY_NAME, GATEWAY_NS),
            "spec": {
                "selector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": GATEWAY_NAME}},
                "podMetricsEndpoints": [{"portNumber": AGENTGATEWAY_METRICS_PORT, "path": "/metrics"}],
            },
        },
    ]
    b.git_app("inference-gateway", GATEWAY_NS, 0, gateway_docs)
    b.helm_app(
        "inference-pool",
        pins.chart("inferencepool"),
        SERVING_NS,
        1,
        {
            "inferencePool": {
                "modelServers": {"matchLabels": {"app.kubernetes.io/name": VLLM_NAME}},
                "targetPorts": [{"number": VLLM_PORT}],
                "modelServerType": "vllm",
            },
            "provider": {"name": "none"},
            "inferenceExtension": {
                "replicas": 1,
                "failureMode": "FailOpen",
                # the chart's default (4 CPU / 8Gi) is sized for large fleets
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
            },
        },
        release=POOL_NAME,
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        # same namespace as the InferencePool: agentgateway ignores ReferenceGrants for pool backends
        "metadata": _meta(cfg, "routing", served_model_name(cfg), SERVING_NS),
        "spec": {
            "parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NS}],
            "rules": [
                {
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/v1"},
                            "headers": [
                                {"type": "Exact", "name": MODEL_HEADER, "value": served_model_name(cfg)}
                            ],
                        }
                    ],
                    "backendRefs": [
                        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": POOL_NAME}
                    ],
                    "timeouts": {"request": "300s"},
                }
            ],
        },
    }
    b.git_app("model-routes", SERVING_NS, 2, [route])
    return b


# --------------------------------------------------------------------------- llm-gateway


def llm_gateway_layer(cfg: EnvConfig, pins: Pins) -> LayerBuild:
    """LiteLLM (virtual keys, budgets, TPM/RPM, spend ledger, OpenAI /v1) on CloudNativePG Postgres."""
    b = LayerBuild(cfg, "llm-gateway", [], {})
    b.helm_app("cloudnative-pg", pins.chart("cloudnative-pg"), "cnpg-system", -3, server_side=True)
    instances = 2 if cfg.promotion.approval_required else 1  # gated (production) envs keep a standby
    bootstrap = [
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": _meta(cfg, "llm-gateway", "litellm-pg", LLM_GATEWAY_NS),
            "spec": {
                "instances": instances,
                "storage": {"size": "10Gi"},
                # CNPG generates the app credentials as Secret litellm-pg-app (never in git)
                "bootstrap": {"initdb": {"database": "litellm", "owner": "litellm"}},
            },
        },
        _external_secret(
            cfg,
            "llm-gateway",
            "litellm-master-key",
            LLM_GATEWAY_NS,
            {"PROXY_MASTER_KEY": "litellm-master-key", "LITELLM_SALT_KEY": "litellm-salt-key"},
        ),
        _external_secret(
            cfg, "llm-gateway", "litellm-upstream", LLM_GATEWAY_NS, {"UPSTREAM_API_KEY": "vllm-api-key"}
        ),
    ]
    b.git_app("litellm-bootstrap", LLM_GATEWAY_NS, 0, bootstrap)
    served = served_model_name(cfg)
    b.helm_app(
        "litellm",
        pins.chart("litellm"),
        LLM_GATEWAY_NS,
        1,
        {
            "masterkeySecretName": "litellm-master-key",
            "masterkeySecretKey": "PROXY_MASTER_KEY",
            "environmentSecrets": ["litellm-master-key", "litellm-upstream"],
            "envVars": {"PROXY_BASE_URL": f"https://api.{cfg.domain}", "DISABLE_SCHEMA_UPDATE": "true"},
            "db": {
                "useExisting": True,
                "deployStandalone": False,
                "endpoint": "litellm-pg-rw",
                "database": "litellm",
                "secret": {"name": "litellm-pg-app", "usernameKey": "username", "passwordKey": "password"},
            },
            "migrationJob": {"enabled": True},
            "proxy_config": {
                "model_list": [
                    {
                        "model_name": served,
                        "litellm_params": {
                            # openai/ = an OpenAI-compatible upstream: the agentgateway in front of the pool
                            "model": f"openai/{served}",
                            "api_base": f"http://{GATEWAY_NAME}.{GATEWAY_NS}.svc.cluster.local/v1",
                            "api_key": "os.environ/UPSTREAM_API_KEY",
                            # self-hosted tokens are priced so budgets bind (0 would never exhaust one)
                            "input_cost_per_token": 0.0000005,
                            "output_cost_per_token": 0.0000015,
                        },
                    }
                ],
                "general_settings": {
                    "master_key": "os.environ/PROXY_MASTER_KEY",
                    "disable_spend_logs": False,  # the spend ledger
                },
                "litellm_settings": {
                    # every virtual key gets a budget and rate limits unless the admin sets others
                    "default_key_generate_params": {
                        "max_budget": 10,
                        "budget_duration": "30d",
                        "tpm_limit": 100000,
                        "rpm_limit": 60,
                    },
                    "upperbound_key_generate_params": {
                        "max_budget": 1000,
                        "budget_duration": "30d",
                        "tpm_limit": 1000000,
                        "rpm_limit": 1000,
                    },
                },
            },
        },
    )
    return b


# --------------------------------------------------------------------------- demos


def demos_layer(cfg: EnvConfig, pins: Pins, car: Modelcar) -> LayerBuild:
    """DEMO ONLY: a CPU KServe demo and example tenants. Nothing here is on the request path."""
    b = LayerBuild(cfg, "demos", [], {})
    if not cfg.features.demos:
        return b  # the layer exists (the root points at it) with only its AppProject
    demo = {DEMO_LABEL: "true"}
    tenants: list[dict[str, Any]] = []
    for tenant in DEMO_TENANTS:
        tenants.append(_namespace(cfg, "demos", tenant, **demo, **{KUEUE_MANAGED_LABEL: "true"}))
        tenants.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": _meta(cfg, "demos", GPU_QUEUE, tenant, **demo),
                "spec": {"clusterQueue": GPU_QUEUE},
            }
        )
    b.git_app("demo-tenants", DEMOS_NS, 0, tenants)
    if cfg.features.kserve:
        isvc = _kserve_isvc(
            cfg, "demos", f"{served_model_name(cfg)}-cpu", DEMOS_NS, pins.image("vllm-cpu"), car, gpu=False
        )
        b.git_app("kserve-cpu-demo", DEMOS_NS, 1, [_namespace(cfg, "demos", DEMOS_NS, **demo), isvc])
    return b


# --------------------------------------------------------------------------- render / write / check


_DESCRIPTIONS = {
    "platform": "Cluster services: Argo CD, cert-manager, ESO, Gateway API/GIE CRDs, Kueue, KEDA, monitoring",
    "serving": "Model servers: raw vLLM on the modelcar (default), KServe and llm-d alternatives",
    "routing": "agentgateway, InferencePool + EPP, model-name routes",
    "llm-gateway": "LiteLLM tenant gateway (keys, budgets, limits, spend) on CloudNativePG",
    "demos": "DEMO ONLY, never on the request path: CPU KServe demo and example tenants",
}


def _header(cfg: EnvConfig, what: str) -> str:
    lines = "".join(f"# {line}\n" for line in what.splitlines())
    return (
        f"{lines}# Generated by `deliver layers render --env {cfg.name} --write` from {cfg.path} and "
        f"{PINS_FILE}; do not edit by hand.\n"
    )


def render_layers(repo: Path, cfg: EnvConfig) -> dict[str, str]:
    """Every file of clusters/<env>/layers/ (paths relative to it) -> its YAML text, for the env's profile."""
    pins = load_pins(repo)
    car = modelcar_for(repo, cfg, pins)
    builders = {
        "platform": lambda: platform_layer(cfg, pins),
        "serving": lambda: serving_layer(cfg, pins, car),
        "routing": lambda: routing_layer(cfg, pins),
        "llm-gateway": lambda: llm_gateway_layer(cfg, pins),
        "demos": lambda: demos_layer(cfg, pins, car),
    }
    files: dict[str, str] = {}
    for layer in layers_for(cfg.profile):
        build = builders[layer]()
        project = build.project(_DESCRIPTIONS[layer])
        files[f"{layer}/project.yaml"] = _header(cfg, f"AppProject of the {layer} layer.") + yamlio.dump_all(
            [project]
        )
        for app in build.apps:
            name = app["metadata"]["name"]
            files[f"{layer}/{name}.yaml"] = _header(
                cfg, f"Application {name} ({layer} layer)."
            ) + yamlio.dump_all([app])
        for component, docs in build.components.items():
            for doc in docs:
                ns = doc["metadata"].get("namespace")
                stem = "-".join(p for p in (doc["kind"].lower(), ns, doc["metadata"]["name"]) if p)
                rel = f"{COMPONENTS}/{layer}/{component}/{stem}.yaml"
                if rel in files:
                    raise ValueError(f"two manifests render to {rel}")
                note = f"{doc['kind']} of component {component} ({layer} layer)"
                if layer == "demos":
                    note = "DEMO ONLY (never on the request path): " + note
                body = yamlio.dump_all([doc])
                note += f"; modelcar digest from {car.source}." if car.image in body else "."
                if doc["kind"] == "ScaledObject":
                    note += "\n" + SCALE_FROM_ZERO_NOTE
                files[rel] = _header(cfg, note) + body
    return dict(sorted(files.items()))


def write_layers(repo: Path, cfg: EnvConfig, files: dict[str, str] | None = None) -> list[str]:
    """Replace clusters/<env>/layers/ with the rendered files, atomically; returns the written paths."""
    files = render_layers(repo, cfg) if files is None else files
    target = layers_dir(repo, cfg.name)
    with atomic_directory(target) as tmp:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return [str((target / rel).relative_to(repo)) for rel in files]


def drift(repo: Path, cfg: EnvConfig) -> list[Problem]:
    """Differences between the committed layers and a fresh render: missing, changed and extra files."""
    files = render_layers(repo, cfg)
    base = layers_dir(repo, cfg.name)
    fix = f"run: deliver layers render --env {cfg.name} --write"
    problems = []
    existing = (
        {str(p.relative_to(base)): p for p in sorted(base.rglob("*")) if p.is_file()} if base.is_dir() else {}
    )
    for rel, text in files.items():
        shown = str((base / rel).relative_to(repo))
        if rel not in existing:
            problems.append(Problem(shown, "missing: the config renders this file", fix))
        elif existing[rel].read_text(encoding="utf-8") != text:
            problems.append(Problem(shown, "out of date with the environment config or pins", fix))
    for rel in existing:
        if rel not in files:
            shown = str((base / rel).relative_to(repo))
            problems.append(Problem(shown, "not rendered from the config (stale or hand-written)", fix))
    return problems
