"""Where the weights come from: the Hugging Face cache (snapshot_download) or a plain directory.

Both give the same thing: a sorted list of ``SourceFile`` (path relative to the model root, the
real file to read, its size, and the sha256 the hub publishes for it when known). Unsafe sources
are refused before anything is read: names with ``..`` or backslashes, symlinks whose target
leaves the allowed root, symlinked directories, special files, names that are not UTF-8.

The HF token comes only from the environment (``HF_TOKEN``) or a secret file
(``HF_TOKEN_FILE`` / ``--hf-token-file``); it is never printed and never read from
huggingface_hub's own login store.

A hub that cannot be reached fails at once: before huggingface_hub is asked to download, one TCP
connect to the hub (or the proxy the environment names for it), bounded by
``HUB_CONNECT_TIMEOUT`` and never retried, tells a name that does not resolve, a refused port or
a host that does not answer; then only the HF cache is looked at, and when it lacks the revision
the error names that cause and the real ways out. huggingface_hub's own calls that carry no time
limit get ``HUB_READ_TIMEOUT`` per socket operation.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from delivery.core.console import redact
from delivery.core.errors import BadSourceError, SourceError
from delivery.core.secrets import read_secret
from delivery.modelcar.spec import ModelcarSpec

# Never part of a model, whatever the patterns: VCS data and huggingface_hub's local_dir metadata.
SKIPPED_DIRS = (".git", ".cache")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
HUB_CONNECT_TIMEOUT = 10.0  # seconds for the one probe connect to the hub
HUB_READ_TIMEOUT = 60.0  # seconds per socket operation of huggingface_hub calls without their own

Downloader = Callable[..., str]


@dataclass(frozen=True)
class SourceFile:
    """One weight/config file: its path in the model, the file to read, its size, the hub's sha256."""

    relpath: str
    path: Path
    size: int
    expected_sha256: str | None = None


@dataclass(frozen=True)
class HubFile:
    """A file as the hub lists it for a revision: size, LFS sha256 (LFS files), git blob id."""

    size: int
    sha256: str | None
    blob_id: str | None


Listing = dict[str, HubFile]


@dataclass(frozen=True)
class ModelSource:
    """The selected files of one model revision, ready to be layered."""

    kind: Literal["huggingface", "directory"]
    root: Path
    files: tuple[SourceFile, ...]
    verified: bool = True
    """False for a directory that could not be checked against the hub's listing of the pinned
    revision: the image and the lock say so, and publishing it needs --allow-unverified-source."""

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def offline_vars_set() -> list[str]:
    """The offline variables (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE) set to a true value."""
    return [v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}]


def offline_requested() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    return bool(offline_vars_set())


def read_token(token_file: Path | None = None) -> str | None:
    """The HF token from ``token_file``, ``$HF_TOKEN_FILE`` or ``$HF_TOKEN`` (None for public repos)."""
    file = token_file or (Path(os.environ["HF_TOKEN_FILE"]) if os.environ.get("HF_TOKEN_FILE") else None)
    token, _ = read_secret("HF token", file, "HF_TOKEN")
    return token


def default_hf_cache() -> Path:
    """The HF hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(
        os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    )
    return home.expanduser() / "hub"


def storage_folder(cache_dir: Path, repo_id: str) -> Path:
    """huggingface_hub's per-repo cache folder: ``models--org--name``."""
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


# --------------------------------------------------------------------------- safety


def check_relpath(relpath: str, where: str) -> str:
    """Refuse names that could escape /models or confuse a tar reader."""
    parts = PurePosixPath(relpath).parts
    if (
        not relpath
        or relpath.startswith("/")
        or "\\" in relpath
        or ".." in parts
        or "." in parts
        or "" in relpath.split("/")
        or any(ord(c) < 32 for c in relpath)
    ):
        raise BadSourceError(
            f"unsafe file name {relpath!r} (path traversal or control characters)",
            where=where,
            fix="the source must only hold plain relative paths; remove or rename that file",
        )
    return relpath


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def scan_directory(
    root: Path,
    spec: ModelcarSpec,
    *,
    allowed_root: Path | None = None,
    expected: Listing | None = None,
) -> list[SourceFile]:
    """Selected files under ``root`` (sorted); symlinks may only point inside ``allowed_root``.

    Every entry that cannot be read (a directory that cannot be listed, a file without read
    permission, a name too long) is an error naming it: nothing is silently left out.
    """
    try:
        return _scan(root, spec, allowed_root, expected)
    except RuntimeError as err:  # Path.resolve() on a symlink loop (Python < 3.13)
        raise BadSourceError(
            f"cannot read the source: {err}", where=str(root), fix="remove the symlink loop from the source"
        ) from None
    except OSError as err:  # a name too long, a loop, an I/O error: name the path, never a traceback
        raise BadSourceError(
            f"cannot read the source: {err.strerror or err}",
            where=_shown(str(err.filename or root)),
            fix=_fix_for(err),
        ) from None


def _shown(path: str, keep: int = 80) -> str:
    """A path as an error shows it: whole, or its two ends when it is too long to read."""
    if len(path) <= 2 * keep:
        return path
    return f"{path[:keep]}...{path[-keep:]} ({len(path.encode('utf-8', 'surrogateescape'))} bytes)"


def _fix_for(err: OSError) -> str:
    if err.errno == errno.ENAMETOOLONG:
        return "use a shorter path (at most PATH_MAX bytes in all, NAME_MAX per name)"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "make every file and directory of the source readable by this user (chmod -R u+rX)"
    return "check the source directory and the disk, then build again"


def _raise(err: OSError) -> None:
    raise err


def _scan(
    root: Path,
    spec: ModelcarSpec,
    allowed_root: Path | None,
    expected: Listing | None,
) -> list[SourceFile]:
    root = root.resolve()
    fence = (allowed_root or root).resolve()
    if not root.is_dir():
        raise BadSourceError("source directory not found", where=str(root), fix="pass an existing directory")
    found: list[SourceFile] = []
    # onerror: a directory that cannot be listed is an error, never silently skipped
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        for d in list(dirnames):
            if rel_dir == "." and d in SKIPPED_DIRS:
                dirnames.remove(d)
                continue
            if (here / d).is_symlink():
                raise BadSourceError(
                    "symlinked directory in the source",
                    where=str(here / d),
                    fix="replace the link by a real directory (or remove it)",
                )
        dirnames.sort()
        for name in sorted(filenames):
            full = here / name
            try:
                relpath = (full.relative_to(root)).as_posix()
                relpath.encode("utf-8")
            except UnicodeEncodeError:
                raise BadSourceError(
                    "file name is not valid UTF-8", where=str(full), fix="rename the file"
                ) from None
            check_relpath(relpath, str(full))
            if not spec.selects(relpath):
                continue
            found.append(_source_file(full, relpath, fence, expected))
    return sorted(found, key=lambda f: f.relpath)


def _source_file(full: Path, relpath: str, fence: Path, expected: Listing | None) -> SourceFile:
    target = full
    if full.is_symlink():
        target = full.resolve()
        if not _inside(target, fence):
            raise BadSourceError(
                f"symlink {relpath} points outside the source ({os.readlink(full)})",
                where=str(full),
                fix="copy the file into the source instead of linking to it",
            )
    try:
        st = target.stat()
    except FileNotFoundError:
        raise BadSourceError(
            f"{relpath} is a dangling symlink", where=str(full), fix="fetch the file again or remove the link"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise BadSourceError(
            f"{relpath} is not a regular file", where=str(full), fix="remove it from the source"
        )
    if not os.access(target, os.R_OK):
        raise BadSourceError(
            f"{relpath} is not readable", where=str(full), fix="make it readable by this user (chmod u+r)"
        )
    want = (expected or {}).get(relpath)
    if want is not None and want.size != st.st_size:
        raise BadSourceError(
            f"{relpath} has {st.st_size} bytes, the hub lists {want.size}",
            where=str(full),
            fix="the file is damaged, truncated or of another revision: fetch that revision again",
        )
    return SourceFile(relpath, target, st.st_size, want.sha256 if want else None)


# --------------------------------------------------------------------------- sources


def directory_source(root: Path, spec: ModelcarSpec, hf_cache: Path | None = None) -> ModelSource:
    """A local directory of model files, checked against the hub's listing of the pinned revision
    when the HF cache holds one (every selected file listed, same size, LFS sha256 while hashing,
    git blob id of the others); without a listing it is *unverified* (``verified=False``)."""
    cache = (hf_cache or default_hf_cache()).expanduser()
    listing = _hub_listing(storage_folder(cache, spec.source.repo), spec.source.revision)
    files = scan_directory(root, spec, expected=listing)
    source = _non_empty(ModelSource("directory", root.resolve(), tuple(files), verified=False), spec)
    if listing is None:
        return source
    _check_against(source, spec, listing)
    return ModelSource("directory", source.root, source.files, verified=True)


def _git_blob_id(path: Path, size: int) -> str:
    h = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)  # git's object id, not a security check
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_against(source: ModelSource, spec: ModelcarSpec, listing: Listing) -> None:
    """Refuse a directory that is not the spec's revision: files missing or extra, other bytes."""
    name = f"{spec.source.repo}@{spec.source.revision[:12]}"
    fix = (
        f"pass a directory holding exactly {name} (or build without --source to use the HF cache)"
        if source.kind == "directory"
        else "the HF cache's snapshot was altered: delete that snapshot and download it again"
    )
    wanted = {p for p in listing if spec.selects(p)}
    have = {f.relpath for f in source.files}
    for what, paths in (("missing", sorted(wanted - have)), ("not in that revision", sorted(have - wanted))):
        if paths:
            raise BadSourceError(
                f"the {source.kind} source is not {name}: "
                f"{len(paths)} file(s) {what}: {', '.join(paths[:3])}",
                where=str(source.root),
                fix=fix,
            )
    for f in source.files:
        blob = listing[f.relpath].blob_id
        if blob is not None and _git_blob_id(f.path, f.size) != blob:
            raise BadSourceError(f"{f.relpath} differs from {name} (git blob id)", where=str(f.path), fix=fix)


def _non_empty(source: ModelSource, spec: ModelcarSpec) -> ModelSource:
    if not source.files:
        raise BadSourceError(
            f"no file of {source.root} matches include {list(spec.include)} / exclude {list(spec.excluded)}",
            where=str(spec.path),
            fix="check the include/exclude patterns, or the source directory",
        )
    return source


def _hub_listing(storage: Path, revision: str) -> Listing | None:
    """The hub's file listing for a commit as huggingface_hub cached it (trees/<commit>.json)."""
    path = storage / "trees" / f"{revision}.json"
    fix = "delete it; the next online download writes it again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise BadSourceError(
            f"the cached hub listing is unreadable ({err})", where=str(path), fix=fix
        ) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise BadSourceError("the cached hub listing has no files mapping", where=str(path), fix=fix)
    listing: Listing = {}
    for relpath, info in files.items():
        check_relpath(str(relpath), f"{path}: files")
        try:
            if not isinstance(info, dict):
                raise TypeError("not a mapping")
            lfs = info.get("lfs_sha256")
            blob = info.get("blob_id")
            size = int(info.get("lfs_size") or info["size"])
            if size < 0 or (lfs is not None and not re.fullmatch(r"[0-9a-f]{64}", str(lfs))):
                raise ValueError("bad size or sha256")
        except (KeyError, TypeError, ValueError) as err:
            raise BadSourceError(
                f"the cached hub listing's entry for {relpath} is malformed ({err})", where=str(path), fix=fix
            ) from None
        listing[str(relpath)] = HubFile(
            size, f"sha256:{lfs}" if lfs else None, str(blob) if blob and not lfs else None
        )
    return listing


def huggingface_source(
    spec: ModelcarSpec,
    *,
    cache_dir: Path | None = None,
    offline: bool | None = None,
    token: str | None = None,
    downloader: Downloader | None = None,
) -> ModelSource:
    """Download (or, offline, find) the spec's files in the HF cache and list them.

    ``downloader`` defaults to ``huggingface_hub.snapshot_download``; tests pass a hub double.
    """
    cache = (cache_dir or default_hf_cache()).expanduser().resolve()
    switches = _offline_switches(offline)
    offline = bool(switches)
    repo_id, revision = spec.source.repo, spec.source.revision
    storage = storage_folder(cache, repo_id)
    _hub_listing(storage, revision)  # a listing cached earlier: refuse unsafe names before any download
    unreachable = None
    if downloader is None:
        from huggingface_hub import get_session, snapshot_download

        downloader = snapshot_download
        session = get_session()
        if session.timeout.read is None:  # huggingface_hub's default: calls without a limit wait forever
            session.timeout = (HUB_CONNECT_TIMEOUT, HUB_READ_TIMEOUT, HUB_READ_TIMEOUT, HUB_CONNECT_TIMEOUT)
        unreachable = None if offline else probe_hub()
    try:
        snapshot = downloader(
            repo_id=repo_id,
            revision=revision,
            cache_dir=str(cache),
            allow_patterns=list(spec.include),
            ignore_patterns=list(spec.excluded),
            token=token if token else False,
            local_files_only=offline or unreachable is not None,  # unreachable: the HF cache only
        )
    except Exception as err:  # huggingface_hub raises many types; map them to one clear error
        raise _hub_error(err, repo_id, revision, cache, switches, token, unreachable) from None
    listing = _hub_listing(storage, revision)
    if listing is not None:
        missing = sorted(p for p in listing if spec.selects(p) and not (Path(snapshot) / p).exists())
        if missing:
            raise SourceError(
                f"{len(missing)} selected file(s) missing from the cached snapshot: {', '.join(missing[:3])}",
                where=str(snapshot),
                fix=f"download them again: {_refill(switches)}, or pass --source DIR",
            )
    files = scan_directory(Path(snapshot), spec, allowed_root=storage, expected=listing)
    source = _non_empty(ModelSource("huggingface", Path(snapshot), tuple(files), verified=False), spec)
    if listing is None:  # a snapshot without the hub's listing: nothing says these are the revision's files
        return source
    _check_against(source, spec, listing)
    return ModelSource("huggingface", source.root, source.files, verified=True)


def hub_endpoint() -> str:
    """The hub's base URL as huggingface_hub reads it: ``$HF_ENDPOINT``, else https://huggingface.co."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return endpoint or "https://huggingface.co"


def hub_host() -> str:
    """The hub this process talks to: ``$HF_ENDPOINT``'s host (never its credentials), or huggingface.co."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if not endpoint:
        return "huggingface.co"
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    path = parts.path.rstrip("/")
    return f"{parts.hostname or endpoint}{port}{path}"


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy the environment names for ``scheme://host`` (HTTPS_PROXY, NO_PROXY...), if any."""
    if urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme) or urllib.request.getproxies().get("all")
    if not proxy:
        return None
    parts = urlsplit(proxy if "//" in proxy else f"//{proxy}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def probe_hub(timeout: float = HUB_CONNECT_TIMEOUT) -> str | None:
    """Why the hub cannot be reached at all, or None when a TCP connection to it opens.

    One connect to the hub (or to the proxy the environment names for it), never retried: a name
    that does not resolve, a refused port, no route or no answer within ``timeout`` will not change
    on a retry a second later. What answers the connection is left to huggingface_hub.
    """
    endpoint = hub_endpoint()
    parts = urlsplit(endpoint if "//" in endpoint else f"https://{endpoint}")
    scheme = parts.scheme or "https"
    try:
        host, port = parts.hostname or "", parts.port or (80 if scheme == "http" else 443)
    except ValueError:
        return f"$HF_ENDPOINT ({hub_host()}) has no valid port"
    proxy = _proxy_for(scheme, host)
    target, via = (proxy, f" (through the proxy {proxy[0]}:{proxy[1]})") if proxy else ((host, port), "")
    try:
        socket.getaddrinfo(target[0], target[1], type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return f"the host name {target[0]} does not resolve (DNS: {err.strerror or err}){via}"
    try:
        with socket.create_connection(target, timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"{target[0]}:{target[1]} refused the connection{via}"
    except TimeoutError:
        return f"no answer from {target[0]}:{target[1]} within {timeout:g} s{via}"
    except OSError as err:
        return f"{target[0]}:{target[1]} cannot be reached ({err.strerror or err}){via}"


def _offline_switches(offline: bool | None) -> list[str]:
    """What makes this run offline, as the user spelled it: ``--offline`` and the variables set
    (huggingface_hub honours those even when ``offline`` is False)."""
    return (["--offline"] if offline else []) + [f"{v}={os.environ[v].strip()}" for v in offline_vars_set()]


def _refill(switches: list[str]) -> str:
    """How to fill the HF cache from the hub: with network access, without what made it offline."""
    undo = [("without " + s) if s == "--offline" else f"with {s.split('=')[0]} unset" for s in switches]
    return f"build once with network access to {hub_host()}" + (f" ({', '.join(undo)})" if undo else "")


def _endpoint_hint() -> str:
    if os.environ.get("HF_ENDPOINT", "").strip():
        return f" (check $HF_ENDPOINT, now {hub_host()}; unset it to use huggingface.co)"
    return " (or set $HF_ENDPOINT to a reachable mirror of the hub)"


def _hub_error(
    err: Exception,
    repo_id: str,
    revision: str,
    cache: Path,
    switches: list[str],
    token: str | None,
    unreachable: str | None = None,
) -> SourceError:
    kind = type(err).__name__
    text = redact(str(err).splitlines()[0] if str(err) else kind, token)
    host = hub_host()
    where = f"{host}/{repo_id}@{revision}"
    absent = f"{repo_id} at {revision} is not (completely) in the HF cache {cache}"
    if unreachable is not None or (
        not switches and kind in {"LocalEntryNotFoundError", "IncompleteSnapshotError"}
    ):  # online, but the hub could not be reached (the probe says why) or did not answer
        cause = unreachable or f"it did not answer ({kind})"
        return SourceError(
            f"the hub at {host} could not be reached: {cause}; and {absent}",
            where=where,
            fix=f"give this machine network access to the hub at {host}{_endpoint_hint()}; or build from a "
            f"local copy of the files with --source DIR; or fill the HF cache where the hub is reachable, "
            f"copy it to {cache} (or point --hf-cache / $HF_HOME at it) and build with --offline",
        )
    if switches or kind == "OfflineModeIsEnabled":
        said = ", ".join(switches) or "huggingface_hub's offline mode"
        return SourceError(
            f"{absent}, and the hub is not used (offline: {said}; {kind})",
            where=where,
            fix=f"fill the HF cache: {_refill(switches)}; or pass --source DIR holding the revision's files",
        )
    if kind == "RevisionNotFoundError":
        return BadSourceError(
            f"revision {revision} does not exist in {repo_id}",
            where=where,
            fix="copy the full commit id from the repo's history on the hub",
        )
    if kind in {"RepositoryNotFoundError", "GatedRepoError"} or "401" in text or "403" in text:
        return BadSourceError(
            f"{repo_id} not found or not accessible ({kind})",
            where=where,
            fix="check the repo id; for gated/private repos accept the terms, set HF_TOKEN or HF_TOKEN_FILE",
        )
    return SourceError(
        f"download failed: {kind}: {text}",
        where=where,
        fix=f"check the network and the hub at {host}; or build with --offline from a filled HF cache, "
        "or with --source DIR",
    )
