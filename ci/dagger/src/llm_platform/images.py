"""Every container image the module runs, pinned by digest (tests check that each one is)."""

# Python base of the toolbox: uv installs the root uv.lock and the project on it; `deliver` runs there.
PYTHON = "python:3.13-slim@sha256:9d2e5553305c7c7b0097999bb17187c69b921ccd6bc9d40e4bb5ebe652c00285"

# OpenTofu, binary only (FROM scratch): its /usr/local/bin/tofu is copied into the toolbox.
OPENTOFU = (
    "ghcr.io/opentofu/opentofu:1.12.6-minimal"
    "@sha256:316699e0f58b1e01fb9d99252ab5dbeeac15687497ab155ceabcba8974828dd3"
)

# kubeconform v0.7.0 (alpine variant): its /kubeconform binary is copied into the toolbox.
KUBECONFORM = (
    "ghcr.io/yannh/kubeconform:v0.7.0-alpine"
    "@sha256:8f0eeaaa96ba27ba1500b0e4b1c215acc358d159c62a7ecae58d7a03403287b0"
)
