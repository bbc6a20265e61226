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
    DEMO_LABEL,
    GATEWAY_NAME,
    GATEWAY_NS,
    GPU_QUEUE,
    KUEUE_MANAGED_LABEL,
    LLMD_NS,
    MODELCAR_MOUNT,
    PROMETHEUS_URL,
    SERVING_NS,
    VLLM_NAME,
    VLLM_PORT,
    layers_for,
)
from delivery.gitops.pins import Pins


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
            "metadata": {"labels": {**object_labels(cfg, "serving"), **labels}},
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


def serving_layer(cfg: EnvConfig, pins: Pins, car: Modelcar) -> LayerBuild:
    """Raw vLLM on the modelcar (default), KServe modelcar ISVC (features.kserve), llm-d (features.llm-d)."""
    b = LayerBuild(cfg, "serving", [], {})
    b.git_app(
        "serving-namespaces",
        SERVING_NS,
        -5,
        [
            namespace_doc(cfg, "serving", ns, **{KUEUE_MANAGED_LABEL: "true"})
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
            cfg, "serving", f"{served_model_name(cfg)}-kserve", SERVING_NS, pins.image("vllm"), car, gpu=True
        )
        b.git_app("kserve-modelcar", SERVING_NS, 1, [isvc])
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
