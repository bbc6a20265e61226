"""Rules on Argo CD Applications and their sources, and on the env's layers matching its profile.

An Application names a defined AppProject and a destination; a chart (or third-party git) source is
pinned to an exact version; the platform repo's own sources track the env's repoURL, repoBranch and
directory; and the layers on disk, the resources in them and the layers the sources deploy are all
the env profile's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from delivery.core.paths import layers_dir
from delivery.core.patterns import COMMIT, SEMVER, SHA256_HEX
from delivery.gitops.conventions import COMPONENTS, IN_CLUSTER, LAYERS
from delivery.validation.findings import Finding
from delivery.validation.manifests import Manifest
from delivery.validation.policy.context import (
    APP_KINDS,
    EnvContext,
    JsonPath,
    app_sources,
    app_spec,
    finding,
    tier_of,
)

EXACT_VERSION = re.compile(rf"^{SEMVER}$|^sha256:{SHA256_HEX}$")


def _render_fix(ctx: EnvContext) -> str:
    return f"deliver layers render --env {ctx.cfg.name} --write"


def _regenerate(ctx: EnvContext, m: Manifest) -> str:
    """The command that writes the file holding ``m``: its root's (``deliver root``) or the layers'."""
    if m.path.parent.name != ctx.cfg.name or not m.path.stem.startswith("root"):
        return _render_fix(ctx)
    profile = m.path.stem.removeprefix("root").removeprefix("-")
    return f"deliver root --env {ctx.cfg.name}{f' --profile {profile}' if profile else ''} --write"


def _is_own(ctx: EnvContext, src: dict[str, Any]) -> bool:
    """A source of the platform repo itself (by URL, or by a path into clusters/)."""
    url = str(src.get("repoURL") or "")
    return url == ctx.cfg.repo_url or str(src.get("path") or "").startswith("clusters/")


def _sources(m: Manifest, ctx: EnvContext, own: bool) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """The Application's sources of the platform repo (``own``) or the others (charts, third-party git)."""
    if m.kind in APP_KINDS:
        yield from ((path, src) for path, src in app_sources(m.doc) if _is_own(ctx, src) == own)


def app_project_destination(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``app-project-destination``: every Application names a defined AppProject and a destination."""
    if m.kind not in APP_KINDS:
        return []
    found = []
    prefix, spec = app_spec(m.doc)
    project = spec.get("project")
    defined = ", ".join(sorted(ctx.projects)) or "none"
    if not project:
        found.append(
            finding(
                m,
                "app-project-destination",
                "Application has no spec.project",
                f"set spec.project to its tier's AppProject (defined: {defined})",
                (*prefix, "project"),
            )
        )
    elif project not in ctx.projects:
        found.append(
            finding(
                m,
                "app-project-destination",
                f"Application names AppProject {project!r}, which no layer defines (defined: {defined})",
                f"name one of the defined AppProjects, or define {project!r} in the layer's project file",
                (*prefix, "project"),
            )
        )
    dest = spec.get("destination")
    if not isinstance(dest, dict) or not (dest.get("server") or dest.get("name")):
        found.append(
            finding(
                m,
                "app-project-destination",
                "Application has no destination (spec.destination.server or .name)",
                f"set spec.destination.server: {IN_CLUSTER} and a namespace",
                (*prefix, "destination"),
            )
        )
    return found


def chart_pin(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``chart-pin``: every Application has a source; charts and third-party git pin an exact version."""
    if m.kind not in APP_KINDS:
        return []
    found = []
    if not any(True for _ in app_sources(m.doc)):
        found.append(
            finding(
                m,
                "chart-pin",
                "Application has no source",
                "add spec.source with repoURL, a chart or path, and an exact targetRevision",
                (*app_spec(m.doc)[0], "source"),
            )
        )
    for path, src in _sources(m, ctx, own=False):
        url = str(src.get("repoURL") or "")
        rev = str(src.get("targetRevision") or "")
        is_chart = bool(src.get("chart")) or url.startswith("oci://")
        if EXACT_VERSION.match(rev) or (not is_chart and COMMIT.match(rev)):
            continue
        what = "chart" if is_chart else "git source"
        why = "no version" if not rev else f"{rev!r} is not an exact version"
        exact = "an exact version such as 1.2.3" + ("" if is_chart else " or a full commit id")
        found.append(
            finding(
                m,
                "chart-pin",
                f"{what} {src.get('chart') or url} is not pinned: {why} "
                "(ranges, latest, HEAD and branches float)",
                f"set targetRevision to {exact} (see clusters/pins.yaml)",
                (*path, "targetRevision"),
            )
        )
    return found


def repo_branch(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``repo-branch``: the platform repo's own sources use the env's repoURL, repoBranch and directory."""
    cfg = ctx.cfg
    found = []
    for path, src in _sources(m, ctx, own=True):
        url = str(src.get("repoURL") or "")
        rev = str(src.get("targetRevision") or "")
        src_path = str(src.get("path") or "")
        if url != cfg.repo_url:
            found.append(
                finding(
                    m,
                    "repo-branch",
                    f"the platform repo source uses repoURL {url!r}, but {cfg.path} says "
                    f"repoURL {cfg.repo_url!r}",
                    f"run: {_regenerate(ctx, m)} (the file is generated: it renders repoURL "
                    f"{cfg.repo_url} from {cfg.path})",
                    (*path, "repoURL"),
                )
            )
        if rev != cfg.repo_branch:
            found.append(
                finding(
                    m,
                    "repo-branch",
                    f"the platform repo source tracks {rev or '(default branch)'!r}, but env {cfg.name!r} "
                    f"tracks repoBranch {cfg.repo_branch!r} ({cfg.path})",
                    f"set targetRevision: {cfg.repo_branch}",
                    (*path, "targetRevision"),
                )
            )
        mine = f"clusters/{cfg.name}/"
        if not src_path.startswith(mine):
            found.append(
                finding(
                    m,
                    "repo-branch",
                    f"source path {src_path!r} is outside this environment ({mine})",
                    f"point it at {mine}layers/… ({_regenerate(ctx, m)} renders this env's sources)",
                    (*path, "path"),
                )
            )
    return found


def _source_layer(ctx: EnvContext, src: dict[str, Any]) -> str:
    """The layer an own source deploys (``clusters/<env>/layers/[components/]<layer>``), or ""."""
    mine = f"clusters/{ctx.cfg.name}/"
    src_path = str(src.get("path") or "")
    if not src_path.startswith(mine):
        return ""
    parts = src_path[len(mine) :].split("/")
    if parts[:1] != ["layers"] or len(parts) < 2:
        return ""
    return parts[2] if parts[1] == COMPONENTS and len(parts) > 2 else parts[1]


def _layer_dir_finding(ctx: EnvContext, path: str, layer: str) -> Finding:
    cfg, wanted = ctx.cfg, ctx.profile_layers
    outside = f"layer {layer!r} is outside profile {cfg.profile!r}"
    what = outside if layer in LAYERS else f"{layer!r} is not a layer"
    return Finding.at(
        path,
        "",
        "profile-layers",
        f"{what} of env {cfg.name!r} (layers: {', '.join(wanted)})",
        f"remove the directory ({_render_fix(ctx)})",
    )


def _layout(ctx: EnvContext) -> list[Finding]:
    """clusters/<env>/layers/ holds exactly the profile's layers (+ components/<layer>)."""
    base = layers_dir(ctx.repo, ctx.cfg.name)
    wanted = ctx.profile_layers
    rel = base.relative_to(ctx.repo)
    present = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    found = []
    for name in present:
        if name == COMPONENTS:
            for sub in sorted(p.name for p in (base / name).iterdir() if p.is_dir()):
                if sub not in wanted:
                    found.append(_layer_dir_finding(ctx, f"{rel}/{name}/{sub}", sub))
        elif name not in wanted:
            found.append(_layer_dir_finding(ctx, f"{rel}/{name}", name))
    for layer in wanted:
        if layer not in present:
            found.append(
                Finding.at(
                    f"{rel}/{layer}",
                    "",
                    "profile-layers",
                    f"profile {ctx.cfg.profile!r} deploys layer {layer!r} but the directory is missing "
                    f"(the root Application layer-{layer} points at it)",
                    f"run: {_render_fix(ctx)}",
                )
            )
    return found


def profile_layers(ctx: EnvContext) -> list[Finding]:
    """``profile-layers``: the layer directories, their resources and the layers the platform repo's
    sources deploy are exactly the env profile's layers."""
    cfg, wanted = ctx.cfg, ctx.profile_layers
    shown = ", ".join(wanted)
    found = []
    for m in ctx.manifests:
        for path, src in _sources(m, ctx, own=True):
            layer = _source_layer(ctx, src)
            if layer and layer not in wanted:
                found.append(
                    finding(
                        m,
                        "profile-layers",
                        f"source path {src.get('path')!r} deploys layer {layer!r}, which profile "
                        f"{cfg.profile!r} does not include ({shown})",
                        f"remove the Application ({_render_fix(ctx)}), or choose a profile with {layer!r} "
                        f"in {cfg.path}",
                        (*path, "path"),
                    )
                )
    for m in ctx.manifests:
        tier = tier_of(m)
        if tier and tier not in wanted:
            found.append(
                finding(
                    m,
                    "profile-layers",
                    f"resource is in layer {tier!r}, outside profile {cfg.profile!r} ({shown})",
                    f"remove it: {_render_fix(ctx)} drops the layers outside the profile",
                )
            )
    return found + _layout(ctx)
