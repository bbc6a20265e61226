"""Image references: ``[registry/]repository[:tag][@sha256:...]`` with docker.io normalisation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from delivery.core.errors import UsageError
from delivery.core.patterns import is_digest

DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]+)?$")


def _bad(text: str, what: str) -> UsageError:
    return UsageError(
        f"invalid image reference {text!r}: {what}",
        where="image reference",
        fix="use host[:port]/repository[:tag][@sha256:<64 hex>], e.g. "
        "europe-west4-docker.pkg.dev/project/models/qwen@sha256:...",
    )


def is_repository_name(name: str) -> bool:
    """True when ``name`` is a valid OCI repository path (lowercase components separated by /)."""
    return bool(_REPOSITORY_RE.match(name)) and len(name) <= 255


def is_tag(tag: str) -> bool:
    """True when ``tag`` is a valid OCI tag."""
    return bool(_TAG_RE.match(tag))


def check_repository(repository: str) -> None:
    """A UsageError unless ``repository`` is a valid repository name."""
    if not is_repository_name(repository):
        raise UsageError(
            f"invalid repository name {repository!r}",
            where="registry repository",
            fix="use lowercase path components [a-z0-9] separated by '/', '.', '_' or '-'",
        )


def check_digest(digest: str) -> None:
    """A UsageError unless ``digest`` is ``sha256:<64 lowercase hex>``."""
    if not is_digest(digest):
        raise UsageError(f"invalid digest {digest!r}", where="blob", fix="use sha256:<64 lowercase hex>")


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; at least one of ``tag`` / ``digest`` may be set (or neither)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not _HOST_RE.match(self.registry):
            raise _bad(str(self), f"registry host {self.registry!r} is not a host[:port]")
        if not is_repository_name(self.repository):
            raise _bad(str(self), f"repository {self.repository!r} must be lowercase [a-z0-9._-] path parts")
        if self.tag is not None and not is_tag(self.tag):
            raise _bad(str(self), f"tag {self.tag!r} is not valid ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})")
        if self.digest is not None and not is_digest(self.digest):
            raise _bad(str(self), f"digest {self.digest!r} is not sha256:<64 lowercase hex>")

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse ``[host[:port]/]repo[:tag][@sha256:...]``; a bare ``busybox`` means Docker Hub."""
        raw = text.strip()
        if raw.startswith("oci://"):
            raw = raw[len("oci://") :]
        if not raw:
            raise _bad(text, "it is empty")
        rest, _, digest = raw.partition("@")
        if "@" in raw and not digest:
            raise _bad(text, "nothing after '@'")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
        name, colon, tag = path.rpartition(":")
        if not colon or "/" in tag:
            name, tag = path, ""
        if registry == DOCKER_HUB and "/" not in name:
            name = f"library/{name}"
        if colon and not tag:
            raise _bad(text, "empty tag after ':'")
        return cls(registry=registry, repository=name, tag=tag or None, digest=digest or None)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> ImageRef:
        """The same image pinned to ``digest`` (the tag is kept for readability)."""
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> ImageRef:
        """The same repository with another tag (digest kept)."""
        return ImageRef(self.registry, self.repository, tag, self.digest)

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag (default ``latest``)."""
        return self.digest or self.tag or "latest"

    @property
    def oci_uri(self) -> str:
        """``oci://<registry>/<repo>@<digest>`` as KServe's storageUri wants it (needs a digest)."""
        if not self.digest:
            raise UsageError(
                f"image reference {self} has no digest",
                where="image reference",
                fix="pin the image by digest (push it first, or add @sha256:...)",
            )
        return f"oci://{self.registry}/{self.repository}@{self.digest}"
