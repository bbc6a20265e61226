"""A minimal, reproducible busybox base image built from a static busybox binary (air-gapped bases).

``deliver modelcar busybox-base --busybox /bin/busybox --output DIR`` writes an OCI layout whose
one layer holds /bin/busybox and the applets KServe's modelcar needs (sh, ln, sleep, ls, [, echo)
as symlinks, plus /tmp and /mnt. It prints the index digest to pin in a spec as
``oci-layout:DIR@sha256:...``. Used where docker.io is out of reach (and by the tests).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from delivery.errors import UsageError
from delivery.fsutil import atomic_directory
from delivery.modelcar.image import (
    MT_CONFIG,
    MT_INDEX,
    MT_MANIFEST,
    Descriptor,
    canonical_json,
    platform_dict,
)
from delivery.modelcar.layout import LayoutWriter
from delivery.modelcar.tarlayer import MEDIA_TYPE_TAR

APPLETS = (
    "sh",
    "ln",
    "sleep",
    "ls",
    "[",
    "[[",
    "test",
    "echo",
    "cat",
    "sha256sum",
    "id",
    "readlink",
    "mkdir",
)


@dataclass(frozen=True)
class BaseLayout:
    path: Path
    index_digest: str
    manifest_digest: str

    @property
    def spec_ref(self) -> str:
        return f"oci-layout:{self.path}@{self.index_digest}"


def _entry(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def busybox_layer(binary: Path) -> bytes:
    """The base layer (small: a static busybox is about 2 MB)."""
    try:
        data = binary.read_bytes()
    except OSError as err:
        raise UsageError(
            f"cannot read busybox: {err.strerror}", where=str(binary), fix="apt-get install busybox-static"
        ) from None
    if not data.startswith(b"\x7fELF"):
        raise UsageError("not an ELF binary", where=str(binary), fix="pass a static busybox binary")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _entry(tar, "bin", tarfile.DIRTYPE, 0o755)
        _entry(tar, "bin/busybox", tarfile.REGTYPE, 0o755, data)
        for applet in sorted(APPLETS):
            _entry(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        _entry(tar, "mnt", tarfile.DIRTYPE, 0o755)
        _entry(tar, "tmp", tarfile.DIRTYPE, 0o1777)
    return buf.getvalue()


def build_busybox_layout(binary: Path, output: Path, platform: str = "linux/amd64") -> BaseLayout:
    """Write the base as an OCI layout at ``output`` (atomic); index.json names it ``latest``."""
    layer = busybox_layer(binary)
    with atomic_directory(output) as tmp:
        writer = LayoutWriter(tmp)
        layer_digest = writer.add_bytes(layer)
        config = canonical_json(
            {
                **platform_dict(platform),
                "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                "history": [{"created_by": "deliver modelcar busybox-base"}],
            }
        )
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": Descriptor(MT_CONFIG, writer.add_bytes(config), len(config)).as_dict(),
                "layers": [Descriptor(MEDIA_TYPE_TAR, layer_digest, len(layer)).as_dict()],
            }
        )
        manifest_digest = writer.add_bytes(manifest)
        index = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    Descriptor(
                        MT_MANIFEST, manifest_digest, len(manifest), platform=platform_dict(platform)
                    ).as_dict()
                ],
            }
        )
        index_digest = writer.add_bytes(index)
        writer.finish(
            Descriptor(MT_MANIFEST, manifest_digest, len(manifest), platform=platform_dict(platform)),
            "latest",
        )
    return BaseLayout(output, index_digest, manifest_digest)
