"""What every package's ``cli.py`` shares: the common options, the repo, and how a command ends.

A command ends in one of three ways (the exit policy in ``delivery.core.errors``):
- it returns: exit 0;
- it raises a ``DeliveryError``: ``deliver`` prints it once (``error:`` / ``fix:``; with ``--json``
  also one JSON document ``{"ok": false, …}``) and exits with the error's code;
- it has printed its own result, which says the step failed (findings, drift, problems), and calls
  ``fail_reported``: ``deliver`` prints only the ``error:`` / ``fix:`` summary (the JSON document
  was already printed) and exits with the given code.

The ``--json`` flag is recorded in the invocation's own state (the root context's ``obj``), never in
a module global, so several invocations in one process do not leak into each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from delivery.core.errors import EXIT_FAILED, DeliveryError
from delivery.core.paths import find_repo_root

F = TypeVar("F", bound=Callable[..., Any])

JSON_KEY = "json"
REPO_KEY = "repo"


class Reported(DeliveryError):
    """A step failed and the command has already printed why (its findings, or its JSON document)."""

    def __init__(self, what: str, *, fix: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(what, fix=fix)
        self.exit_code = exit_code


def fail_reported(what: str, *, fix: str, exit_code: int = EXIT_FAILED) -> None:
    """End a command whose printed result says it failed (see the module docstring)."""
    raise Reported(what, fix=fix, exit_code=exit_code)


def state(ctx: click.Context) -> dict[str, Any]:
    """The invocation's state shared by every command of it (``--json``, the repo)."""
    return ctx.find_root().ensure_object(dict)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        state(ctx)[JSON_KEY] = True
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=_set_json,
    expose_value=True,
    help="Print machine-readable JSON.",
)


def env_option(required: bool = True) -> Callable[[F], F]:
    """The ``--env`` option shared by every environment-scoped command."""
    return click.option(
        "--env", "env", required=required, metavar="ENV", help="Environment (environments/ENV)."
    )


def resolved_repo(ctx: click.Context) -> Path:
    """The platform repo root, resolved lazily so ``--help`` works anywhere."""
    obj = state(ctx)
    repo = obj.get(REPO_KEY)
    if repo is None or not (repo / "environments").is_dir():
        obj[REPO_KEY] = find_repo_root(repo)
    root: Path = obj[REPO_KEY]
    return root


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, so a command loads only its own package."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attr = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)
