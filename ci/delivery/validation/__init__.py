"""Validation of an environment's roots and layers: kubeconform against hermetic schemas, then policy rules.

Modules:
- ``validate``: ``validate_envs``, one ``Report`` per environment (one kubeconform run per Kubernetes minor).
- ``manifests``: the env's manifests (its roots and layers) as ``Manifest`` documents.
- ``kubeconform``: the binary, its command line, file partitioning and its JSON results.
- ``policy``: the policy rules, one registry table (``policy.registry.RULES``) and the rule modules.
- ``findings``: the result vocabulary: ``Status``, ``Finding`` (a located problem with its fix), ``Report``.
- ``outputs``: the writers: text, JSON and JUnit XML.
- ``cli``: ``deliver validate``.

It reads ``delivery.core``, ``config``, ``gitops.conventions``, ``schemas`` and ``substrate`` (the
HCL rule of the substrate boundary), and nothing that builds or publishes (modelcar, oci, demo).
"""

from delivery.validation.findings import Finding, Report, Status
from delivery.validation.policy import RULES, check_policies
from delivery.validation.validate import validate_envs

__all__ = ["RULES", "Finding", "Report", "Status", "check_policies", "validate_envs"]
