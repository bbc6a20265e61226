"""The demo's schema stage: the hermetic bundle its validations read, found as ``deliver schemas`` finds it.

The same order as ``deliver schemas``: the hermetic copy (``--schema-source DIR``, else
``$DELIVER_KUBE_SCHEMAS``, else ``../shared/kube-schemas`` beside the repo), the download cache,
then, unless ``--offline``, the pinned URLs (or ``$DELIVER_SCHEMA_MIRROR``), each file checked
against its sha256 pin. A fresh clone with network access needs nothing else; without it the
error names what is missing and every way to provide it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.console import ProgressReporter
from delivery.schemas import SchemaBundle, ensure_bundle
from delivery.schemas.sources import BUNDLE_FILE, default_cache_dir

SOURCE_OPTION = "--schema-source"


@dataclass(frozen=True)
class SchemaSource:
    """Where the demo's schema sources come from (``deliver demo --schema-source DIR --offline``)."""

    source_dir: Path | None = None
    offline: bool = False

    def bundle(
        self, repo: Path, minors: Sequence[str], reporter: ProgressReporter | None = None
    ) -> SchemaBundle:
        """The bundle for these Kubernetes minors, from the repo's cache or built (see the module)."""
        return ensure_bundle(
            repo,
            minors,
            source_dir=self.source_dir,
            offline=self.offline,
            progress=reporter,
            option=SOURCE_OPTION,
        )


def schema_stage(
    repo: Path, minors: Sequence[str], source: SchemaSource, reporter: ProgressReporter
) -> SchemaBundle:
    """The bundle every environment validates against, said in one line."""
    bundle = source.bundle(repo, minors, reporter)
    reporter.line(
        f"schemas: bundle {bundle.key} ({bundle.schema_count()} schemas, Kubernetes "
        f"{', '.join(bundle.kubernetes_versions)}) in {bundle.root}"
    )
    return bundle


def share_schemas(repo: Path, scratch: Path, minor: str, source: SchemaSource) -> None:
    """The bundle for ``minor`` in the scratch repo's (ignored) cache, so the promotion's validation
    step finds it there and needs no network and no schema sources beside the scratch repo."""
    bundle = source.bundle(repo, [minor])
    dest = default_cache_dir(scratch) / bundle.root.name
    if not (dest / BUNDLE_FILE).is_file():
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(bundle.root, dest)
