"""The tofu (or terraform) binary: found, identified, and run without prompts.

``tofu`` is the default; ``terraform`` has the same CLI for everything used here (init, fmt,
plan -out, show -json, apply PLAN) and is accepted. Choose with ``--binary`` or ``$DELIVER_TOFU``
(a name or a path); otherwise tofu is preferred and terraform is the fallback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import ToolError, UsageError

BINARY_ENV_VAR = "DELIVER_TOFU"
KINDS = ("tofu", "terraform")
_VERSION = re.compile(r"^(OpenTofu|Terraform) v(\d+\.\d+\.\d+\S*)", re.MULTILINE)


def cache_home() -> Path:
    """Where the pipeline caches tools and provider plugins (``$XDG_CACHE_HOME/llm-platform``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm-platform"


def _search_dirs(repo: Path | None) -> list[Path]:
    dirs = [cache_home() / "bin"]
    if repo is not None:
        dirs.insert(0, repo / ".cache" / "bin")
    gopath = os.environ.get("GOPATH", str(Path.home() / "go"))
    dirs.append(Path(gopath) / "bin")
    return dirs


def _which(name: str, repo: Path | None) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _search_dirs(repo):
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass(frozen=True)
class Result:
    """One finished invocation."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 25) -> str:
        """The last lines of the tool's output (errors are at the end)."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class Tool:
    """A tofu or terraform binary and the environment it runs in."""

    path: str
    kind: str  # "tofu" | "terraform"
    version: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version}"

    def environment(self) -> dict[str, str]:
        """The process environment: no prompts, automation mode, a shared provider plugin cache."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TF_CLI_ARGS") and k not in {"TF_WORKSPACE", "TF_LOG", "TF_INPUT"}
        }
        config_file = env.get("TF_CLI_CONFIG_FILE")
        if config_file and not Path(config_file).is_file():
            del env["TF_CLI_CONFIG_FILE"]  # a dangling path only produces a warning per command
        env["TF_IN_AUTOMATION"] = "1"
        env["TF_INPUT"] = "0"
        env["CHECKPOINT_DISABLE"] = "1"
        plugin_cache = Path(env.get("TF_PLUGIN_CACHE_DIR") or cache_home() / "tofu-plugins")
        plugin_cache.mkdir(parents=True, exist_ok=True)
        env["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache)
        return env

    def run(self, args: Sequence[str], cwd: Path, *, extra_env: Mapping[str, str] | None = None) -> Result:
        """Run ``tool ARGS`` in ``cwd``; stdin is closed so nothing can ever prompt."""
        env = self.environment() | dict(extra_env or {})
        proc = subprocess.run(
            [self.path, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def identify(path: str) -> Tool:
    """Run ``PATH version`` and tell tofu from terraform."""
    try:
        proc = subprocess.run(
            [path, "version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "CHECKPOINT_DISABLE": "1"},
            check=False,
            timeout=60,
        )
    except OSError as err:
        raise ToolError(
            f"cannot run {path}: {err.strerror}",
            fix="pass --binary tofu|terraform|PATH (or set $DELIVER_TOFU) to a working binary",
        ) from None
    m = _VERSION.search(proc.stdout)
    if proc.returncode != 0 or not m:
        raise ToolError(
            f"{path} is neither OpenTofu nor Terraform (`{path} version` printed "
            f"{proc.stdout.strip()[:80]!r})",
            fix="pass --binary tofu|terraform|PATH (or set $DELIVER_TOFU) to a tofu or terraform binary",
        )
    kind = "tofu" if m.group(1) == "OpenTofu" else "terraform"
    return Tool(path=path, kind=kind, version=m.group(2))


def find_tool(choice: str | None = None, repo: Path | None = None) -> Tool:
    """The binary to use: ``choice`` (name or path), else ``$DELIVER_TOFU``, else tofu, else terraform."""
    wanted = choice or os.environ.get(BINARY_ENV_VAR) or ""
    if wanted:
        path = wanted if os.sep in wanted else _which(wanted, repo)
        if path is None or not Path(path).is_file():
            raise UsageError(
                f"binary {wanted!r} not found (on PATH, .cache/bin, {cache_home() / 'bin'})",
                where=f"--binary / ${BINARY_ENV_VAR}",
                fix="install it (bash .ci/install builds tofu), or pass --binary terraform or a path",
            )
        return identify(path)
    for name in KINDS:
        path = _which(name, repo)
        if path:
            return identify(path)
    raise ToolError(
        "neither tofu nor terraform was found",
        fix="run `bash .ci/install` (builds tofu into ~/.cache/llm-platform/bin), or put tofu on PATH",
    )
