"""Modelcars: Hugging Face weights at a pinned commit -> reproducible, digest-pinned KServe OCI images."""
