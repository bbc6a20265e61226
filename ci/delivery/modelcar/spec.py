"""Modelcar spec: modelcars/<name>.yaml says which weights go into which image.

```yaml
source:
  repo: Qwen/Qwen2.5-0.5B-Instruct                         # Hugging Face repo id
  revision: 7ae557604adf67be50417f59c2c2f167def9a775       # a 40-hex commit, never a branch or tag
include: ["*.json", "*.safetensors", "*.txt", "LICENSE"]   # optional (default: everything)
exclude: ["original/*"]                                    # optional; *.pt, *.pth, original/* always skipped
base: busybox:1.38.0@sha256:...                          # pinned: a registry ref or oci-layout:DIR@sha256:...
platforms: [linux/amd64]                                   # optional; several give an image index
uid: 65532                                                 # the non-root user the image runs as
repository: qwen2.5-0.5b-instruct                          # the repository name in every env's registry
```

One strict loader (pydantic, the same error style as the environment config): unknown keys,
bad values and missing keys are reported all at once with ``file:line: key: what`` and a fix.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from delivery.core import yamlio
from delivery.core.documents import LocatedDocument, Strict, load_typed
from delivery.core.errors import ConfigError, Location, Problem, UsageError, raise_if
from delivery.core.paths import modelcars_dir
from delivery.core.patterns import COMMIT, is_digest
from delivery.oci.reference import ImageRef, is_repository_name

SPEC_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
PLATFORM = re.compile(r"^linux/(amd64|arm64)$")
LAYOUT_PREFIX = "oci-layout:"

# Never shipped, whatever the spec says: pickled checkpoints (code execution on load) and the
# "original/" copies some repos carry for other runtimes.
ALWAYS_EXCLUDED = ("*.pt", "*.pth", "original/*")
DEFAULT_INCLUDE = ("*",)
# Files at or above this size get a layer of their own; smaller ones share one layer.
DEFAULT_LAYER_THRESHOLD = 16 << 20
DEFAULT_UID = 65532


class Source(Strict):
    repo: Annotated[str, Field(pattern=HF_REPO_ID.pattern)]
    revision: str

    @field_validator("revision")
    @classmethod
    def _commit_only(cls, value: str) -> str:
        if not COMMIT.match(value):
            raise ValueError(
                f"revision must be a full 40-hex commit, got {value!r} (branches and tags move). "
                "Find the commit on the repo's 'Files and versions' > 'History' page, or with "
                '`python -c "from huggingface_hub import HfApi; '
                "print(HfApi().model_info('<repo>', revision='<branch>').sha)\"`"
            )
        return value


def _check_pattern(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"pattern {value!r} must be a relative glob without '..' (e.g. '*.json')")
    return value


class ModelcarSpec(LocatedDocument):
    source: Source
    include: Annotated[tuple[str, ...], Field(strict=False, min_length=1)] = DEFAULT_INCLUDE
    exclude: Annotated[tuple[str, ...], Field(strict=False)] = ()
    base: str
    platforms: Annotated[tuple[str, ...], Field(strict=False, min_length=1)] = ("linux/amd64",)
    uid: Annotated[int, Field(ge=1, le=2_147_483_647)] = DEFAULT_UID
    repository: str
    layer_threshold: Annotated[int, Field(alias="layerThreshold", ge=1 << 10)] = DEFAULT_LAYER_THRESHOLD

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_pattern(v) for v in value)

    @field_validator("base")
    @classmethod
    def _pinned_base(cls, value: str) -> str:
        if value.startswith(LAYOUT_PREFIX):
            _, _, digest = value[len(LAYOUT_PREFIX) :].rpartition("@")
            if not is_digest(digest):
                raise ValueError(f"base {value!r} must end in @sha256:<64 hex> (oci-layout:PATH@sha256:...)")
            return value
        try:
            ref = ImageRef.parse(value)
        except Exception as err:  # UsageError from the parser: reword as a spec problem
            raise ValueError(f"base {value!r} is not an image reference") from err
        if ref.digest is None:
            raise ValueError(
                f"base {value!r} is not pinned by digest; append @sha256:... "
                "(find it with: skopeo inspect --raw docker://IMAGE:TAG | sha256sum)"
            )
        return value

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not PLATFORM.match(p):
                raise ValueError(f"platform {p!r} is not one of linux/amd64, linux/arm64")
        if len(set(value)) != len(value):
            raise ValueError("platforms are listed twice")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not is_repository_name(value):
            raise ValueError(
                f"repository {value!r} must be lowercase path parts [a-z0-9] joined by . _ - or /"
            )
        return value

    @property
    def excluded(self) -> tuple[str, ...]:
        """Exclude patterns including the ones that always apply."""
        return (*ALWAYS_EXCLUDED, *self.exclude)

    def selects(self, relpath: str) -> bool:
        """True when the file at ``relpath`` (POSIX, relative to the model root) is shipped."""
        if not any(_match(relpath, p) for p in self.include):
            return False
        return not any(_match(relpath, p) for p in self.excluded)


def _match(relpath: str, pattern: str) -> bool:
    """Glob match like huggingface_hub's allow/ignore patterns (``dir/`` means everything under it)."""
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatchcase(relpath, pattern)


def spec_path(repo: Path, name: str) -> Path:
    return modelcars_dir(repo) / f"{name}.yaml"


def list_specs(repo: Path) -> list[str]:
    """Names of every modelcar spec (locks are not specs)."""
    base = modelcars_dir(repo)
    if not base.is_dir():
        return []
    return sorted(p.stem for p in base.glob("*.yaml") if not p.name.endswith(".lock.yaml"))


def load_spec(repo: Path, name: str) -> ModelcarSpec:
    """Load and validate modelcars/<name>.yaml; every problem of the file at once."""
    path = spec_path(repo, name)
    if not SPEC_NAME.match(name) or not path.is_file():
        known = ", ".join(list_specs(repo)) or "none"
        raise UsageError(
            f"unknown modelcar {name!r} (known: {known})",
            where=str(modelcars_dir(repo)),
            fix="pass one of the known names, or add modelcars/<name>.yaml",
        )
    shown = path.relative_to(repo)
    spec, data = load_typed(path, shown, ModelcarSpec, docs="README: Modelcars, the spec table")
    spec._locate(name, shown)
    raise_if(_semantic_problems(spec, data), ConfigError)
    return spec


def _semantic_problems(spec: ModelcarSpec, data: Any) -> list[Problem]:
    problems = []
    for pattern in spec.include:
        if any(_match(pattern, ex) or pattern == ex for ex in ALWAYS_EXCLUDED):
            line = yamlio.line_of(data, ["include"])
            problems.append(
                Problem(
                    Location(str(spec.path), line, "include"),
                    f"{pattern!r} is always excluded (pickled checkpoints, original/)",
                    "remove it; ship safetensors instead",
                )
            )
    return problems
