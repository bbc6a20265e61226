"""Rules on what a workload pulls: container images and ``oci://`` references pinned by digest, and the
placeholder digest of a modelcar that was never published (a warning)."""

from __future__ import annotations

from delivery.core.patterns import DIGEST_SUFFIX
from delivery.gitops.conventions import UNPUBLISHED
from delivery.validation.findings import Finding, Status
from delivery.validation.manifests import Manifest
from delivery.validation.policy.context import APP_KINDS, EnvContext, JsonPath, app_sources, finding, walk


def _source_urls(m: Manifest) -> set[JsonPath]:
    """Chart/git source URLs (Applications, AppProject sourceRepos): pinned by version (``chart-pin``)."""
    if m.kind in APP_KINDS:
        return {(*p, "repoURL") for p, _ in app_sources(m.doc)}
    if m.kind == "AppProject":
        repos = (m.doc.get("spec") or {}).get("sourceRepos") or []
        return {("spec", "sourceRepos", i) for i in range(len(repos))}
    return set()


def _is_image(path: JsonPath) -> bool:
    """A container image field: ``image``, ``imageName`` or an image volume's ``image.reference``."""
    key = path[-1]
    return key in ("image", "imageName") or (key == "reference" and len(path) > 1 and path[-2] == "image")


def image_digest(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``image-digest``: every container image (also Helm ``image: {repository, tag}`` values) by digest."""
    found = []
    for path, value in walk(m.doc):
        if not path:
            continue
        key = path[-1]
        if isinstance(value, dict) and key == "image" and "repository" in value:
            if not str(value.get("digest") or "").startswith("sha256:"):
                found.append(
                    finding(
                        m,
                        "image-digest",
                        f"image {value.get('repository')!r} (tag {value.get('tag') or 'none'}) has no digest",
                        "set image.digest: sha256:<digest> next to repository/tag",
                        path,
                    )
                )
            continue
        if isinstance(value, str) and _is_image(path) and not DIGEST_SUFFIX.search(value):
            tag = value.rsplit("/", 1)[-1].partition(":")[2] or "none (defaults to latest)"
            found.append(
                finding(
                    m,
                    "image-digest",
                    f"image {value!r} is not pinned by digest (tag: {tag})",
                    "pin it as <image>@sha256:<digest> (see clusters/pins.yaml)",
                    path,
                )
            )
    return found


def oci_digest(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``oci-digest``: every ``oci://`` model/image reference by digest (chart sources: ``chart-pin``)."""
    source_urls = _source_urls(m)
    return [
        finding(
            m,
            "oci-digest",
            f"oci reference {value!r} is not pinned by digest",
            "use oci://<registry>/<repo>@sha256:<digest> (the modelcar lock names it)",
            path,
        )
        for path, value in walk(m.doc)
        if isinstance(value, str)
        and path
        and not _is_image(path)
        and value.startswith("oci://")
        and path not in source_urls
        and not DIGEST_SUFFIX.search(value)
    ]


def unpublished(m: Manifest, ctx: EnvContext) -> list[Finding]:
    """``unpublished`` (a warning): a reference with the all-zero placeholder digest, which rendering
    uses for an artifact the environment's release does not have yet (gitops.artifacts).

    It validates (the reference is digest-shaped) but no cluster can pull it, so every one is named
    with the command that brings the artifact there.
    """
    cfg = ctx.cfg
    env = cfg.name
    if cfg.promotion.source is None:
        bring = (
            f"run `deliver modelcar publish {cfg.serving.model} --env {env}`, then "
            f"`deliver layers render --env {env} --write`"
        )
        why = "the modelcar was never published into it"
    else:
        bring = f"run `deliver promote --to {env}` (from {cfg.promotion.source}; it re-renders the layers)"
        why = "nothing was promoted into it yet"
    return [
        finding(
            m,
            "unpublished",
            f"{value} has the all-zero placeholder digest: {env} does not have this artifact ({why}) "
            "and cannot pull it",
            bring,
            path,
            Status.WARNING,
        )
        for path, value in walk(m.doc)
        if isinstance(value, str) and value.endswith("@" + UNPUBLISHED)
    ]
