"""The serving layer: raw vLLM on the modelcar (default), KServe and llm-d alternatives."""

from __future__ import annotations

from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.artifacts import Modelcar
from delivery.gitops.builder import (
    LayerBuild,
    external_secret,
    gpu_scheduling,
    namespace_doc,
    object_labels,
    object_meta,
    served_model_name,
)
from delivery.gitops.conventions import (
    BASELINE,
    DEMO_LABEL,
    GATEWAY_NAME,
    GATEWAY_NS,
    GPU_QUEUE,
    KSERVE_NS,
    KSERVE_SERVING_NS,
    KUEUE_MANAGED_LABEL,
    LLMD_NS,
    MODELCAR_MOUNT,
    PROMETHEUS_URL,
    RESTRICTED,
    SERVING_NS,
    VLLM_NAME,
    VLLM_PORT,
    layers_for,
    request_path,
)
from delivery.gitops.pins import Pins
from delivery.gitops.security import (
    RUN_AS,
    model_server_egress,
    network_policies,
    pss_labels,
    restricted_container,
    restricted_pod,
)


def _vllm_deployment(cfg: EnvConfig, pins: Pins, car: Modelcar) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": VLLM_NAME}
    model_link = {"name": "model-link", "mountPath": MODELCAR_MOUNT}
    # Pod Security "restricted", read-only root, no capabilities. Both containers need the same uid
    # and the same (empty) capability set: vLLM reads the modelcar's files through
    # /proc/<pid>/root, which the kernel allows only between processes of the same user and whose
    # capabilities the reader's include (kserve/kserve#4995).
    secure = restricted_container()
    spec: dict[str, Any] = {
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": {**object_labels(cfg, "serving"), **labels}},
            "spec": {
                # The modelcar runs as a native sidecar and links its /models into the shared /mnt; vLLM
                # reads /mnt/models through the shared process namespace (KServe's modelcar mechanism).
                "shareProcessNamespace": True,
                "automountServiceAccountToken": False,  # neither container talks to the API server
                "securityContext": restricted_pod(),
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
                        "resources": {
                            "requests": {"cpu": "10m", "memory": "16Mi"},
                            "limits": {"cpu": "100m", "memory": "64Mi"},
                        },
                        "securityContext": secure,
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
                            # the weights are local and egress is DNS only: never try the hub or telemetry
                            {"name": "HF_HUB_OFFLINE", "value": "1"},
                            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                            {"name": "DO_NOT_TRACK", "value": "1"},
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
                        # after the startup probe passed: a wedged engine is restarted, a slow one is not
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": "http"},
                            "periodSeconds": 10,
                            "timeoutSeconds": 5,
                            "failureThreshold": 6,
                        },
                        "resources": {
                            "requests": {"cpu": "2", "memory": "12Gi", "nvidia.com/gpu": "1"},
                            "limits": {"cpu": "8", "memory": "24Gi", "nvidia.com/gpu": "1"},
                        },
                        "volumeMounts": [
                            model_link,
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                        ],
                        "securityContext": secure,
                    }
                ],
                "volumes": [
                    {"name": "model-link", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
                ],
                **gpu_scheduling(cfg),
            },
        },
    }
    if not cfg.features.autoscaling:
        spec = {"replicas": 1, **spec}  # with autoscaling, KEDA owns the replica count (0 when idle)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(cfg, "serving", VLLM_NAME, SERVING_NS, **labels),
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
        "metadata": object_meta(cfg, "serving", VLLM_NAME, SERVING_NS),
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


def kserve_isvc(
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
        # KServe's modelcar webhook replaces kserve-container's securityContext with runAsUser only
        # (uidModelcar): what holds is the pod-level part, so its namespace can only enforce baseline
        "securityContext": restricted_pod(),
        "automountServiceAccountToken": False,
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
                "securityContext": restricted_container(),
            }
        ],
    }
    if gpu:
        predictor.update(gpu_scheduling(cfg))
    labels = {DEMO_LABEL: "true"} if layer == "demos" else {}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            **object_meta(cfg, layer, name, namespace, **labels),
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
        "metadata": object_meta(cfg, "serving", f"{served_model_name(cfg)}-llm-d", LLMD_NS),
        "spec": {
            "model": {"uri": car.oci_uri, "name": served_model_name(cfg)},
            # disaggregated: one decode and one prefill replica, one GPU each (needs >= 2 GPUs)
            "replicas": 1,
            "template": {"containers": [gpu_main], **gpu_scheduling(cfg)},
            "prefill": {"replicas": 1, "template": {"containers": [gpu_main], **gpu_scheduling(cfg)}},
            "router": router,
        },
    }


def _namespaces(cfg: EnvConfig) -> list[dict[str, Any]]:
    """The serving namespaces with their Pod Security labels, and the request path's NetworkPolicies
    for them (and for KServe's namespace, which Argo CD creates)."""
    # restricted is enforced where only pods we render run (raw vLLM and its modelcar); KServe's
    # pods (their container security context rewritten by KServe's webhook) and llm-d's (made by its
    # controller) live apart and can only be held to baseline: there restricted is warned and audited
    queued = {KUEUE_MANAGED_LABEL: "true"}
    docs = [namespace_doc(cfg, "serving", SERVING_NS, **queued, **pss_labels(cfg, RESTRICTED))]
    if cfg.features.kserve:
        docs.append(namespace_doc(cfg, "serving", KSERVE_SERVING_NS, **queued, **pss_labels(cfg, BASELINE)))
    if cfg.features.llm_d:
        docs.append(namespace_doc(cfg, "serving", LLMD_NS, **queued, **pss_labels(cfg, BASELINE)))
    for ns in request_path(cfg):
        if ns in (SERVING_NS, KSERVE_SERVING_NS, LLMD_NS, KSERVE_NS):
            docs += network_policies(cfg, "serving", ns)
    docs.append(model_server_egress(cfg, "serving", SERVING_NS, {"app.kubernetes.io/name": VLLM_NAME}))
    return docs


def serving_layer(cfg: EnvConfig, pins: Pins, car: Modelcar) -> LayerBuild:
    """Raw vLLM on the modelcar (default), KServe modelcar ISVC (features.kserve), llm-d (features.llm-d)."""
    b = LayerBuild(cfg, "serving", [], {})
    b.git_app("serving-namespaces", SERVING_NS, -5, _namespaces(cfg))
    if cfg.features.kserve or cfg.features.llm_d:
        b.helm_app("kserve-crd", pins.chart("kserve-crd"), KSERVE_NS, -3, server_side=True)
        b.helm_app(
            "kserve",
            pins.chart("kserve-resources"),
            KSERVE_NS,
            -2,
            {
                "kserve": {
                    "controller": {"deploymentMode": "Standard"},
                    "storage": {"enableModelcar": True, "uidModelcar": RUN_AS},
                }
            },
        )
    if cfg.features.llm_d:
        b.helm_app("kserve-llmisvc-crd", pins.chart("kserve-llmisvc-crd"), KSERVE_NS, -3, server_side=True)
        # the GIE CRDs come from the platform layer (pinned), so the chart must not bring its own
        b.helm_app(
            "kserve-llmisvc", pins.chart("kserve-llmisvc-resources"), KSERVE_NS, -2, {"createGIECRDs": False}
        )
    vllm_docs: list[dict[str, Any]] = [
        external_secret(cfg, "serving", "vllm-api-key", SERVING_NS, {"api-key": "vllm-api-key"}),
        _vllm_deployment(cfg, pins, car),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(cfg, "serving", VLLM_NAME, SERVING_NS),
            "spec": {
                "selector": {"app.kubernetes.io/name": VLLM_NAME},
                "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": object_meta(cfg, "serving", VLLM_NAME, SERVING_NS),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": VLLM_NAME}},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        },
        {
            # batch GPU work (evaluations, benchmarks) queues here; the serving Deployment is not gated
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": object_meta(cfg, "serving", GPU_QUEUE, SERVING_NS),
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
        isvc = kserve_isvc(
            cfg,
            "serving",
            f"{served_model_name(cfg)}-kserve",
            KSERVE_SERVING_NS,
            pins.image("vllm"),
            car,
            gpu=True,
        )
        kserve_queue = {
            # GPU batch work beside KServe's servers queues on the same ClusterQueue (as in serving)
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": object_meta(cfg, "serving", GPU_QUEUE, KSERVE_SERVING_NS),
            "spec": {"clusterQueue": GPU_QUEUE},
        }
        b.git_app("kserve-modelcar", KSERVE_SERVING_NS, 1, [kserve_queue, isvc])
    if cfg.features.llm_d:
        with_gateway = "routing" in layers_for(cfg.profile)
        llmd_queue = {
            # GPU batch work beside llm-d queues on the same ClusterQueue (the llm-d pods are not gated)
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": object_meta(cfg, "serving", GPU_QUEUE, LLMD_NS),
            "spec": {"clusterQueue": GPU_QUEUE},
        }
        b.git_app("llm-d", LLMD_NS, 1, [llmd_queue, _llm_inference_service(cfg, car, with_gateway)])
    return b
