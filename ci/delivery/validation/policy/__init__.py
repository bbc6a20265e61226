"""Policy checks on an environment's roots and layers (and the repo's substrate boundary).

``deliver validate`` runs them after kubeconform. Every rule is one entry of the registry (id, what
it catches, function, scope); the README's policy table is generated from it (``rules_table``).

Modules:
- ``registry``: ``Rule``, ``Scope``, the ``RULES`` table and the runner (``run_rules``,
  ``check_policies`` for the failing rules, ``check_warnings`` for the warning ones).
- ``context``: ``EnvContext`` (the env under check and facts derived once) and the manifest helpers.
- ``images``: ``image-digest``, ``oci-digest``, ``unpublished`` (a warning).
- ``workloads``: ``secret-data``, ``object-size``, ``scale-from-zero``, ``llm-d-gpus``, ``inference-api``,
  ``route-pool-namespace``.
- ``applications``: ``app-project-destination``, ``chart-pin``, ``repo-branch``, ``profile-layers``.
- ``network``: ``request-path`` (who may reach the model servers and the gateway), ``pod-security``.
- ``boundaries``: ``demo-on-request-path``, ``cloud-resource-kind``, ``tofu-provider`` (the
  substrate's own HCL rule over tofu/).
"""

from delivery.validation.policy.boundaries import check_tofu
from delivery.validation.policy.context import EnvContext
from delivery.validation.policy.registry import (
    RULE_IDS,
    RULES,
    Rule,
    Scope,
    check_policies,
    check_warnings,
    rules_table,
    run_rules,
)

__all__ = [
    "RULES",
    "RULE_IDS",
    "EnvContext",
    "Rule",
    "Scope",
    "check_policies",
    "check_tofu",
    "check_warnings",
    "rules_table",
    "run_rules",
]
