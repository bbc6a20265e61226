"""The one typed-document loader: a YAML file into a strict pydantic model, every problem at once.

Unknown keys, wrong types, bad enums and missing keys are errors naming the file, the line, the key
path and what is expected (``file:line: key.path: what``), with a fix pointing at the format's docs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from delivery.core import yamlio
from delivery.core.errors import ConfigError, Location, Problem
from delivery.core.paths import inside_repo

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every typed YAML document: unknown keys are errors, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


class LocatedDocument(Strict):
    """A top-level document that knows its name and the file it came from (set by its loader)."""

    _name: str = PrivateAttr(default="")
    _path: Path = PrivateAttr(default=Path())

    @property
    def name(self) -> str:
        """The document's name (its directory or file stem)."""
        return self._name

    @property
    def path(self) -> Path:
        """The file it was loaded from, relative to the repo root."""
        return self._path

    def _locate(self, name: str, path: Path) -> None:
        self._name = name
        self._path = path


_YAML_TYPE = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "string": "a string",
    "bool": "a boolean (true or false)",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "datetime": "a timestamp",
    "NoneType": "nothing (null)",
}


def _describe(err: Any, docs: str) -> tuple[str, str]:
    """(what, fix) for one pydantic error; ``docs`` says where the format is documented."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key", f"remove it or fix its spelling (see {docs})"
    if kind == "missing":
        return "required key is missing", f"add it (see {docs})"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), f"fix the value (see {docs})"
    if kind == "literal_error":
        return f"got {got!r}, expected one of {ctx.get('expected')}", "use one of the allowed values"
    if kind == "string_pattern_mismatch":
        return f"got {got!r}, which does not match {ctx.get('pattern')}", "fix the value's format"
    if kind.endswith("_type"):
        expected = _YAML_TYPE.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        hint = ' (quote numbers meant as text, e.g. "1.34")' if expected == "a string" else ""
        actual = _YAML_TYPE.get(type(got).__name__, type(got).__name__)
        return f"got {actual} {got!r}, expected {expected}{hint}", f"write {expected}"
    return f"{err['msg']} (got {got!r})", "fix the value"


def _validation_problems(path: Path, data: Any, exc: ValidationError, docs: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        keypath = ".".join(str(p) for p in loc) or "(top level)"
        line = yamlio.line_of(data, loc)
        what, fix = _describe(err, docs)
        problems.append(Problem(Location(str(path), line, keypath), what, fix))
    return problems


def load_typed(path: Path, shown: Path, model: type[M], *, docs: str) -> tuple[M, Any]:
    """Load a YAML file into a strict pydantic model: the project's one typed-document loader.

    Returns the model and the round-trip data (for line numbers). Raises ConfigError listing every
    problem of the file at once, each as ``file:line: key.path: what`` with a fix pointing at ``docs``.
    """
    if not shown.is_absolute() and path.parts[-len(shown.parts) :] == shown.parts:
        inside_repo(Path(*path.parts[: -len(shown.parts)]), path)  # the repo's one symlink rule
    data = yamlio.load_file(path, shown)
    if not isinstance(data, dict):
        got = "the file is empty" if data is None else f"got {_YAML_TYPE.get(type(data).__name__, 'text')}"
        raise ConfigError(
            f"expected a mapping at the top level ({got})",
            where=Location(str(shown), data.lc.line + 1 if hasattr(data, "lc") else None),
            fix=f"write `key: value` lines (see {docs})",
        )
    try:
        return model.model_validate(yamlio.plain(data)), data
    except ValidationError as exc:
        raise ConfigError.of(_validation_problems(shown, data, exc, docs)) from None
