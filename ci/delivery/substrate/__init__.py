"""The substrate: OpenTofu roots for GKE, planned and applied through a gated pipeline.

- ``tool``: find the binary (tofu by default, terraform accepted) and run it without prompts.
- ``inputs``: the env → root mapping and the root's variables, all from environment config.
- ``hcl`` / ``policy``: HCL-level policy on roots and their local modules (no providers needed).
- ``summary``: ``show -json`` of a saved plan → creates, updates, deletes, replaces.
- ``runner``: ``plan`` (fmt, init, plan -out, show) and ``apply`` (binding, gate, apply).
"""
