"""The hermetic schema bundle kubeconform validates against.

Three sources, each pinned:
- core Kubernetes kinds from the PyPI package kubernetes-validate (pinned in pyproject.toml), for
  the environment's Kubernetes minor; its schemas point at a shared ``/api/_definitions.json`` that
  kubeconform cannot resolve, so each kind is rewritten as a standalone schema (the definitions it
  uses are inlined under ``$defs``), in a plain and a ``-strict`` variant;
- CRD schemas from the datreeio CRDs-catalog at a pinned commit;
- our own conversion of upstream CRD YAML (``openAPIV3Schema`` -> JSON schema) for the kinds the
  catalog lacks (InferencePool, InferenceObjective, LLMInferenceService...).

Every upstream file is pinned by sha256 in ``schemas.sha256`` beside this module. Files are read
from the hermetic copy next to the repo (``../shared/kube-schemas``, or ``$DELIVER_KUBE_SCHEMAS``,
or ``--source``), else from the download cache, else (online) fetched from the pinned URL, or from
``$DELIVER_SCHEMA_MIRROR`` (a base URL serving ``<host>/<path>`` of each pinned URL), and checked
against the pin. Every download is bounded (``FETCH_TIMEOUT`` per socket operation,
``FETCH_DEADLINE`` per file, ``MAX_SOURCE_BYTES``); a host that cannot be reached stops at once,
and whatever is still missing is one error saying what and every way to provide it. The built
bundle is cached under ``.cache/schemas/<key>``, where the key hashes every input (pins,
kubernetes-validate version, Kubernetes minors, converter version).

Bundle layout (one exact file per apiVersion and kind, the same for core kinds and CRDs)::

    bundle.json                                        provenance and the index of kinds
    kubernetes/v<minor>.0-standalone[-strict]/<group>/<kind>_<version>.json
    crds/standalone[-strict]/<group>/<kind>_<version>.json
    licenses/<source set>/LICENSE

where ``<group>`` is kubeconform's ``{{.Group}}`` (``v1`` for the core group), so kubeconform reads
it with ``-schema-location`` templates (see ``SchemaBundle.locations``).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import importlib.util
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import SourceError, ToolError, UsageError
from delivery.core.fsutil import atomic_write_bytes

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
PINS_FILE = Path(__file__).with_name("schemas.sha256")
KUBERNETES_VALIDATE = "kubernetes-validate"
SOURCE_DIR_ENV = "DELIVER_KUBE_SCHEMAS"
CACHE_DIR_ENV = "DELIVER_SCHEMA_CACHE"
MIRROR_ENV = "DELIVER_SCHEMA_MIRROR"
CATALOG_COMMIT = "7b1e26ef"
FETCH_TIMEOUT = 20.0  # seconds per socket operation (connect, each read)
FETCH_DEADLINE = 120.0  # seconds per file, however slowly it trickles in
MAX_SOURCE_BYTES = 16 << 20  # the largest pinned file is ~2.2 MB

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class SourceSet:
    """A folder of pinned upstream files: where it comes from, and the URL of each file."""

    folder: str
    upstream: str
    files_url: str
    license_url: str

    def url(self, name: str) -> str:
        return self.license_url if name == "LICENSE" else f"{self.files_url}/{name}"


SOURCE_SETS: tuple[SourceSet, ...] = (
    SourceSet(
        "catalog",
        f"datreeio/CRDs-catalog at commit {CATALOG_COMMIT}",
        f"{_RAW}/datreeio/CRDs-catalog/{CATALOG_COMMIT}",
        f"{_RAW}/datreeio/CRDs-catalog/{CATALOG_COMMIT}/LICENSE",
    ),
    SourceSet(
        "crds/gateway-api-inference-extension-v1.5.0",
        "kubernetes-sigs/gateway-api-inference-extension tag v1.5.0, config/crd/bases",
        f"{_RAW}/kubernetes-sigs/gateway-api-inference-extension/v1.5.0/config/crd/bases",
        f"{_RAW}/kubernetes-sigs/gateway-api-inference-extension/v1.5.0/LICENSE",
    ),
    SourceSet(
        "crds/kserve-v0.19.0",
        "kserve/kserve tag v0.19.0, config/crd/full",
        f"{_RAW}/kserve/kserve/v0.19.0/config/crd/full",
        f"{_RAW}/kserve/kserve/v0.19.0/LICENSE",
    ),
)


@dataclass(frozen=True)
class PinnedFile:
    """One upstream file: its path under the source root, its sha256 and its pinned URL."""

    path: str
    sha256: str
    source_set: SourceSet

    @property
    def url(self) -> str:
        return self.source_set.url(self.path.removeprefix(self.source_set.folder + "/"))

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def pinned_files() -> list[PinnedFile]:
    """Every pinned upstream file (from ``schemas.sha256``)."""
    pins: list[PinnedFile] = []
    for raw in PINS_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        digest, path = line.split(maxsplit=1)
        owner = next((s for s in SOURCE_SETS if path.startswith(s.folder + "/")), None)
        if owner is None:
            raise ValueError(f"{PINS_FILE.name}: {path} belongs to no source set")
        pins.append(PinnedFile(path, digest, owner))
    return pins


# --------------------------------------------------------------------------- locating inputs


def default_source_dir(repo: Path) -> Path:
    """The hermetic copy of the upstream files: ``$DELIVER_KUBE_SCHEMAS`` or ``../shared/kube-schemas``."""
    override = os.environ.get(SOURCE_DIR_ENV)
    return Path(override) if override else repo.parent / "shared" / "kube-schemas"


def default_cache_dir(repo: Path) -> Path:
    """Where built bundles and downloaded sources are cached: ``$DELIVER_SCHEMA_CACHE`` or .cache/schemas."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else repo / ".cache" / "schemas"


def kubernetes_validate_version() -> str:
    try:
        return importlib.metadata.version(KUBERNETES_VALIDATE)
    except importlib.metadata.PackageNotFoundError:
        raise ToolError(
            f"the Python package {KUBERNETES_VALIDATE} is not installed",
            fix="pip install -e . (it is a dependency in pyproject.toml)",
        ) from None


def _kubernetes_validate_root() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        kubernetes_validate_version()  # raises the install hint
        raise ToolError(f"cannot locate the {KUBERNETES_VALIDATE} package files")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def kubernetes_schema_dir(minor: str, *, strict: bool) -> Path:
    """kubernetes-validate's folder for a Kubernetes minor (``1.34`` -> ``v1.34.0-local[-strict]``)."""
    folder = _kubernetes_validate_root() / f"v{minor}.0-local{'-strict' if strict else ''}"
    if not (folder / "_definitions.json").is_file():
        known = sorted(
            p.name.removeprefix("v").removesuffix(".0-local")
            for p in _kubernetes_validate_root().glob("v*-local")
        )
        raise UsageError(
            f"{KUBERNETES_VALIDATE} {kubernetes_validate_version()} has no schemas for Kubernetes {minor}",
            where="cluster.kubernetesVersion",
            fix=f"use one of {', '.join(known)}, or upgrade {KUBERNETES_VALIDATE}",
        )
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Fetcher = Callable[[str], bytes]


class FetchRefused(Exception):
    """A download refused on our side: larger than ``MAX_SOURCE_BYTES``."""


class TooSlow(FetchRefused):
    """A download slower than ``FETCH_DEADLINE``: the host is not tried for the other files."""


def _http_get(url: str) -> bytes:
    """The body of ``url``: bounded in time (per operation and in all) and in size."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_SOURCE_BYTES:
            raise FetchRefused(
                f"{url} declares {declared} bytes, more than the limit of {MAX_SOURCE_BYTES} bytes"
            )
        parts: list[bytes] = []
        size = 0
        while chunk := resp.read1(1 << 16):
            size += len(chunk)
            if size > MAX_SOURCE_BYTES:
                raise FetchRefused(f"{url} sends more than the limit of {MAX_SOURCE_BYTES} bytes")
            if time.monotonic() - started > FETCH_DEADLINE:
                raise TooSlow(f"{url} took longer than {FETCH_DEADLINE:g} s")
            parts.append(chunk)
        return b"".join(parts)


def schema_mirror() -> str | None:
    """``$DELIVER_SCHEMA_MIRROR``: a base URL that serves ``<host>/<path>`` of every pinned URL."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(
            f"not an http(s) base URL: {value!r}",
            where=f"${MIRROR_ENV}",
            fix=f"set {MIRROR_ENV} to e.g. https://mirror.example/kube-schemas (serving "
            "<host>/<path> of each pinned URL), or unset it to fetch the pinned URLs",
        )
    return value.rstrip("/")


def fetch_url(pin: PinnedFile, mirror: str | None) -> str:
    """Where ``pin`` is downloaded from: its pinned URL, or the same host and path on the mirror."""
    if mirror is None:
        return pin.url
    parts = urllib.parse.urlsplit(pin.url)
    return f"{mirror}/{parts.netloc}{parts.path}"


def _unreachable(err: BaseException, url: str) -> str | None:
    """Why the host of ``url`` cannot be reached at all (then no other file is tried), else None."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(err, urllib.error.HTTPError):
        return None
    if isinstance(reason, socket.gaierror):
        return f"the host name {host} does not resolve (DNS: {reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return f"{parts.netloc} refused the connection"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer from {parts.netloc} within {FETCH_TIMEOUT:g} s"
    if isinstance(reason, OSError):
        return f"{parts.netloc} cannot be reached ({reason.strerror or reason})"
    return f"{parts.netloc} cannot be reached ({reason})"


def _shown(pins: Sequence[PinnedFile], at_most: int = 3) -> str:
    more = f" and {len(pins) - at_most} more" if len(pins) > at_most else ""
    return ", ".join(p.path for p in pins[:at_most]) + more


def missing_sources(
    missing: Sequence[PinnedFile],
    total: int,
    *,
    source_dir: Path | None,
    download_cache: Path,
    why: str,
    option: str = "--source",
    offline: bool = False,
) -> SourceError:
    """The one error for pinned files that are nowhere: what is missing, where it was looked for,
    why it could not be downloaded, and every way to provide them."""
    looked = (
        f"not in the hermetic copy {source_dir}"
        if source_dir is not None
        else "not in a hermetic copy: none was given and there is none at ../shared/kube-schemas "
        "beside the repo"
    )
    via = f"{option} DIR or ${SOURCE_DIR_ENV}=DIR"
    if option != "--source":
        via += ", or build the bundle once with `deliver schemas --source DIR`"
    return SourceError(
        f"{len(missing)} of {total} pinned files are missing: {_shown(missing)} ({looked}; not in "
        f"the download cache {download_cache}); {why}",
        where=str(source_dir) if source_dir is not None else "schema sources",
        fix=f"pass a copy of the pinned files (laid out by path as in {PINS_FILE}; check it with "
        f"sha256sum -c) with {via}; `deliver schemas --save-sources DIR` writes that copy on a machine "
        f"with access; or {'drop --offline and ' if offline else ''}give this machine network access "
        f"to {_pinned_hosts()}, or set ${MIRROR_ENV} to a mirror serving <host>/<path> of each pinned URL",
    )


def _pinned_hosts() -> str:
    hosts = sorted({urllib.parse.urlsplit(s.files_url).netloc for s in SOURCE_SETS})
    return ", ".join(hosts)


def read_sources(
    pins: Sequence[PinnedFile],
    *,
    source_dir: Path | None,
    download_cache: Path,
    offline: bool,
    fetch: Fetcher = _http_get,
    option: str = "--source",
) -> tuple[dict[str, bytes], dict[str, str]]:
    """The bytes of every pinned file, each checked against its sha256, and where each came from.

    Order: the hermetic source dir, the download cache, then (unless ``offline``) the pinned URL or
    its mirror (``$DELIVER_SCHEMA_MIRROR``), which is stored in the download cache. A file whose
    bytes do not match its pin is an error; files that are nowhere are one error
    (``missing_sources``; ``option`` is the caller's option for the hermetic copy).
    """
    data: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    missing: list[PinnedFile] = []
    for pin in pins:
        for where, candidate in (
            ("source", source_dir / pin.path if source_dir else None),
            ("cache", download_cache / pin.sha256),
        ):
            if candidate is None or not candidate.is_file():
                continue
            blob = candidate.read_bytes()
            if _sha256(blob) != pin.sha256:
                raise SourceError(
                    f"sha256 {_sha256(blob)} does not match the pin {pin.sha256}",
                    where=str(candidate),
                    fix=f"restore the upstream file ({pin.url}), or update {PINS_FILE.name} on purpose",
                )
            data[pin.path], origin[pin.path] = blob, where
            break
        else:
            missing.append(pin)
    if not missing:
        return data, origin

    def nowhere(left: Sequence[PinnedFile], why: str) -> SourceError:
        return missing_sources(
            left,
            len(pins),
            source_dir=source_dir,
            download_cache=download_cache,
            why=why,
            option=option,
            offline=offline,
        )

    if offline:
        raise nowhere(missing, "they are not available offline (--offline: nothing is downloaded)")
    mirror = schema_mirror()
    failed: list[tuple[PinnedFile, str]] = []
    for index, pin in enumerate(missing):
        url = fetch_url(pin, mirror)
        try:
            blob = fetch(url)
        except (TooSlow, urllib.error.URLError, OSError, http.client.HTTPException) as err:
            # HTTPException: a broken response (IncompleteRead, BadStatusLine, LineTooLong), not OSError
            cause = str(err) if isinstance(err, TooSlow) else _unreachable(err, url)
            if cause is not None:  # the host is unreachable or too slow: not tried for the others
                left = [p for p, _ in failed] + list(missing[index:])
                raise nowhere(left, f"they cannot be downloaded: {cause}") from None
            failed.append((pin, f"{url}: {err}"))
            continue
        except FetchRefused as err:
            failed.append((pin, str(err)))
            continue
        if _sha256(blob) != pin.sha256:
            raise SourceError(
                f"downloaded sha256 {_sha256(blob)} does not match the pin {pin.sha256}",
                where=url,
                fix=(
                    f"the mirror (${MIRROR_ENV}) serves other bytes than {pin.url}: fix the mirror"
                    if mirror
                    else "upstream changed under a pinned URL: investigate before updating the pin"
                ),
            )
        download_cache.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(download_cache / pin.sha256, blob)
        data[pin.path], origin[pin.path] = blob, "mirror" if mirror else "download"
    if failed:
        raise nowhere([p for p, _ in failed], f"downloading them failed: {failed[0][1]}")
    return data, origin
