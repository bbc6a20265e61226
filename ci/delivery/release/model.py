"""clusters/<env>/release.yaml: what an environment runs that moves by promotion, by exact digest.

Machine-written (``deliver modelcar publish`` into an entry env, ``deliver promote``, ``deliver
rollback``), committed in git, read by ``deliver layers render``. Each artifact is an exact reference
in that environment's own registry: a modelcar (with its Hugging Face source) or a container image
pinned in clusters/pins.yaml. An entry environment (no ``promotion.from``) deploys the images of
clusters/pins.yaml as pinned there; its release holds the modelcars it was published.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from delivery.config import PROTECTED_TAG_PREFIX
from delivery.core import yamlio
from delivery.core.documents import Strict, load_typed
from delivery.core.fsutil import atomic_write_text
from delivery.core.patterns import COMMIT_PATTERN, PINNED_IMAGE_PATTERN

RELEASE_NAME = "release.yaml"
HEADER = (
    "# The release of environment {env!r}: every artifact it deploys that moves by promotion, by digest.\n"
    "# Written by `deliver modelcar publish`, `deliver promote` and `deliver rollback`; do not edit.\n"
)
DOCS = "README: Promotion (release files)"

ArtifactKind = Literal["modelcar", "image"]


class Source(Strict):
    """Where a modelcar's weights come from: a Hugging Face repo at a full commit.

    ``verified: false`` when it was built from a local directory nobody checked against the hub's
    listing of that commit (published only with ``--allow-unverified-source``)."""

    repo: str
    revision: Annotated[str, Field(pattern=COMMIT_PATTERN)]
    verified: bool = True


class Artifact(Strict):
    kind: ArtifactKind
    ref: Annotated[str, Field(pattern=PINNED_IMAGE_PATTERN)]
    source: Source | None = None

    @property
    def digest(self) -> str:
        return self.ref.rpartition("@")[2]

    @property
    def repository(self) -> str:
        """``host/repo`` without the digest."""
        return self.ref.rpartition("@")[0]


class Release(Strict):
    env: str
    artifacts: dict[str, Artifact] = Field(default_factory=dict)

    def refs(self) -> dict[str, str]:
        return {name: a.ref for name, a in sorted(self.artifacts.items())}

    def with_artifacts(self, changes: Mapping[str, Artifact]) -> Release:
        return Release(env=self.env, artifacts={**self.artifacts, **changes})


def short_digest(ref: str | None) -> str:
    """The first 12 hex digits of a reference's digest ("" for none): how tables and branches show it."""
    return ref.rpartition("@sha256:")[2][:12] if ref and "@sha256:" in ref else ""


def protected_tag(digest: str) -> str:
    """The tag that keeps an image a release deploys (or could roll back to) safe from registry
    cleanup: ``release-sha256-<hex>``. Derived from the digest, so it never moves to another image;
    publish and promotion put it on every image they record, the cleanup policies keep the prefix."""
    algorithm, _, hexdigest = digest.partition(":")
    if not (algorithm and hexdigest):
        raise ValueError(f"not a digest: {digest!r}")
    return f"{PROTECTED_TAG_PREFIX}{algorithm}-{hexdigest}"


def release_path(repo: Path, env: str) -> Path:
    return repo / "clusters" / env / RELEASE_NAME


def read_release(repo: Path, env: str) -> Release | None:
    """The env's committed release (None when it has none yet); a malformed file is a ConfigError."""
    path = release_path(repo, env)
    if not path.is_file() and not path.is_symlink():
        return None
    release, _ = load_typed(path, path.relative_to(repo), Release, docs=DOCS)
    return release


def _source(source: Source) -> dict[str, object]:
    data: dict[str, object] = {"repo": source.repo, "revision": source.revision}
    if not source.verified:
        data["verified"] = False  # written only when false: verified releases read as before
    return data


def render(release: Release) -> str:
    data = {
        "env": release.env,
        "artifacts": {
            name: {
                "kind": a.kind,
                "ref": a.ref,
                **({"source": _source(a.source)} if a.source else {}),
            }
            for name, a in sorted(release.artifacts.items())
        },
    }
    return HEADER.format(env=release.env) + yamlio.dump(data)


def write_release(repo: Path, release: Release) -> bool:
    """Write the release atomically; False when it was already exactly this (file untouched)."""
    path = release_path(repo, release.env)
    text = render(release)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True
