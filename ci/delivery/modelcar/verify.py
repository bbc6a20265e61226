"""``deliver modelcar verify``: a fresh hash pass (no digest cache) compared with the committed lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.core.console import ProgressReporter
from delivery.core.errors import Problem, UsageError, ValidationFailed
from delivery.modelcar.lock import lock_path, read_lock
from delivery.modelcar.pipeline import BuildOptions, BuiltImage, build_image


@dataclass(frozen=True)
class VerifyResult:
    image: BuiltImage
    expected: str
    ok: bool
    differences: list[str]


def verify(repo: Path, name: str, opts: BuildOptions, reporter: ProgressReporter) -> VerifyResult:
    """Rebuild from the source (reading every byte again) and compare with the committed lock."""
    locked = read_lock(repo, name)
    if locked is None:
        raise UsageError(
            f"modelcar {name!r} has no lock yet",
            where=str(lock_path(repo, name).relative_to(repo)),
            fix=f"run: deliver modelcar build {name} (and commit the lock)",
        )
    fresh = build_image(repo, name, BuildOptions(**{**opts.__dict__, "use_digest_cache": False}), reporter)
    differences = _differences(locked.data, fresh.lock_data())
    ok = fresh.digest == locked.digest and not differences
    result = VerifyResult(fresh, locked.digest, ok, differences)
    if not ok:
        raise ValidationFailed.of(
            [
                _problem(
                    repo, name, f"rebuilt digest {fresh.digest} differs from the lock's {locked.digest}"
                ),
                *(_problem(repo, name, d) for d in differences),
            ]
        )
    return result


def _problem(repo: Path, name: str, what: str) -> Problem:
    return Problem(
        str(lock_path(repo, name).relative_to(repo)),
        what,
        "find what changed (source files, base, spec); if intended, rebuild and commit the lock",
    )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    old_files = {f["path"]: f for f in old.get("files") or []}
    new_files = {f["path"]: f for f in new.get("files") or []}
    for path in sorted(old_files.keys() | new_files.keys()):
        a, b = old_files.get(path), new_files.get(path)
        if a is None:
            out.append(f"file {path} is new")
        elif b is None:
            out.append(f"file {path} is missing from the source")
        elif a != b:
            out.append(f"file {path} changed: sha256 {a.get('sha256')} -> {b.get('sha256')}")
    for key in ("source", "tarFormat", "base"):
        if old.get(key) != new.get(key):
            out.append(f"{key} changed: {old.get(key)} -> {new.get(key)}")
    return out
