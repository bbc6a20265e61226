"""Read OpenTofu roots and their local modules as data (python-hcl2), without providers or a binary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

from delivery.core.errors import Location, Problem, ValidationFailed

HCL_SUFFIXES = (".tf", ".tofu")
_OPTIONS = SerializationOptions(with_comments=False, strip_string_quotes=True)


def clean(value: Any) -> Any:
    """Drop python-hcl2's ``__is_block__`` markers, recursively."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True)
class Block:
    """A labelled top-level block (resource, data, variable, provider, module, output)."""

    kind: str
    labels: tuple[str, ...]
    body: dict[str, Any]
    file: Path
    line: int

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return ".".join(self.labels)
        return ".".join((self.kind, *self.labels))

    def where(self, repo: Path | None = None) -> Location:
        return located(self.file, self.line, repo)


def located(file: Path, line: int, repo: Path | None = None) -> Location:
    """The file (shown relative to ``repo`` when it is inside it) and line of a block."""
    repo = repo.resolve() if repo else None
    shown = file.relative_to(repo) if repo and file.is_relative_to(repo) else file
    return Location(str(shown), line)


@dataclass
class Module:
    """One directory of HCL files and the local modules it calls."""

    path: Path
    blocks: list[Block] = field(default_factory=list)
    backend: str | None = None
    backend_at: tuple[Path, int] | None = None
    required_providers: dict[str, tuple[str, Path, int]] = field(default_factory=dict)  # name: source, at
    children: dict[str, Module] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]

    @property
    def variables(self) -> dict[str, Block]:
        return {b.labels[0]: b for b in self.of_kind("variable")}

    def walk(self) -> list[Module]:
        """This module and every local module below it."""
        found = [self]
        for child in self.children.values():
            found.extend(child.walk())
        return found

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix in HCL_SUFFIXES)


def _line(text: str, kind: str, labels: tuple[str, ...]) -> int:
    pattern = r"^\s*" + re.escape(kind) + "".join(r'\s+"?' + re.escape(lbl) + '"?' for lbl in labels)
    m = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _parse_file(path: Path) -> tuple[str, dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        return text, clean(hcl2.loads(text, serialization_options=_OPTIONS))
    except Exception as err:  # python-hcl2 raises lark errors of many kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValidationFailed(
            f"not valid HCL: {first}", where=str(path), fix="fix the syntax (run: tofu fmt on the file)"
        ) from None


def _labelled(kind: str, entries: list[Any], depth: int) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Flatten ``[{label: {label2: body}}]`` into ``[((label, label2), body)]``."""
    out: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for entry in entries:
        items: list[tuple[tuple[str, ...], Any]] = [((), entry)]
        for _ in range(depth):
            items = [
                ((*labels, k), v) for labels, body in items if isinstance(body, dict) for k, v in body.items()
            ]
        out.extend((labels, body if isinstance(body, dict) else {}) for labels, body in items)
    return out


_DEPTH = {"resource": 2, "data": 2, "variable": 1, "output": 1, "module": 1, "provider": 1}


def load_module(path: Path, *, _seen: frozenset[Path] = frozenset()) -> Module:
    """Parse every .tf/.tofu file of ``path`` and, recursively, the local modules it calls."""
    path = path.resolve()
    if not path.is_dir():
        raise ValidationFailed(
            "module directory not found", where=str(path), fix="check the module's source path"
        )
    module = Module(path)
    for file in module.files():
        text, doc = _parse_file(file)
        for kind, depth in _DEPTH.items():
            for labels, body in _labelled(kind, doc.get(kind, []), depth):
                module.blocks.append(Block(kind, labels, body, file, _line(text, kind, labels)))
        for settings in doc.get("terraform", []):
            for backend in settings.get("backend", []):
                for name in backend:
                    module.backend = name
                    module.backend_at = (file, _line(text, "backend", (name,)))
            for req in settings.get("required_providers", []):
                for name, spec in req.items():
                    source = spec.get("source", name) if isinstance(spec, dict) else name
                    module.required_providers[name] = (str(source), file, _line(text, name, ()))
    for call in module.of_kind("module"):
        source = str(call.body.get("source", ""))
        if source.startswith(("./", "../")):
            child = (path / source).resolve()
            if child in _seen:
                raise ValidationFailed("module calls itself", where=call.where(), fix="remove the loop")
            module.children[call.labels[0]] = load_module(child, _seen=_seen | {path})
    return module


def nested(body: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """Every nested block at ``keys`` (``nested(pool, "node_config", "taint")``)."""
    level: list[Any] = [body]
    for key in keys:
        nxt: list[Any] = []
        for item in level:
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, list):
                nxt.extend(v for v in value if isinstance(v, dict))
            elif isinstance(value, dict):
                nxt.append(value)
        level = nxt
    return level


def problem(block: Block, what: str, fix: str, repo: Path | None = None) -> Problem:
    """A policy finding located at ``block``."""
    return Problem(block.where(repo), f"{block.address}: {what}", fix)
