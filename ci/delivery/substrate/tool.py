"""The tofu (or terraform) binary: found, identified, and run without prompts.

``tofu`` is the default; ``terraform`` has the same CLI for everything used here (init, fmt,
validate, test, plan -out, show -json, apply PLAN) and is accepted. Choose with ``--binary`` or
``$DELIVER_TOFU`` (a name or a path); otherwise tofu is preferred and terraform is the fallback.

Every run has a time limit (``TIMEOUTS``, by subcommand): when it passes, the binary is interrupted
(SIGINT, so it can release a state lock), then killed after a grace period, and the run fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import ToolError, UsageError

BINARY_ENV_VAR = "DELIVER_TOFU"
KINDS = ("tofu", "terraform")
_VERSION = re.compile(r"^(OpenTofu|Terraform) v(\d+\.\d+\.\d+\S*)", re.MULTILINE)
# Seconds each subcommand may take. apply creates a GKE cluster and its pools (15-30 min on GCP).
TIMEOUTS: dict[str, float] = {
    "version": 60,
    "fmt": 120,
    "init": 900,
    "validate": 600,
    "test": 1800,
    "plan": 1800,
    "show": 600,
    "output": 600,
    "apply": 3 * 3600,
}
DEFAULT_TIMEOUT = 1800.0
INTERRUPT_GRACE = 60.0  # after SIGINT, how long tofu may take to stop cleanly before it is killed
# An apply waits for the cloud operations in flight to end so it can write them into the state:
# killed earlier, resources it created would be missing from the state.
INTERRUPT_GRACES: dict[str, float] = {"apply": 30 * 60, "destroy": 30 * 60}


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
    cli_config: str | None = None  # a CLI config file the runner wrote (provider mirror); it exists

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
            del env["TF_CLI_CONFIG_FILE"]  # a dangling path prints a warning, even into `show -json`
        if self.cli_config:
            env["TF_CLI_CONFIG_FILE"] = self.cli_config
        env["TF_IN_AUTOMATION"] = "1"
        env["TF_INPUT"] = "0"
        env["CHECKPOINT_DISABLE"] = "1"
        plugin_cache = Path(env.get("TF_PLUGIN_CACHE_DIR") or cache_home() / "tofu-plugins")
        plugin_cache.mkdir(parents=True, exist_ok=True)
        env["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache)
        return env

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        drop_env: Sequence[str] = (),
        timeout: float | None = None,
    ) -> Result:
        """Run ``tool ARGS`` in ``cwd`` within a time limit; stdin is closed so nothing can ever prompt."""
        env = {k: v for k, v in self.environment().items() if k not in drop_env} | dict(extra_env or {})
        limit = timeout if timeout is not None else TIMEOUTS.get(args[0] if args else "", DEFAULT_TIMEOUT)
        proc = subprocess.Popen(
            [self.path, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # an interrupt reaches tofu and its provider plugins, not us
        )
        grace = INTERRUPT_GRACES.get(args[0] if args else "", INTERRUPT_GRACE)
        try:
            stdout, stderr = proc.communicate(timeout=limit)
        except KeyboardInterrupt:  # tofu runs in its own session: our Ctrl-C must reach it, then we go
            _stop(proc, grace)
            raise
        except subprocess.TimeoutExpired:
            _stop(proc, grace)
            raise ToolError(
                f"`{self.kind} {' '.join(args[:1])}` did not finish within {_duration(limit)} (stopped)",
                where=str(cwd),
                fix="check the tool's progress (network, provider, cloud API), then run it again",
            ) from None
        return Result(tuple(args), proc.returncode, stdout, stderr)


def _stop(proc: subprocess.Popen[str], grace: float = INTERRUPT_GRACE) -> None:
    """Interrupt like Ctrl-C (tofu then stops cleanly and releases its state lock), kill if it hangs
    past ``grace``; a second Ctrl-C while waiting is passed on (tofu's own forced stop)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        try:
            proc.communicate(timeout=grace)
        except KeyboardInterrupt:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            proc.communicate(timeout=INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g}s"


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
            timeout=TIMEOUTS["version"],
        )
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"`{path} version` did not finish within {_duration(TIMEOUTS['version'])}",
            fix="pass --binary tofu|terraform|PATH (or set $DELIVER_TOFU) to a working binary",
        ) from None
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


def installed(repo: Path | None = None) -> dict[str, Tool]:
    """Every real binary found under its own name, by kind (``{"tofu": …, "terraform": …}``).

    A ``tofu`` that is really terraform (a symlink) counts as terraform, and once only."""
    found: dict[str, Tool] = {}
    for name in KINDS:
        path = _which(name, repo)
        if path:
            with contextlib.suppress(ToolError):
                tool = identify(path)
                found.setdefault(tool.kind, tool)
    return found


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
