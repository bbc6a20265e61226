"""Output for people and machines: plain text or ``--json``, and progress that fits the terminal.

Progress goes to stderr: a live bar on a terminal, plain lines otherwise (CI logs), nothing with
``quiet``. Results go to stdout, as JSON when asked. Secrets never reach either (callers pass
redacted values; ``redact`` helps).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # rich is imported only when a live bar is shown (fast start-up otherwise)
    from rich.progress import Progress, TaskID


def is_interactive(stream: TextIO = sys.stderr) -> bool:
    """True on a real terminal outside CI."""
    return stream.isatty() and os.environ.get("CI", "").lower() not in {"1", "true", "yes"}


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """One JSON document on stdout (sorted keys, stable for diffs)."""
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    out.flush()


def info(message: str) -> None:
    """A human progress/status line on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def redact(text: str, *secrets: str | None) -> str:
    """Replace every given secret value in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class ProgressHandle:
    """Advance one task of a progress display; thread-safe."""

    def __init__(self, reporter: ProgressReporter, task: TaskID | None, label: str, total: int) -> None:
        self._reporter = reporter
        self._task = task
        self.label = label
        self.total = total
        self.done = 0
        self._last_pct = -1

    def advance(self, amount: int) -> None:
        self.done += amount
        self._reporter._advance(self, amount)

    def finish(self, note: str = "") -> None:
        self._reporter._finish(self, note)


class ProgressReporter:
    """Progress of long operations: rich bars on a terminal, plain 25%-step lines elsewhere."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._rich: Progress | None = None
        if not quiet and is_interactive(self._stream):
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )

    def __enter__(self) -> ProgressReporter:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def task(self, label: str, total: int) -> ProgressHandle:
        task = self._rich.add_task(label, total=total) if self._rich is not None else None
        return ProgressHandle(self, task, label, total)

    def line(self, message: str) -> None:
        if self._quiet:
            return
        if self._rich is not None:
            self._rich.console.print(message, highlight=False, markup=False)
        else:
            self._stream.write(message + "\n")
            self._stream.flush()

    def _advance(self, handle: ProgressHandle, amount: int) -> None:
        if self._rich is not None and handle._task is not None:
            self._rich.update(handle._task, advance=amount)
        elif not self._quiet and handle.total > 0:
            pct = min(100, handle.done * 100 // handle.total) // 25 * 25
            if pct > handle._last_pct and pct < 100:
                handle._last_pct = pct
                self.line(f"{handle.label}: {pct}% of {_human(handle.total)}")

    def _finish(self, handle: ProgressHandle, note: str) -> None:
        if self._rich is not None and handle._task is not None:
            self._rich.update(handle._task, completed=handle.total)
        suffix = f" ({note})" if note else ""
        if self._rich is None:
            self.line(f"{handle.label}: done, {_human(handle.total)}{suffix}")


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Measure wall time of a block into ``result['seconds']``."""
    result: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - start


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
