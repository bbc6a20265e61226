"""The artifacts an environment deploys by digest (today: its modelcar)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delivery.config import EnvConfig
from delivery.core.errors import ConfigError
from delivery.core.patterns import DIGEST, OCI_DIGEST_REF
from delivery.gitops.conventions import UNPUBLISHED
from delivery.gitops.pins import PINS_FILE, Pins
from delivery.modelcar.lock import env_repository, lock_path, read_lock
from delivery.modelcar.spec import load_spec


@dataclass(frozen=True)
class Modelcar:
    """The env's modelcar image: ``image`` (registry/repo@digest) and where its digest came from."""

    image: str
    source: str

    @property
    def oci_uri(self) -> str:
        return f"oci://{self.image}"


def modelcar_for(repo: Path, cfg: EnvConfig, pins: Pins) -> Modelcar:
    """The env's modelcar by digest: from the model lock if present, else ``modelcars`` in pins.yaml.

    The lock (``deliver modelcar build|publish``) names each env's ``oci://<registry>/<repo>@sha256:…``;
    this env's entry is used while it is under the env's current ``registry``, else the lock's manifest
    digest under that registry (the digest is the same everywhere). Without a lock, the digest typed
    once in clusters/pins.yaml is used (the all-zero digest: never published, see modelcar_warnings).
    """
    model = cfg.serving.model
    spec = load_spec(repo, model)
    image_repo = env_repository(cfg.registry, spec.repository)
    prefix = f"{image_repo}@"
    lock = read_lock(repo, model)
    if lock is not None:
        shown = str(lock_path(repo, model).relative_to(repo))
        mine = OCI_DIGEST_REF.match(lock.images.get(cfg.name, ""))
        if mine and mine.group("ref").startswith(prefix):
            return Modelcar(mine.group("ref"), shown)
        if DIGEST.match(lock.digest):
            return Modelcar(prefix + lock.digest, shown)
        raise ConfigError(
            f"lock of modelcar {model!r} has no sha256 manifest digest (got {lock.digest!r})",
            where=shown,
            fix=f"run: deliver modelcar build {model}",
        )
    digest = pins.modelcars.get(model)
    if digest is None:
        raise ConfigError(
            f"no digest for modelcar {model!r}: no lock at modelcars/{model}.lock.yaml and no "
            f"modelcars.{model} in {PINS_FILE}",
            where=str(cfg.path),
            fix=f"publish the modelcar (writes the lock), or add modelcars.{model}: sha256:… to {PINS_FILE}",
        )
    return Modelcar(prefix + digest, f"{PINS_FILE} (modelcars.{model})")


def modelcar_warnings(car: Modelcar) -> list[str]:
    """Human warnings about the modelcar reference (e.g. not published yet)."""
    if car.image.endswith(UNPUBLISHED):
        return [
            f"modelcar {car.image} is not published yet (digest from {car.source}); "
            "run `deliver modelcar publish` to write the lock, then re-render"
        ]
    return []
