"""The other git-tracked files that hold an old value: the ones fork-init rewrites, and the rest.

fork-init **owns** (rewrites every old value in):
- documentation: every ``*.md`` file outside ``tests/`` (README.md, ARCHITECTURE.md, docs/**);
- CI definitions: ``.github/**``, ``.gitlab-ci.yml``, ``.ci/**``;
- ``environments/**`` besides the configs (those it edits key by key, through the YAML editor);
- the generated files (``clusters/<env>/root*.yaml``, ``clusters/<env>/layers/**``), which it does
  not edit but renders again from the new config.

Everything else is **listed, not rewritten**: code and tests (``ci/**``, ``tests/**``, ``bench/**``),
``clusters/pins.yaml`` (upstream pins), each env's ``release.yaml`` and ``ledger.jsonl`` (machine
records of digests that live in the old registries: publish or promote into the new ones), the
OpenTofu HCL (its roots hold no values), lock files, and whatever an old value is left in (a
config's comment, a generated file fed by a release).

An old value matches as a whole token (not inside a longer name of letters, digits, ``_`` or
``-``), the longest first, in one pass: two values that trade places never chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from delivery.core import git

OWNED = ("*.md", ".github/*", ".gitlab-ci.yml", ".ci/*", "environments/*")
NOT_OWNED = ("tests/*",)
_GENERATED = re.compile(r"^clusters/[^/]+/(root(-[a-z-]+)?\.yaml|layers/.+)$")
MAX_BYTES = 4 * 1024 * 1024  # larger tracked files (data, locks) are not read


@dataclass(frozen=True)
class Hit:
    """An old value left in a file fork-init does not rewrite."""

    file: str
    line: int
    value: str
    why: str

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "value": self.value, "why": self.why}


def owned(rel: str) -> bool:
    """Whether fork-init rewrites old values in the tracked file ``rel`` (see the module docstring)."""
    if any(fnmatch(rel, pattern) for pattern in NOT_OWNED):
        return False
    return any(fnmatch(rel, pattern) for pattern in OWNED)


def tracked(repo: Path) -> list[str]:
    """Every file git tracks under ``repo`` (paths relative to it)."""
    out = git.git(repo, "ls-files", "-z").stdout  # relative to ``repo`` (git's working directory)
    return sorted(name for name in out.split("\0") if name)


def generated(rel: str) -> bool:
    """A file ``deliver root`` / ``deliver layers render`` writes (clusters/<env>/root*.yaml, layers/**)."""
    return _GENERATED.match(rel) is not None


def read_text(repo: Path, rel: str) -> str | None:
    """The file's UTF-8 text; None for what is not text to rewrite (binary, symlink, huge, gone)."""
    path = repo / rel
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Rewriter:
    """Old values -> new, applied to text in one pass (the longest value first, as whole tokens)."""

    def __init__(self, mapping: Mapping[str, set[str]]) -> None:
        self.ambiguous = {old: sorted(new) for old, new in mapping.items() if len(new) > 1}
        self.mapping = {old: next(iter(new)) for old, new in mapping.items() if len(new) == 1}
        self.old = {old for old, new in self.mapping.items() if new != old} | set(self.ambiguous)
        ordered = sorted(mapping, key=lambda s: (-len(s), s))
        self.pattern = (
            re.compile(r"(?<![A-Za-z0-9_-])(" + "|".join(map(re.escape, ordered)) + r")(?![A-Za-z0-9_-])")
            if ordered
            else None
        )

    def rewrite(self, text: str) -> str:
        """``text`` with every unambiguous old value replaced."""
        if self.pattern is None or not self.old:
            return text
        return self.pattern.sub(lambda m: self.mapping.get(m.group(1), m.group(1)), text)

    def hits(self, rel: str, text: str, why: str) -> list[Hit]:
        """Every old value still in ``text`` (one per line and value)."""
        if self.pattern is None or not self.old:
            return []
        found = []
        for number, line in enumerate(text.splitlines(), 1):
            for value in dict.fromkeys(m.group(1) for m in self.pattern.finditer(line)):
                if value in self.old:
                    reason = why
                    if value in self.ambiguous:
                        reason = f"becomes {' or '.join(self.ambiguous[value])} depending on the env: {why}"
                    found.append(Hit(rel, number, value, reason))
        return found


def why_not_owned(rel: str) -> str:
    """How to deal with an old value left in ``rel`` (a file fork-init does not rewrite)."""
    if rel.endswith(("release.yaml", "ledger.jsonl")):
        return "a machine record of digests in the old registry: publish or promote into the new one"
    if generated(rel):
        return "generated from clusters/<env>/release.yaml: publish or promote, then render again"
    if rel.startswith("environments/"):
        return "left in a comment or another key of the config: edit it by hand"
    return "not owned by fork-init (code, tests, data): check it and edit it by hand if it matters"


def rewrite_owned(
    repo: Path, rewriter: Rewriter, contents: Mapping[str, str]
) -> tuple[dict[str, tuple[str, str]], list[Hit]]:
    """Rewrite the owned tracked files; list the old values left anywhere.

    ``contents`` holds the new text of files fork-init computed itself (configs, generated files):
    they are not rewritten, only searched. Returns ``rel -> (old text, new text)`` of the rewritten
    files, and the hits left.
    """
    changed: dict[str, tuple[str, str]] = {}
    left: list[Hit] = []
    names = sorted(set(tracked(repo)) | set(contents))
    for rel in names:
        if rel in contents:
            left += rewriter.hits(rel, contents[rel], why_not_owned(rel))
            continue
        text = read_text(repo, rel)
        if text is None:
            continue
        if owned(rel):
            new = rewriter.rewrite(text)
            if new != text:
                changed[rel] = (text, new)
            left += rewriter.hits(rel, new, "edit it by hand")
        else:
            left += rewriter.hits(rel, text, why_not_owned(rel))
    return changed, left
