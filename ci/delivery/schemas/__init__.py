"""The hermetic schema bundle kubeconform validates against (pinned upstream sources, converted once).

- ``sources``: the pinned upstream files (``schemas.sha256``) and where they are read from;
- ``convert``: CRD and core-kind schemas rewritten as standalone JSON schemas;
- ``bundle``: build, cache (content-addressed key) and export the bundle;
- ``cli``: ``deliver schemas``.
"""

from delivery.schemas.bundle import SchemaBundle, ensure_bundle, export_bundle
from delivery.schemas.convert import schema_relpath

__all__ = ["SchemaBundle", "ensure_bundle", "export_bundle", "schema_relpath"]
