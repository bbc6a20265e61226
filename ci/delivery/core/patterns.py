"""The identifier shapes the pipeline pins things by, defined once: digests, commits, versions."""

from __future__ import annotations

import re

SHA256_HEX = "[0-9a-f]{64}"
#: ``sha256:<64 lowercase hex>``, the only digest algorithm the pipeline writes or accepts.
DIGEST_PATTERN = rf"^sha256:{SHA256_HEX}$"
DIGEST = re.compile(DIGEST_PATTERN)
#: a reference that ends in a digest: ``…@sha256:<64 hex>``.
DIGEST_SUFFIX = re.compile(rf"@sha256:{SHA256_HEX}$")
#: an image pinned by digest: ``host/repo[:tag]@sha256:<64 hex>``.
PINNED_IMAGE_PATTERN = rf"^\S+@sha256:{SHA256_HEX}$"
#: an ``oci://`` reference pinned by digest; ``ref`` is the part after the scheme.
OCI_DIGEST_REF = re.compile(rf"^oci://(?P<ref>[^@\s]+@sha256:{SHA256_HEX})$")
#: a full git commit id (40 lowercase hex).
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
COMMIT = re.compile(COMMIT_PATTERN)
#: an exact semantic version, optionally ``v``-prefixed, with pre-release/build parts.
SEMVER = r"v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?"
SEMVER_PATTERN = rf"^{SEMVER}$"


def is_digest(text: str) -> bool:
    """True for a well-formed ``sha256:<64 lowercase hex>`` digest."""
    return DIGEST.fullmatch(text) is not None
