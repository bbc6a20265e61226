"""The demos layer (DEMO ONLY, never on the request path)."""

from __future__ import annotations

from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.artifacts import Modelcar
from delivery.gitops.builder import (
    LayerBuild,
    namespace_doc,
    object_meta,
    served_model_name,
)
from delivery.gitops.conventions import (
    BASELINE,
    DEMO_LABEL,
    DEMO_TENANTS,
    DEMOS_NS,
    GPU_QUEUE,
    KUEUE_MANAGED_LABEL,
    RESTRICTED,
)
from delivery.gitops.pins import Pins
from delivery.gitops.security import pss_labels
from delivery.gitops.serving import kserve_isvc


def demos_layer(cfg: EnvConfig, pins: Pins, car: Modelcar) -> LayerBuild:
    """DEMO ONLY: a CPU KServe demo and example tenants. Nothing here is on the request path."""
    b = LayerBuild(cfg, "demos", [], {})
    if not cfg.features.demos:
        return b  # the layer exists (the root points at it) with only its AppProject
    demo = {DEMO_LABEL: "true"}
    tenants: list[dict[str, Any]] = []
    for tenant in DEMO_TENANTS:
        # a tenant's own pods run restricted: nothing we ship runs there
        tenants.append(
            namespace_doc(
                cfg, "demos", tenant, **demo, **{KUEUE_MANAGED_LABEL: "true"}, **pss_labels(cfg, RESTRICTED)
            )
        )
        tenants.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": object_meta(cfg, "demos", GPU_QUEUE, tenant, **demo),
                "spec": {"clusterQueue": GPU_QUEUE},
            }
        )
    b.git_app("demo-tenants", DEMOS_NS, 0, tenants)
    if cfg.features.kserve:
        isvc = kserve_isvc(
            cfg, "demos", f"{served_model_name(cfg)}-cpu", DEMOS_NS, pins.image("vllm-cpu"), car, gpu=False
        )
        # the CPU demo is a KServe pod (its container security context is KServe's): baseline enforced
        ns = namespace_doc(cfg, "demos", DEMOS_NS, **demo, **pss_labels(cfg, BASELINE))
        b.git_app("kserve-cpu-demo", DEMOS_NS, 1, [ns, isvc])
    return b
