"""clusters/pins.yaml: every chart version, CRD source and image digest the layers deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field

from delivery.core.documents import Strict, load_typed
from delivery.core.errors import ConfigError
from delivery.core.patterns import COMMIT_PATTERN, PINNED_IMAGE_PATTERN, SEMVER_PATTERN

_T = TypeVar("_T")

PINS_FILE = Path("clusters") / "pins.yaml"


class ChartPin(Strict):
    """A Helm chart: a classic repo + ``chart``, or a native OCI source (``oci://…/<chart>``)."""

    repo_url: Annotated[str, Field(alias="repoURL", pattern=r"^(https://|oci://)\S+$")]
    chart: str | None = None
    version: Annotated[str, Field(pattern=SEMVER_PATTERN)]


class CrdSource(Strict):
    """CRDs shipped as YAML in an upstream git repository at a release tag."""

    repo_url: Annotated[str, Field(alias="repoURL", pattern=r"^https://\S+$")]
    revision: Annotated[str, Field(pattern=rf"^(v?\d+\.\d+\.\d+|{COMMIT_PATTERN[1:-1]})$")]
    path: str
    include: str


class Pins(Strict):
    """clusters/pins.yaml: every chart version, CRD source and image digest the layers deploy."""

    charts: dict[str, ChartPin]
    crds: dict[str, CrdSource]
    images: dict[str, Annotated[str, Field(pattern=PINNED_IMAGE_PATTERN)]]

    def chart(self, name: str) -> ChartPin:
        return _pick(self.charts, name, "charts")

    def image(self, name: str) -> str:
        return _pick(self.images, name, "images")


def _pick(table: dict[str, _T], name: str, section: str) -> _T:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(
            f"{section}.{name} is missing", where=str(PINS_FILE), fix=f"add {section}.{name} to {PINS_FILE}"
        ) from None


def load_pins(repo: Path) -> Pins:
    """Load and check clusters/pins.yaml (all problems at once)."""
    pins, _ = load_typed(repo / PINS_FILE, PINS_FILE, Pins, docs=f"the comments in {PINS_FILE}")
    return pins
