"""The routing layer: agentgateway, InferencePool + EPP, model-name routes."""

from __future__ import annotations

from delivery.config import EnvConfig
from delivery.gitops.builder import (
    LayerBuild,
    namespace_doc,
    object_meta,
    served_model_name,
)
from delivery.gitops.conventions import (
    AGENTGATEWAY_METRICS_PORT,
    BASELINE,
    GATEWAY_NAME,
    GATEWAY_NS,
    LLMD_NS,
    MODEL_HEADER,
    POOL_NAME,
    SERVING_NS,
    VLLM_NAME,
    VLLM_PORT,
)
from delivery.gitops.pins import Pins
from delivery.gitops.security import network_policies, pss_labels


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
        # the gateway's proxy pods are made by the agentgateway controller: baseline enforced,
        # restricted warned and audited
        namespace_doc(cfg, "routing", GATEWAY_NS, **pss_labels(cfg, BASELINE)),
        *network_policies(cfg, "routing", GATEWAY_NS),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": object_meta(cfg, "routing", GATEWAY_NAME, GATEWAY_NS),
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
            "metadata": object_meta(cfg, "routing", "model-name-header", GATEWAY_NS),
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
            "metadata": object_meta(cfg, "routing", GATEWAY_NAME, GATEWAY_NS),
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
        "metadata": object_meta(cfg, "routing", served_model_name(cfg), SERVING_NS),
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
