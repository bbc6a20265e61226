"""A small cache so a no-op rebuild reads no weights.

Two maps, kept in one JSON file under the cache directory:
- a file's identity (real path, device, inode, size, mtime_ns, ctime_ns: like git's index) ->
  its sha256. The identity is the ``fstat`` of the open file taken before its first byte was read
  and unchanged after its last (``Hashed.seen``), never a stat taken later; files changed just
  before the read ("racy") are not remembered. Any later write changes the ctime, so a stale entry
  is never hit;
- a layer's content key (tar format version + each file's path, size, sha256) -> the layer digest.

A missing, corrupt or unwritable cache only costs time: the weights are hashed again.
``verify`` never uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

from delivery.core.fsutil import atomic_write_text
from delivery.modelcar.tarlayer import TAR_SPEC_VERSION, Hashed, TarLayer

FORMAT = 2  # 2: file keys without realpath (see file_identity)


def default_cache_dir() -> Path:
    """$DELIVER_CACHE_DIR, else $XDG_CACHE_HOME/deliver, else ~/.cache/deliver."""
    if os.environ.get("DELIVER_CACHE_DIR"):
        return Path(os.environ["DELIVER_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "deliver"


def file_identity(path: Path, st: os.stat_result | None = None) -> str:
    """The cache key of a file: its path and its stat (``st``, else a fresh ``os.stat``). The
    sources give real paths already (symlinks resolved, symlinked directories refused), and
    device + inode name the file whatever the path."""
    st = st if st is not None else os.stat(path)
    return f"{path}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def layer_key(layer: TarLayer, sums: dict[str, str]) -> str:
    """Content key of a layer: what its bytes are a function of."""
    items = [[f.arcname, f.size, sums[f.arcname]] for f in layer.files]
    text = json.dumps([TAR_SPEC_VERSION, items], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class DigestCache:
    """Thread-safe digest cache; ``path=None`` disables it (every lookup misses)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._files: dict[str, str] = {}
        self._layers: dict[str, str] = {}
        self._dirty = False
        if path is not None:
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format") == FORMAT:
                    self._files = {str(k): str(v) for k, v in data["files"].items()}
                    self._layers = {str(k): str(v) for k, v in data["layers"].items()}

    @classmethod
    def at(cls, cache_dir: Path | None) -> DigestCache:
        return cls(cache_dir / "modelcar-digests.json" if cache_dir is not None else None)

    def file_sha256(self, path: Path) -> str | None:
        if self.path is None:
            return None
        try:
            key = file_identity(path)
        except OSError:
            return None
        with self._lock:
            return self._files.get(key)

    def remember_file(self, path: Path, sha256: str, seen: os.stat_result) -> None:
        """Map the file as it was read (``seen``: its stat from before the read) to ``sha256``."""
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            key = file_identity(path, seen)
            with self._lock:
                if self._files.get(key) != sha256:
                    self._files[key] = sha256
                    self._dirty = True

    def layer_digest(self, layer: TarLayer) -> tuple[str, dict[str, str]] | None:
        """(digest, file sums) when every file and the layer are known, else None."""
        if self.path is None:
            return None
        sums: dict[str, str] = {}
        for f in layer.files:
            known = self.file_sha256(f.path)
            if known is None:
                return None
            sums[f.arcname] = known
        with self._lock:
            digest = self._layers.get(layer_key(layer, sums))
        return (digest, sums) if digest else None

    def remember_layer(self, layer: TarLayer, hashed: Hashed) -> None:
        """Remember a layer just read: its stable files' sha256s and its digest.

        The layer entry maps content (sha256s) to a digest, so it is true whatever happens to the
        files later; a file entry is only made from the stat the file had while it was read.
        """
        if self.path is None:
            return
        for f in layer.files:
            seen = hashed.seen.get(f.arcname)
            if seen is not None:
                self.remember_file(f.path, hashed.sums[f.arcname], seen)
        key = layer_key(layer, hashed.sums)
        with self._lock:
            if self._layers.get(key) != hashed.digest:
                self._layers[key] = hashed.digest
                self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (errors ignored: the cache is only an accelerator)."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            text = json.dumps(
                {"format": FORMAT, "files": self._files, "layers": self._layers}, sort_keys=True, indent=0
            )
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, text)
            self._dirty = False
