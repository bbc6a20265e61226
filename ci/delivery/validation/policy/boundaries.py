"""Rules on the platform's boundaries: demos stay off the request path, and the substrate boundary
holds both ways (no cloud resources under clusters/, no in-cluster objects under tofu/).

The tofu/ side is the substrate's own HCL rule (``delivery.substrate.policy.no_in_cluster_providers``)
run over every module directory under tofu/; its problems become ``tofu-provider`` findings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from delivery.core.errors import Location, Problem, ValidationFailed
from delivery.gitops.conventions import COMPONENTS, DEMO_LABEL, GATEWAY_NAME, GATEWAY_NS
from delivery.substrate.hcl import HCL_SUFFIXES, Module, load_module, located
from delivery.substrate.policy import no_in_cluster_providers
from delivery.validation.findings import Finding
from delivery.validation.manifests import Manifest
from delivery.validation.policy.context import EnvContext, JsonPath, finding, tier_of, walk

CLOUD_GROUPS = re.compile(
    r"(^|\.)(cnrm\.cloud\.google\.com|crossplane\.io|upbound\.io|services\.k8s\.aws|azure\.com)$"
)
DEMO_NAMESPACE = re.compile(r"^demo(s|-[a-z0-9-]+)$")
DEMO_SERVICE_HOST = re.compile(r"\.(demos|demo-[a-z0-9-]+)\.svc\b")
REQUEST_PATH_LAYERS = ("routing", "llm-gateway")
TOFU_DIR = "tofu"

_OFF_PATH = "demos stay in the demos layer, off the request path"


def demo_on_request_path(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``demo-on-request-path``: routing and llm-gateway never reach into demos."""
    tier = tier_of(m)
    if tier not in REQUEST_PATH_LAYERS:
        return []
    demo_namespaces = ctx.demo_namespaces
    found = []

    def flag(what: str, fix: str, path: JsonPath) -> None:
        found.append(
            finding(
                m,
                "demo-on-request-path",
                f"the {tier} layer {what}; demos are illustrations and must never be on the request path",
                fix,
                path,
            )
        )

    def is_demo_ns(name: str) -> bool:
        return name in demo_namespaces or bool(DEMO_NAMESPACE.match(name))

    labels = m.metadata.get("labels") or {}
    if str(labels.get(DEMO_LABEL, "")).lower() == "true":
        flag(
            f"holds a resource labelled {DEMO_LABEL}=true",
            f"move the resource to the demos layer, or drop the {DEMO_LABEL} label",
            ("metadata", "labels", DEMO_LABEL),
        )
    if is_demo_ns(m.namespace):
        flag(
            f"deploys into demo namespace {m.namespace!r}",
            f"deploy it into a serving or routing namespace; {_OFF_PATH}",
            ("metadata", "namespace"),
        )
    for path, value in walk(m.doc):
        if not isinstance(value, str) or not path or path[:2] == ("metadata", "namespace"):
            continue
        key = path[-1]
        if key == "namespace" and is_demo_ns(value):
            flag(
                f"references demo namespace {value!r}",
                f"reference the serving namespace instead; {_OFF_PATH}",
                path,
            )
        elif DEMO_SERVICE_HOST.search(value):
            flag(
                f"calls a demo service ({value!r})",
                f"call the inference gateway (http://{GATEWAY_NAME}.{GATEWAY_NS}.svc.cluster.local) instead",
                path,
            )
        elif key == "path" and f"/{COMPONENTS}/demos/" in f"/{value}/":
            flag(
                f"deploys demo manifests ({value!r})", f"deploy them from the demos layer; {_OFF_PATH}", path
            )
    return found


def cloud_resource_kind(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``cloud-resource-kind``: the substrate (cloud resources) is OpenTofu's, never Argo's."""
    group = m.api_version.rpartition("/")[0]
    if not group or not CLOUD_GROUPS.search(group):
        return []
    return [
        finding(
            m,
            "cloud-resource-kind",
            f"{m.kind} ({m.api_version}) is a cloud resource: the substrate belongs to OpenTofu (tofu/), "
            "never to in-cluster GitOps",
            "declare it in the tofu module (tofu/modules/gke) and delete it from clusters/",
            ("apiVersion",),
        )
    ]


# --------------------------------------------------------------------------- tofu/


def _relative(where: Location, repo: Path) -> Location:
    path = Path(where.file)
    if path.is_absolute() and path.is_relative_to(repo):
        return Location(str(path.relative_to(repo)), where.line, where.key)
    return where


def _addresses(module: Module, repo: Path) -> dict[tuple[str, int | None], str]:
    """(file, line) -> the block's address, for naming the resource of a substrate problem."""
    named: dict[tuple[str, int | None], str] = {
        (b.where(repo).file, b.line): b.address for b in module.blocks
    }
    for name, (_, file, line) in module.required_providers.items():
        named[(located(file, line, repo).file, line)] = f"terraform.required_providers.{name}"
    return named


def _provider_findings(module: Module, repo: Path) -> list[Finding]:
    addresses = _addresses(module, repo)
    found = []
    for problem in no_in_cluster_providers(module, repo):
        address = addresses.get((problem.where.file, problem.where.line), "")
        what = problem.what.removeprefix(f"{address}: ") if address else problem.what
        found.append(
            Finding(
                problem.where,
                address,
                "tofu-provider",
                f"{what}: the substrate stops at the cluster, the in-cluster lifecycle belongs to Argo CD",
                problem.fix,
            )
        )
    return found


def _unreadable(problems: Sequence[Problem], repo: Path) -> list[Finding]:
    return [
        Finding(
            _relative(p.where, repo),
            "",
            "tofu-provider",
            f"cannot check for in-cluster providers: {p.what}",
            p.fix,
        )
        for p in problems
    ]


Fingerprint = tuple[tuple[str, int, int], ...]  # (file, mtime_ns, size) of every HCL file under tofu/


@lru_cache(maxsize=4)
def _scan(repo: Path, fingerprint: Fingerprint) -> tuple[tuple[str, tuple[Finding, ...]], ...]:
    """``tofu-provider`` findings per module directory (repo-relative), for one state of the files."""
    base = (repo / TOFU_DIR).resolve()
    dirs = sorted({Path(file).parent for file, _, _ in fingerprint})
    seen: set[Path] = set()
    by_dir: dict[str, list[Finding]] = {}
    for directory in dirs:
        if directory in seen:
            continue
        try:
            root = load_module(directory)
        except ValidationFailed as err:
            seen.add(directory)
            by_dir[str(directory.relative_to(repo))] = _unreadable(err.problems, repo)
            continue
        for module in root.walk():
            if module.path in seen or not module.path.is_relative_to(base):
                continue
            seen.add(module.path)
            by_dir[str(module.path.relative_to(repo))] = _provider_findings(module, repo)
    return tuple((d, tuple(found)) for d, found in sorted(by_dir.items()))


def check_tofu(repo: Path, env: str | None = None, envs: frozenset[str] = frozenset()) -> list[Finding]:
    """``tofu-provider`` over every module directory under tofu/ (``.terraform`` excluded).

    With ``env``, only that env's root and the shared modules (directories naming no other of ``envs``).
    Parsed modules are reused while no HCL file under tofu/ changes.
    """
    repo = repo.resolve()
    base = repo / TOFU_DIR
    if not base.is_dir():
        return []
    files = sorted(
        p
        for p in base.rglob("*")
        if p.suffix in HCL_SUFFIXES and ".terraform" not in p.relative_to(repo).parts and p.is_file()
    )
    fingerprint = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size) for p in files)
    found: list[Finding] = []
    for directory, findings in _scan(repo, fingerprint):
        if env is not None and any(p in envs and p != env for p in Path(directory).parts):
            continue
        found.extend(f for f in findings if f not in found)
    return found


def tofu_provider(ctx: EnvContext) -> list[Finding]:
    """``tofu-provider``: no kubernetes/helm/kubectl providers or resources under tofu/ (the env's root
    and the shared modules): the in-cluster lifecycle belongs to Argo CD."""
    return check_tofu(ctx.repo, ctx.cfg.name, ctx.envs)
