"""Rules on who may reach what, and how the pods we render run.

- ``request-path``: evaluates the env's NetworkPolicies (pod and namespace selectors, ports) and
  computes, for each request-path namespace (``gitops.security.request_path``: the model servers,
  the inference gateway, KServe's controllers), which namespaces may open connections into it and on
  which ports; every edge outside the glossary's graph is a finding (a demo tenant reaching vLLM,
  any namespace reaching the gateway), as is a namespace on the path without default-deny ingress
  and a namespace selector on a label a tenant could set on its own namespace.
- ``pod-security``: each pod we render meets the Pod Security Standards' ``restricted`` profile
  (KServe's InferenceServices: the pod-level part, which its webhook leaves alone), and each
  namespace we render carries an enforce level, ``restricted`` where no KServe or llm-d pod runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from delivery.gitops.conventions import ANY, NAME_LABEL, PSS_ENFORCE, RESTRICTED, Edge, request_path
from delivery.validation.findings import Finding
from delivery.validation.manifests import Manifest
from delivery.validation.policy.context import EnvContext, JsonPath, finding

_FIX_EDGE = (
    "allow only the request path's edges (gitops/conventions.py request_path: LiteLLM -> the gateway "
    "-> the model servers, Prometheus, the API server's webhook calls); re-render the layers"
)


@dataclass(frozen=True)
class Opening:
    """An ingress rule's effect: ``source`` (a namespace, or ANY) may connect on ``ports`` (None: all)."""

    source: str
    ports: frozenset[int] | None
    manifest: Manifest
    path: JsonPath


def _mapping(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _policy_types(spec: dict[str, Any]) -> list[str]:
    types = spec.get("policyTypes")
    if isinstance(types, list):
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]  # the API server's defaulting


def _named_namespaces(selector: dict[str, Any]) -> set[str] | None:
    """The namespaces a selector picks by name (``kubernetes.io/metadata.name``), or None when it
    selects on anything else (a label any namespace's owner can set: a tenant too) or on nothing."""
    labels = _mapping(selector.get("matchLabels"))
    exprs = selector.get("matchExpressions") or []
    if not labels and not exprs:
        return None  # {}: every namespace
    names: set[str] | None = None
    if labels:
        if set(labels) != {NAME_LABEL}:
            return None
        names = {str(labels[NAME_LABEL])}
    for e in exprs:
        e = _mapping(e)
        if e.get("key") != NAME_LABEL or e.get("operator") != "In":
            return None
        values = {str(v) for v in e.get("values") or []}
        names = values if names is None else names & values
    return names


def _ports(rule: dict[str, Any]) -> frozenset[int] | None:
    ports = rule.get("ports")
    if not ports:
        return None
    out: set[int] = set()
    for p in ports:
        port = _mapping(p).get("port")
        if not isinstance(port, int):
            return None  # a named port or a range start: treat as every port (conservative)
        end = _mapping(p).get("endPort")
        out.update(range(port, int(end) + 1) if isinstance(end, int) else [port])
    return frozenset(out)


def openings(m: Manifest) -> Iterator[Opening]:
    """Every (source, ports) an ingress NetworkPolicy lets into its namespace."""
    spec = _mapping(m.doc.get("spec"))
    if "Ingress" not in _policy_types(spec):
        return
    for i, rule in enumerate(spec.get("ingress") or []):
        rule = _mapping(rule)
        ports = _ports(rule)
        peers = rule.get("from")
        if not peers:  # no from: every source
            yield Opening(ANY, ports, m, ("spec", "ingress", i))
            continue
        for j, peer in enumerate(peers):
            peer = _mapping(peer)
            path: JsonPath = ("spec", "ingress", i, "from", j)
            if "ipBlock" in peer:
                yield Opening(ANY, ports, m, path)  # pod IPs of any namespace may fall in the block
            elif "namespaceSelector" in peer:
                names = _named_namespaces(_mapping(peer["namespaceSelector"]))
                for source in sorted(names) if names is not None else [ANY]:
                    yield Opening(source, ports, m, (*path, "namespaceSelector"))
            else:  # podSelector alone: pods of the policy's own namespace
                yield Opening(m.namespace, ports, m, path)


def _default_deny(m: Manifest) -> bool:
    spec = _mapping(m.doc.get("spec"))
    return (
        _mapping(spec.get("podSelector")) == {}
        and "Ingress" in _policy_types(spec)
        and not spec.get("ingress")
    )


def _allowed(opening: Opening, edges: tuple[Edge, ...]) -> bool:
    for edge in edges:
        if edge.source not in (ANY, opening.source):
            continue
        if edge.ports is None or (opening.ports is not None and opening.ports <= set(edge.ports)):
            return True
    return False


def _shown(ports: frozenset[int] | None) -> str:
    return "every port" if ports is None else "port " + ", ".join(str(p) for p in sorted(ports))


def request_path_rule(ctx: EnvContext) -> list[Finding]:
    """``request-path``: the rendered NetworkPolicies let in exactly the request path's edges."""
    graph = request_path(ctx.cfg)
    deployed = {m.namespace for m in ctx.manifests if m.namespace} | {
        m.name for m in ctx.manifests if m.kind == "Namespace"
    }
    policies = [
        m for m in ctx.manifests if m.kind == "NetworkPolicy" and m.api_version == "networking.k8s.io/v1"
    ]
    found: list[Finding] = []
    env_dir = f"clusters/{ctx.cfg.name}/layers"
    for ns, edges in graph.items():
        if ns not in deployed:
            continue  # its layer is not in this env's profile
        mine = [m for m in policies if m.namespace == ns]
        if not any(_default_deny(m) for m in mine):
            found.append(
                Finding.at(
                    env_dir,
                    f"Namespace/{ns}",
                    "request-path",
                    f"namespace {ns} is on the request path but has no default-deny ingress NetworkPolicy, "
                    "so every pod in the cluster (a demo tenant's too) can reach it",
                    f"add a NetworkPolicy in {ns} with podSelector: {{}} and policyTypes: [Ingress] "
                    "(the renderer writes default-deny-ingress); re-render the layers",
                )
            )
        for m in mine:
            for o in openings(m):
                if _allowed(o, edges):
                    continue
                who = "any namespace (a demo tenant's too)" if o.source == ANY else f"namespace {o.source}"
                why = (
                    " (it selects namespaces by a label their owners can set: select by "
                    f"{NAME_LABEL} instead)"
                    if o.source == ANY and "namespaceSelector" in o.path
                    else ""
                )
                found.append(
                    finding(
                        m,
                        "request-path",
                        f"lets {who} reach {ns} on {_shown(o.ports)}: not an edge of the request path{why}",
                        _FIX_EDGE,
                        o.path,
                    )
                )
    return found


# --------------------------------------------------------------------------- Pod Security Standards

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "name",
}


def _pod_spec(m: Manifest) -> tuple[JsonPath, dict[str, Any]] | None:
    spec = _mapping(m.doc.get("spec"))
    if m.kind == "Pod":
        return ("spec",), spec
    if m.kind in POD_KINDS:
        return ("spec", "template", "spec"), _mapping(_mapping(spec.get("template")).get("spec"))
    if m.kind == "CronJob":
        job = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
        return ("spec", "jobTemplate", "spec", "template", "spec"), _mapping(
            _mapping(job.get("template")).get("spec")
        )
    return None


def _restricted_problems(pod: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    """What keeps a pod spec from the ``restricted`` profile (paths relative to the pod spec)."""
    ctx = _mapping(pod.get("securityContext"))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            yield (key,), f"{key} is set"
    for i, vol in enumerate(pod.get("volumes") or []):
        kinds = set(_mapping(vol)) - _RESTRICTED_VOLUMES
        if kinds:
            yield ("volumes", i), f"volume type {', '.join(sorted(kinds))} is not allowed"
    pod_seccomp = _mapping(ctx.get("seccompProfile")).get("type")
    for group in ("initContainers", "containers"):
        for i, c in enumerate(pod.get(group) or []):
            c = _mapping(c)
            sc = _mapping(c.get("securityContext"))
            where: JsonPath = (group, i, "securityContext")
            name = c.get("name", i)
            if sc.get("privileged"):
                yield (*where, "privileged"), f"container {name} is privileged"
            if sc.get("allowPrivilegeEscalation") is not False:
                yield (*where, "allowPrivilegeEscalation"), f"container {name} may escalate privileges"
            if (sc.get("runAsNonRoot") if "runAsNonRoot" in sc else ctx.get("runAsNonRoot")) is not True:
                yield (*where, "runAsNonRoot"), f"container {name} may run as root"
            if (sc.get("runAsUser") if "runAsUser" in sc else ctx.get("runAsUser")) == 0:
                yield (*where, "runAsUser"), f"container {name} runs as uid 0"
            caps = _mapping(sc.get("capabilities"))
            if "ALL" not in (caps.get("drop") or []):
                yield (*where, "capabilities", "drop"), f"container {name} does not drop ALL capabilities"
            extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
            if extra:
                yield (*where, "capabilities", "add"), f"container {name} adds {', '.join(sorted(extra))}"
            seccomp = _mapping(sc.get("seccompProfile")).get("type") or pod_seccomp
            if seccomp not in ("RuntimeDefault", "Localhost"):
                yield (*where, "seccompProfile"), f"container {name} has no RuntimeDefault seccomp profile"


def pod_security(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``pod-security``: the pods we render meet ``restricted``; our namespaces enforce a level."""
    fix = "render it with gitops/security.py's restricted_pod() and restricted_container()"
    if m.kind == "Namespace":
        return _namespace_level(m, ctx)
    if m.kind == "InferenceService":
        # KServe's webhook replaces the container security context: what we can hold is the pod's
        predictor = _mapping(_mapping(m.doc.get("spec")).get("predictor"))
        sc = _mapping(predictor.get("securityContext"))
        problems = []
        if sc.get("runAsNonRoot") is not True:
            problems.append("the predictor pod may run as root (securityContext.runAsNonRoot)")
        if _mapping(sc.get("seccompProfile")).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append("the predictor pod has no RuntimeDefault seccomp profile")
        return [
            finding(m, "pod-security", p, fix, ("spec", "predictor", "securityContext")) for p in problems
        ]
    located = _pod_spec(m)
    if located is None:
        return []
    base, pod = located
    return [
        finding(m, "pod-security", f"{what} (Pod Security restricted)", fix, (*base, *path))
        for path, what in _restricted_problems(pod)
    ]


# Objects whose pods a controller makes with security contexts we do not set (KServe's webhook
# rewrites the predictor's; llm-d's and agentgateway's controllers write their own).
CONTROLLER_POD_KINDS = ("InferenceService", "LLMInferenceService", "Gateway")


def _namespace_level(m: Manifest, ctx: EnvContext) -> list[Finding]:
    labels = _mapping(m.metadata.get("labels"))
    level = labels.get(PSS_ENFORCE)
    where = ("metadata", "labels")
    if level not in ("restricted", "baseline"):
        return [
            finding(
                m,
                "pod-security",
                f"namespace {m.name} enforces no Pod Security level ({PSS_ENFORCE} is {level!r})",
                "label it with gitops/security.py pss_labels(): restricted, or baseline where KServe, llm-d "
                "or gateway pods run",
                where,
            )
        ]
    controller_pods = any(x.namespace == m.name and x.kind in CONTROLLER_POD_KINDS for x in ctx.manifests)
    if level != RESTRICTED and not controller_pods:
        return [
            finding(
                m,
                "pod-security",
                f"namespace {m.name} enforces {level} but only pods we render run there: enforce restricted",
                f"set {PSS_ENFORCE}: restricted (gitops/security.py pss_labels)",
                where,
            )
        ]
    return []
