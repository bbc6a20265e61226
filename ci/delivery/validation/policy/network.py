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

from delivery.gitops.conventions import (
    ANY,
    NAME_LABEL,
    PSS_ENFORCE,
    RESTRICTED,
    Edge,
    request_path,
)
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
    if isinstance(types, list) and types:  # an empty list is defaulted like a missing one
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]  # the API server's defaulting


def _named_namespaces(selector: dict[str, Any]) -> set[str] | None:
    """The namespaces a selector can pick, bounded by their names (``kubernetes.io/metadata.name``),
    or None when nothing bounds the name: an empty selector, or one on labels alone (any
    namespace's owner can set those: a tenant too). Requirements are ANDed, so a name constraint
    beside other labels still bounds the set."""
    labels = _mapping(selector.get("matchLabels"))
    names: set[str] | None = None
    if NAME_LABEL in labels:
        names = {str(labels[NAME_LABEL])}
    for e in selector.get("matchExpressions") or []:
        e = _mapping(e)
        if e.get("key") == NAME_LABEL and e.get("operator") == "In":
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
        if not isinstance(port, int) or str(_mapping(p).get("protocol") or "TCP") != "TCP":
            return None  # a named port, no port, or UDP/SCTP (the graph is TCP): every port
        end = _mapping(p).get("endPort")
        out.update(range(port, int(end) + 1) if isinstance(end, int) else [port])
    return frozenset(out)


def effective_namespace(m: Manifest, ctx: EnvContext) -> str:
    """Where Argo CD applies ``m``: its own namespace, else its Application's destination namespace."""
    if m.namespace:
        return m.namespace
    app = ctx.owning_app(m)
    return str(_mapping(_mapping(app).get("destination")).get("namespace") or "") if app else ""


def _app_destinations(ctx: EnvContext) -> set[str]:
    return {
        str(_mapping(spec.get("destination")).get("namespace"))
        for spec in ctx.applications.values()
        if _mapping(spec.get("destination")).get("namespace")
    }


def openings(m: Manifest, namespace: str | None = None) -> Iterator[Opening]:
    """Every (source, ports) an ingress NetworkPolicy lets into its namespace (``namespace``: where
    it is applied, when the manifest does not say)."""
    own = namespace if namespace is not None else m.namespace
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
                yield Opening(own, ports, m, path)


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
    # every namespace the env deploys into: manifests' own, Namespace documents and the
    # Applications' destinations (Argo CD creates some namespaces, e.g. kserve)
    deployed = (
        {m.namespace for m in ctx.manifests if m.namespace}
        | {m.name for m in ctx.manifests if m.kind == "Namespace"}
        | _app_destinations(ctx)
    )
    policies = [
        (m, effective_namespace(m, ctx))
        for m in ctx.manifests
        if m.kind == "NetworkPolicy" and m.api_version == "networking.k8s.io/v1"
    ]
    found: list[Finding] = []
    env_dir = f"clusters/{ctx.cfg.name}/layers"
    for ns, edges in graph.items():
        if ns not in deployed:
            continue  # its layer is not in this env's profile
        mine = [m for m, where in policies if where == ns]
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
            for o in openings(m, ns):
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


# The sysctls Pod Security "baseline" allows (the safe set of the kubelet)
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _platform_options(sc: dict[str, Any], where: JsonPath, who: str) -> Iterator[tuple[JsonPath, str]]:
    """SELinux, AppArmor and Windows options that baseline (so restricted) forbids."""
    selinux = _mapping(sc.get("seLinuxOptions"))
    if selinux.get("type") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        yield (*where, "seLinuxOptions"), f"{who} sets a custom SELinux type, user or role"
    if _mapping(sc.get("appArmorProfile")).get("type") == "Unconfined":
        yield (*where, "appArmorProfile"), f"{who} runs AppArmor-unconfined"
    if _mapping(sc.get("windowsOptions")).get("hostProcess"):
        yield (*where, "windowsOptions", "hostProcess"), f"{who} is a Windows host process"


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
    if ctx.get("runAsUser") == 0:
        yield ("securityContext", "runAsUser"), "the pod runs as uid 0"
    unsafe = [str(_mapping(x).get("name")) for x in ctx.get("sysctls") or []]
    unsafe = [n for n in unsafe if n not in _SAFE_SYSCTLS]
    if unsafe:
        yield ("securityContext", "sysctls"), f"unsafe sysctls {', '.join(unsafe)}"
    yield from _platform_options(ctx, ("securityContext",), "the pod")
    pod_seccomp = _mapping(ctx.get("seccompProfile")).get("type")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(pod.get(group) or []):
            c = _mapping(c)
            sc = _mapping(c.get("securityContext"))
            where: JsonPath = (group, i, "securityContext")
            name = c.get("name", i)
            for j, port in enumerate(c.get("ports") or []):
                if _mapping(port).get("hostPort"):
                    yield (group, i, "ports", j, "hostPort"), f"container {name} uses a hostPort"
            if sc.get("procMount") not in (None, "Default"):
                yield (*where, "procMount"), f"container {name} unmasks /proc"
            yield from _platform_options(sc, where, f"container {name}")
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
