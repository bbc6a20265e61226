"""The artifacts an environment deploys by digest: its modelcar and the container images of the layers.

A promoted environment (one with ``promotion.from``) deploys exactly its release
(clusters/<env>/release.yaml): nothing reaches it but through ``deliver promote``. An entry
environment deploys the images pinned in clusters/pins.yaml, from its own registry where
``deliver import-images`` copied them there at the pinned digest (else from where they are pinned),
and the modelcars its release was published. An artifact an environment has not received yet
renders with the all-zero placeholder digest under the environment's own registry, and every
reference to it is a warning (``unpublished``) that names the command bringing it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delivery.config import EnvConfig
from delivery.core.errors import ConfigError
from delivery.gitops.conventions import UNPUBLISHED
from delivery.gitops.pins import PINS_FILE, Pins
from delivery.modelcar.lock import env_repository
from delivery.modelcar.spec import load_spec
from delivery.release import Release, read_release, release_path


@dataclass(frozen=True)
class Modelcar:
    """The env's modelcar image: ``image`` (registry/repo@digest) and where its digest came from."""

    image: str
    source: str

    @property
    def oci_uri(self) -> str:
        return f"oci://{self.image}"


def promoted_repository(registry: str, upstream_ref: str) -> str:
    """Where an artifact lives in an environment's registry: ``<registry>/<last path part of its repo>``."""
    name = upstream_ref.rpartition("@")[0].rsplit("/", 1)[-1].partition(":")[0]
    return f"{registry}/{name}"


def _release(repo: Path, cfg: EnvConfig) -> tuple[Release | None, str]:
    return read_release(repo, cfg.name), str(release_path(repo, cfg.name).relative_to(repo))


def _how_to_get(cfg: EnvConfig, name: str) -> str:
    if cfg.promotion.source is None:
        return f"deliver modelcar publish {name} --env {cfg.name}"
    return f"deliver promote --to {cfg.name}"


def modelcar_for(repo: Path, cfg: EnvConfig, pins: Pins) -> Modelcar:
    """The env's modelcar by digest, from its release; the placeholder when it has none yet."""
    model = cfg.serving.model
    release, shown = _release(repo, cfg)
    artifact = release.artifacts.get(model) if release else None
    if artifact is not None:
        if artifact.kind != "modelcar":
            raise ConfigError(
                f"artifact {model!r} is a {artifact.kind}, not a modelcar",
                where=shown,
                fix="the release is machine-written: restore it from git",
            )
        return Modelcar(artifact.ref, shown)
    spec = load_spec(repo, model)
    placeholder = env_repository(cfg.registry, spec.repository).with_digest(UNPUBLISHED)
    return Modelcar(str(placeholder), f"no entry in {shown}: run `{_how_to_get(cfg, model)}`")


def image_for(repo: Path, cfg: EnvConfig, pins: Pins, name: str) -> str:
    """The env's reference for the image pinned as ``images.<name>`` in clusters/pins.yaml."""
    pinned = pins.image(name)
    release, _ = _release(repo, cfg)
    artifact = release.artifacts.get(name) if release else None
    if cfg.promotion.source is None:  # imported at exactly the pinned digest, or as pinned
        imported = artifact is not None and artifact.digest == pinned.rpartition("@")[2]
        return artifact.ref if artifact is not None and imported else pinned
    if artifact is not None:
        return artifact.ref
    return f"{promoted_repository(cfg.registry, pinned)}@{UNPUBLISHED}"


def deployed_images(repo: Path, cfg: EnvConfig, pins: Pins) -> dict[str, str]:
    """Every image of clusters/pins.yaml as this env deploys it (name -> reference)."""
    return {name: image_for(repo, cfg, pins, name) for name in sorted(pins.images)}


def modelcar_warnings(car: Modelcar) -> list[str]:
    """Human warnings about the modelcar reference (e.g. not published yet)."""
    if car.image.endswith(UNPUBLISHED):
        return [f"modelcar {car.image} is not in this environment yet ({car.source}), then re-render"]
    return []


__all__ = ["PINS_FILE", "Modelcar", "deployed_images", "image_for", "modelcar_for", "promoted_repository"]
