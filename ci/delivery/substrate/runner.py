"""Plan and apply an environment's root: the same steps on a laptop, in CI and in Dagger.

``plan``: policy (HCL) → ``fmt -check`` → ``init`` (``-lockfile=readonly`` once a lock exists) →
``validate`` → ``plan -out -detailed-exitcode`` → ``show -json`` → a summary. The plan, its inputs and
``plan.json`` (summary + binding: env, root, sha256 of the plan, tool, fingerprint of the sources)
are written together into one directory, atomically.

``apply`` only takes such a saved plan. It refuses a plan made for another env or root, a plan
whose bytes changed, a plan made by the other tool, an offline plan, a plan older than the current
sources or state (re-plan), and any delete or replace whose address was not approved explicitly.

Two options change where tofu runs (``Mode``), never what is checked:
- ``mirror``: providers come from a filesystem mirror (``mirror``); the run works in a scratch copy
  (``scratch``), so no lock written with the mirror's build reaches the tree;
- ``offline`` (plan only): a scratch copy with a local backend and an empty state, no refresh, no
  credentials, no network: a real create-only plan that says what a first apply would create, and
  that ``apply`` refuses.

``plan(destroy=True)`` is ``plan -destroy``; ``apply`` takes such a plan only with every deleted
address approved (``approve_delete``), or all of them at once (``approve_all_deletes``, listed first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delivery import config as envconfig
from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, Problem, ToolError, UsageError, ValidationFailed, raise_if
from delivery.core.fsutil import atomic_directory, atomic_write_bytes, atomic_write_text
from delivery.substrate import inputs, mirror, planpolicy, policy, scratch
from delivery.substrate.destroy import DestroyScope, plan_scope
from delivery.substrate.hcl import Module
from delivery.substrate.summary import PlanSummary, gate, summarize
from delivery.substrate.tool import Result, Tool

PLAN_FILE = "plan.tfplan"
SIDECAR_FILE = "plan.json"
INPUTS_FILE = "inputs.tfvars.json"
SIDECAR_FORMAT = 1
LOCK_FILE = scratch.LOCK_FILE
OUT_FILES = {PLAN_FILE, SIDECAR_FILE, INPUTS_FILE, LOCK_FILE}
STALE_MARKERS = ("Saved plan is stale", "plan file can no longer be applied")


def default_out_dir(repo: Path, env: str, *, offline: bool = False, destroy: bool = False) -> Path:
    """Where ``deliver plan`` saves an environment's plan by default (git-ignored); an offline or a
    destroy plan goes beside it, so it never replaces a real plan under review."""
    suffix = ".offline" if offline else ".destroy" if destroy else ""
    return repo / "out" / "tofu" / f"{env}{suffix}"


@dataclass(frozen=True)
class Mode:
    """Where and how tofu runs: with providers from a mirror, offline (plan only), or neither."""

    mirror: mirror.Mirror | None = None
    offline: bool = False

    @property
    def scratch(self) -> bool:
        """Runs in a scratch copy of the root (never writing the tree)."""
        return self.offline or self.mirror is not None

    def tool(self, tool: Tool) -> Tool:
        """``tool`` with the runner's CLI config for the mirror (an existing file), if any."""
        if self.mirror is None:
            return tool
        return Tool(tool.path, tool.kind, tool.version, cli_config=str(mirror.cli_config(self.mirror)))


def sidecar_path(plan_file: Path) -> Path:
    """``plan.json`` beside a saved plan."""
    return plan_file.with_name(SIDECAR_FILE)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _rel(repo: Path, path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(repo.resolve())) if path.is_relative_to(repo.resolve()) else str(path)


def sources_fingerprint(repo: Path, module: Module, cfg: envconfig.EnvConfig) -> str:
    """sha256 over the root's and its local modules' HCL files and the env config."""
    digest = hashlib.sha256()
    files = sorted({f for m in module.walk() for f in m.files()} | {repo / cfg.path})
    for f in files:
        digest.update(_rel(repo, f).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Prepared:
    """An environment's root, loaded and checked, with its inputs."""

    repo: Path
    cfg: envconfig.EnvConfig
    root: Path
    module: Module
    variables: dict[str, object]
    fingerprint: str
    workdir: Path | None = None  # a scratch copy of the root to run tofu in, instead of the root

    @property
    def root_rel(self) -> str:
        return _rel(self.repo, self.root)

    @property
    def cwd(self) -> Path:
        """Where tofu runs for this root."""
        return self.workdir or self.root


def prepare(repo: Path, env: str) -> Prepared:
    """Load the env config and its root; run the HCL policy (all problems at once)."""
    cfg = envconfig.load_env(repo, env)
    root = inputs.root_dir(repo, env)
    if not root.is_dir() or (not any(root.glob("*.tf")) and not any(root.glob("*.tofu"))):
        raise UsageError(
            f"environment {env!r} has no OpenTofu root",
            where=_rel(repo, root),
            fix=f"create {_rel(repo, root)}/main.tf (copy tofu/envs/dev and keep values in config.yaml)",
        )
    module, problems = policy.check_root(root, repo)
    raise_if(problems, ValidationFailed)
    variables = inputs.root_variables(cfg, set(module.variables))
    return Prepared(repo, cfg, root, module, variables, sources_fingerprint(repo, module, cfg))


def _failed(step: str, result: Result, fix: str, where: str) -> ToolError:
    return ToolError(f"`{step}` failed (exit {result.code}):\n{result.tail()}", where=where, fix=fix)


def check_format(tool: Tool, prepared: Prepared) -> None:
    """``fmt -check`` on the root and every local module it calls, and their ``tests/`` (test files)."""
    unformatted: list[str] = []
    dirs = [d for m in prepared.module.walk() for d in (m.path, m.path / "tests") if d.is_dir()]
    for directory in dirs:
        result = tool.run(["fmt", "-check", "-list=true", "-no-color"], directory)
        if result.code not in (0, 3):
            raise _failed("fmt -check", result, "fix the HCL syntax", _rel(prepared.repo, directory))
        listed = (directory / line.strip() for line in result.stdout.splitlines() if line.strip())
        found = [_rel(prepared.repo, f) for f in listed if f.is_file()]  # skip any warning text
        if result.code == 3 and not found:
            raise _failed("fmt -check", result, "run fmt on the module", _rel(prepared.repo, directory))
        unformatted += found
    if unformatted:
        raise ValidationFailed.of(
            Problem(f, "not formatted", f"run: {tool.kind} fmt {Path(f).parent}") for f in sorted(unformatted)
        )


def init(
    tool: Tool, prepared: Prepared, reporter: ProgressReporter, *, mode: Mode = Mode(), backend: bool = True
) -> None:
    """``init`` with the derived backend config; ``-lockfile=readonly`` once a lock file exists.

    ``backend=False`` is ``init -backend=false`` (enough for ``validate``). A lock that init writes
    into the tree is checked against the known provider mirrors: one pinning a mirror's own build
    is removed again and the run fails (``mirror.refuse_mirror_lock``)."""
    backend_type = "local" if mode.offline else prepared.module.backend
    args = ["init", "-input=false", "-no-color"]
    args += inputs.backend_config(prepared.cfg, backend_type) if backend else ["-backend=false"]
    lock = prepared.cwd / LOCK_FILE
    locked = lock.is_file()
    if locked:
        args.append("-lockfile=readonly")
    result = tool.run(args, prepared.cwd)
    if result.code != 0:
        raise _failed(
            "init",
            result,
            "check the backend (state bucket exists, credentials) and provider availability"
            + ("; if providers changed on purpose, update the lock with `providers lock`" if locked else ""),
            prepared.root_rel,
        )
    if not locked and lock.is_file():
        if prepared.workdir is None:  # the tree: a lock pinning a mirror's own build must not stay
            try:
                mirror.refuse_mirror_lock(
                    lock.read_text(encoding="utf-8"),
                    f"{prepared.root_rel}/{LOCK_FILE}",
                    mirror.known(mode.mirror),
                    "init wrote it into the tree, so it was removed again",
                )
            except DeliveryError:
                lock.unlink()
                raise
            reporter.line(
                f"init: wrote {prepared.root_rel}/{LOCK_FILE}: commit it (init is readonly from then on)"
            )
        else:
            reporter.line(f"init: the scratch copy's lock stays there (never in {prepared.root_rel})")


def validate(tool: Tool, prepared: Prepared) -> None:
    """``validate``: the root and its modules are consistent (needs the providers from init)."""
    result = tool.run(["validate", "-no-color"], prepared.cwd)
    if result.code != 0:
        raise _failed("validate", result, "fix the root or its modules, then plan again", prepared.root_rel)


def show_json(tool: Tool, prepared: Prepared, plan_file: Path | None) -> dict[str, Any]:
    """``show -json PLAN`` parsed (``None``: the state, as the backend holds it)."""
    where = str(plan_file) if plan_file else f"{prepared.root_rel} (state)"
    result = tool.run(["show", "-json", "-no-color", *([str(plan_file)] if plan_file else [])], prepared.cwd)
    if result.code != 0:
        raise _failed("show -json", result, "re-plan: deliver plan --env " + prepared.cfg.name, where)
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise ToolError(f"`show -json` printed no JSON ({err.msg})", where=where) from None
    return data


@dataclass
class PlanOutcome:
    """What ``plan`` produced."""

    env: str
    root: str
    plan_file: Path
    summary: PlanSummary
    binding: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "root": self.root, "plan": str(self.plan_file), **self.binding}


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(p.name not in OUT_FILES for p in out_dir.iterdir())):
        raise UsageError(
            "the plan directory holds other files (it is replaced whole on every plan)",
            where=str(out_dir),
            fix="pass --out with an empty or plan-only directory",
        )


def _check_mode(prepared: Prepared, mode: Mode) -> None:
    """A scratch run of a root whose state is a local file would leave that state in the scratch."""
    if mode.scratch and not mode.offline and prepared.module.backend in (None, "local"):
        raise UsageError(
            f"{prepared.root_rel} keeps its state in a local file, and a run with --provider-mirror "
            "works in a scratch copy (the state would be lost with it)",
            where="--provider-mirror / $" + mirror.MIRROR_ENV_VAR,
            fix=f"plan it offline (deliver plan --env {prepared.cfg.name} --offline --provider-mirror DIR), "
            "or run it without a mirror",
        )


@contextlib.contextmanager
def workspace(prepared: Prepared, mode: Mode, *, keep_lock: bool) -> Iterator[Prepared]:
    """``prepared`` running in the root itself, or in a scratch copy of it (``mode.scratch``)."""
    if not mode.scratch:
        yield prepared
        return
    copy = scratch.scratch_root(prepared.repo, prepared.module, keep_lock=keep_lock, offline=mode.offline)
    with copy as root:
        yield dataclasses.replace(prepared, workdir=root)


def plan(
    repo: Path,
    env: str,
    tool: Tool,
    *,
    out_dir: Path | None = None,
    reporter: ProgressReporter,
    mode: Mode = Mode(),
    destroy: bool = False,
    destroy_secrets: bool = False,
) -> PlanOutcome:
    """Check, init and plan ``env``; save plan + inputs + plan.json into ``out_dir`` atomically.

    ``destroy`` plans the destruction of everything in the state (``plan -destroy``) but the secret
    declarations and what they need (``destroy_scope``), unless ``destroy_secrets``."""
    if destroy_secrets and not destroy:
        raise UsageError("--destroy-secrets is only for a destroy plan", fix="add --destroy, or drop it")
    if destroy and mode.offline:
        raise UsageError(
            "--destroy and --offline do not go together: an offline plan starts from an empty state",
            where="--destroy / --offline",
            fix=f"plan the destruction against the real state: deliver plan --env {env} --destroy",
        )
    prepared = prepare(repo, env)
    _check_mode(prepared, mode)
    out_dir = (out_dir or default_out_dir(repo, env, offline=mode.offline, destroy=destroy)).resolve()
    _check_out_dir(out_dir)
    tool = mode.tool(tool)
    reporter.line(f"policy: ok ({prepared.root_rel}, {len(prepared.module.walk())} module(s))")
    check_format(tool, prepared)
    reporter.line("fmt: ok")
    # With a mirror of local builds the committed lock's official hashes cannot match: an offline
    # plan leaves it out; a real one keeps it (readonly) and fails if the mirror is not official.
    keep_lock = not (mode.offline and mode.mirror is not None)
    if mode.offline and not keep_lock and (prepared.root / LOCK_FILE).is_file():
        reporter.line(f"offline: {prepared.root_rel}/{LOCK_FILE} is left out (the mirror's builds differ)")
    with workspace(prepared, mode, keep_lock=keep_lock) as work:
        if mode.scratch:
            reporter.line(f"scratch: running in a copy of {prepared.root_rel} ({work.cwd})")
        init(tool, work, reporter, mode=mode)
        backend = "local, empty (offline)" if mode.offline else prepared.module.backend or "local"
        source = f", providers from {mode.mirror.path}" if mode.mirror else ""
        reporter.line(f"init: ok ({tool.label}, backend {backend}{source})")
        validate(tool, work)
        reporter.line("validate: ok")
        scope = None
        if destroy and not destroy_secrets:  # secret declarations (and what they need) stay
            scope = plan_scope(show_json(tool, work, None), env, work.root_rel, reporter)
        return plan_in(tool, work, mode, out_dir, reporter, destroy=destroy, scope=scope)


def plan_in(
    tool: Tool,
    prepared: Prepared,
    mode: Mode,
    out_dir: Path,
    reporter: ProgressReporter,
    *,
    destroy: bool = False,
    scope: DestroyScope | None = None,
) -> PlanOutcome:
    """``plan -out`` in an initialised ``prepared.cwd``, ``show -json``, plan policy, and the saved
    plan directory (``plan`` runs the HCL policy, fmt, init and validate first); a destroy plan
    targets ``scope.targets`` when it keeps something."""
    env, repo = prepared.cfg.name, prepared.repo
    offline = ["-refresh=false", "-lock=false"] if mode.offline else ["-lock-timeout=5m"]
    with atomic_directory(out_dir, mode=0o700) as tmp:  # a plan holds config and values
        vars_file, plan_file = tmp / INPUTS_FILE, tmp / PLAN_FILE
        atomic_write_text(vars_file, json.dumps(prepared.variables, indent=2, sort_keys=True) + "\n")
        result = tool.run(
            [
                "plan",
                "-input=false",
                "-no-color",
                *offline,
                *(["-destroy"] if destroy else []),
                *(f"-target={t}" for t in (scope.targets if scope else ())),
                "-detailed-exitcode",
                f"-var-file={vars_file}",
                f"-out={plan_file}",
            ],
            prepared.cwd,
            extra_env=scratch.OFFLINE_ENV if mode.offline else None,
            drop_env=scratch.OFFLINE_DROP if mode.offline else (),
        )
        if result.code not in (0, 2) or not plan_file.is_file():
            raise _failed("plan", result, "fix the root or its inputs, then plan again", prepared.root_rel)
        plan_file.chmod(0o600)  # a plan holds config and values: treat it as sensitive
        plan_json = show_json(tool, prepared, plan_file)
        summary = summarize(plan_json)
        if (result.code == 2) != summary.has_changes:
            reporter.line(f"plan: exit {result.code} and summary disagree; trusting the plan JSON")
        raise_if(planpolicy.check(plan_json, prepared.root_rel), ValidationFailed)
        reporter.line("plan policy: ok (planned values)")
        binding = {
            "format": SIDECAR_FORMAT,
            "env": env,
            "root": prepared.root_rel,
            "plan_file": PLAN_FILE,
            "plan_sha256": _sha256(plan_file),
            "tool": tool.kind,
            "tool_version": tool.version,
            "sources_sha256": prepared.fingerprint,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "offline": mode.offline,
            "destroy": destroy,
            "kept": list(scope.kept) if scope else [],
            "provider_mirror": str(mode.mirror.path) if mode.mirror else None,
            "summary": summary.as_dict(),
        }
        atomic_write_text(tmp / SIDECAR_FILE, json.dumps(binding, indent=2, sort_keys=True) + "\n")
        # the providers this plan was made with: the tree's lock, never one written in a scratch copy
        if prepared.workdir is None and (prepared.root / LOCK_FILE).is_file():
            atomic_write_bytes(tmp / LOCK_FILE, (prepared.root / LOCK_FILE).read_bytes())
    reporter.line(f"plan: saved {_rel(repo, out_dir / PLAN_FILE)}")
    return PlanOutcome(env, prepared.root_rel, out_dir / PLAN_FILE, summary, binding)


def _load_binding(plan_file: Path, env: str) -> dict[str, Any]:
    fix = f"run: deliver plan --env {env}, review it, then apply that plan"
    if not plan_file.is_file():
        raise UsageError("plan file not found", where=str(plan_file), fix=fix)
    sidecar = sidecar_path(plan_file)
    try:
        binding = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"not a plan saved by `deliver plan`: {SIDECAR_FILE} is missing beside it",
            where=str(plan_file),
            fix=fix,
        ) from None
    except OSError as err:  # a directory, unreadable, ...
        raise UsageError(
            f"{SIDECAR_FILE} cannot be read ({err.strerror or err})", where=str(sidecar), fix=fix
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{SIDECAR_FILE} is not valid JSON", where=str(sidecar), fix=fix) from None
    if not isinstance(binding, dict) or binding.get("format") != SIDECAR_FORMAT:
        raise UsageError(f"{SIDECAR_FILE} has an unknown format", where=str(sidecar), fix=fix)
    return binding


def verify_binding(plan_file: Path, prepared: Prepared, tool: Tool, mode: Mode = Mode()) -> dict[str, Any]:
    """Refuse a plan that is not this env's, was changed, or is older than the sources."""
    env = prepared.cfg.name
    binding = _load_binding(plan_file, env)
    replan = f"run: deliver plan --env {env}, review it, then apply the new plan"
    where = str(plan_file)
    if binding.get("offline"):
        raise UsageError(
            "this is an offline plan (an empty local state, no cloud access): it shows what a first "
            "apply would create and can never be applied",
            where=where,
            fix=f"plan against the real state: deliver plan --env {env} (GCS backend, credentials), "
            "review it, then apply that plan",
        )
    planned_mirror, this_mirror = binding.get("provider_mirror"), mode.mirror
    if (planned_mirror is None) != (this_mirror is None):
        raise UsageError(
            f"plan was made with providers from {planned_mirror or 'the registry'}, this apply would "
            f"take them from {this_mirror.path if this_mirror else 'the registry'}",
            where=where,
            fix=f"apply with the same provider source (--provider-mirror {planned_mirror})"
            if planned_mirror
            else f"apply without --provider-mirror, or {replan}",
        )
    if binding.get("env") != env:
        raise UsageError(
            f"plan was made for environment {binding.get('env')!r}, not {env!r}",
            where=where,
            fix=f"apply it with --env {binding.get('env')}, or {replan}",
        )
    if binding.get("root") != prepared.root_rel:
        raise UsageError(
            f"plan was made for root {binding.get('root')!r}, not {prepared.root_rel!r}",
            where=where,
            fix=replan,
        )
    if binding.get("plan_sha256") != _sha256(plan_file):
        raise UsageError(
            "plan file was modified after `deliver plan` saved it (sha256 does not match plan.json)",
            where=where,
            fix=replan,
        )
    if binding.get("tool") != tool.kind:
        raise UsageError(
            f"plan was made with {binding.get('tool')} {binding.get('tool_version')}, "
            f"this apply would run {tool.label}",
            where=where,
            fix=f"pass --binary {binding.get('tool')}, or {replan}",
        )
    if binding.get("sources_sha256") != prepared.fingerprint:
        raise DeliveryError(
            f"plan is stale: {prepared.root_rel}, its modules or {prepared.cfg.path} changed since the plan",
            where=where,
            fix=f"re-plan: {replan}",
        )
    return binding


def _check_plan_inputs(plan_json: dict[str, Any], prepared: Prepared, where: str) -> None:
    recorded = {
        k: v.get("value") for k, v in (plan_json.get("variables") or {}).items() if isinstance(v, dict)
    }
    differs = sorted(k for k, v in prepared.variables.items() if k in recorded and recorded[k] != v)
    if differs:
        raise DeliveryError(
            f"plan is stale: its inputs {', '.join(differs)} differ from {prepared.cfg.path}",
            where=where,
            fix=f"re-plan: deliver plan --env {prepared.cfg.name}",
        )


@dataclass
class ApplyOutcome:
    """What ``apply`` did."""

    env: str
    plan_file: Path
    summary: PlanSummary
    outputs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "plan": str(self.plan_file),
            "applied": self.summary.as_dict(),
            "outputs": self.outputs,
        }


def apply(
    repo: Path,
    env: str,
    tool: Tool,
    plan_file: Path,
    *,
    approve_delete: Sequence[str] = (),
    approve_all_deletes: bool = False,
    reporter: ProgressReporter,
    mode: Mode = Mode(),
) -> ApplyOutcome:
    """Apply a plan saved by ``plan`` for ``env``, after binding checks and the delete gate.

    ``approve_all_deletes`` approves every address a destroy plan deletes (listed first); it is
    refused for any other plan, whose deletes and replaces are each named with ``approve_delete``."""
    prepared = prepare(repo, env)
    plan_file = plan_file.resolve()
    binding = verify_binding(plan_file, prepared, tool, mode)
    if approve_all_deletes and (approve_delete or not binding.get("destroy")):
        raise UsageError(
            "--approve-all-deletes approves a destroy plan as a whole, with no --approve-delete"
            if approve_delete
            else "--approve-all-deletes is only for a destroy plan (deliver plan --destroy)",
            where=str(plan_file),
            fix="name each address the plan deletes or replaces with --approve-delete ADDRESS",
        )
    _check_mode(prepared, mode)
    tool = mode.tool(tool)
    reporter.line("plan: bound to this env, root and sources; unchanged since saved")
    planned_lock, root_lock = plan_file.with_name(LOCK_FILE), prepared.root / LOCK_FILE
    if planned_lock.is_file() and not root_lock.is_file() and not mode.scratch:
        data = planned_lock.read_bytes()
        mirror.refuse_mirror_lock(
            data.decode("utf-8", "replace"),
            str(planned_lock),
            mirror.known(mode.mirror),
            f"it is not copied into {prepared.root_rel}",
        )
        atomic_write_bytes(root_lock, data)  # same providers as the plan
        reporter.line(f"init: using the plan's {LOCK_FILE} for {prepared.root_rel}: commit it")
    with workspace(prepared, mode, keep_lock=True) as work:
        return _apply_in(tool, work, plan_file, approve_delete, approve_all_deletes, reporter)


def _apply_in(
    tool: Tool,
    prepared: Prepared,
    plan_file: Path,
    approve_delete: Sequence[str],
    approve_all_deletes: bool,
    reporter: ProgressReporter,
) -> ApplyOutcome:
    env = prepared.cfg.name
    init(tool, prepared, reporter)
    plan_json = show_json(tool, prepared, plan_file)
    _check_plan_inputs(plan_json, prepared, str(plan_file))
    summary = summarize(plan_json)  # recomputed from the plan itself, not read from plan.json
    if approve_all_deletes:  # a destroy plan (checked by apply): every address, listed before it runs
        approve_delete = [c.address for c in summary.destructive]
        reporter.line(f"destroy: --approve-all-deletes approves these {len(approve_delete)} address(es):")
        for address in approve_delete:
            reporter.line(f"  delete  {address}")
    gate(summary, approve_delete, str(plan_file))
    reporter.line(f"gate: ok ({len(summary.destructive)} approved delete/replace)")
    result = tool.run(
        ["apply", "-input=false", "-no-color", "-lock-timeout=5m", str(plan_file)], prepared.cwd
    )
    if result.code != 0:
        text = result.stdout + result.stderr
        if any(marker in text for marker in STALE_MARKERS):
            raise DeliveryError(
                "plan is stale: the state changed since it was made (another apply ran)",
                where=str(plan_file),
                fix=f"re-plan: deliver plan --env {env}, review it, then apply the new plan",
            )
        raise _failed(
            "apply", result, "read the error above; fix, re-plan and apply again", prepared.root_rel
        )
    reporter.line("apply: ok")
    return ApplyOutcome(env, plan_file, summary, read_outputs(tool, prepared))


def read_outputs(tool: Tool, prepared: Prepared) -> dict[str, Any]:
    """The root's outputs (``output -json``); sensitive values are replaced with ``***``."""
    result = tool.run(["output", "-json", "-no-color"], prepared.cwd)
    if result.code != 0:
        raise _failed("output -json", result, "check the state", prepared.root_rel)
    raw = json.loads(result.stdout or "{}")
    return {k: "***" if v.get("sensitive") else v.get("value") for k, v in raw.items()}
