"""A minimal, reproducible busybox base image built from a static busybox binary (air-gapped bases).

``deliver modelcar busybox-base --busybox /bin/busybox --output DIR`` writes an OCI layout whose
one layer holds /bin/busybox and the applets KServe's modelcar needs (sh, ln, sleep, ls, [, echo)
as symlinks, plus /tmp and /mnt. Repeat ``--platform P --busybox PATH`` for a multi-arch index
(each binary's ELF header must match its platform). It prints the index digest to pin in a spec as
``oci-layout:DIR@sha256:...``. Used where docker.io is out of reach (and by the tests).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import UsageError
from delivery.core.fsutil import atomic_directory
from delivery.oci.layout import LayoutWriter
from delivery.oci.spec import (
    EPOCH,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Descriptor,
    canonical_json,
    index_json,
    manifest_json,
    platform_dict,
)

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


# ELF e_machine values of the platforms a spec may name.
ELF_MACHINES = {"linux/amd64": 62, "linux/arm64": 183}
_ELF_NAMES = {62: "x86-64 (linux/amd64)", 183: "AArch64 (linux/arm64)", 3: "i386", 40: "ARM (32-bit)"}


@dataclass(frozen=True)
class BaseLayout:
    path: Path
    index_digest: str
    manifests: dict[str, str]
    """Platform -> its manifest digest."""

    @property
    def manifest_digest(self) -> str:
        """The manifest of the first platform (the only one for a single-platform base)."""
        return next(iter(self.manifests.values()))

    @property
    def spec_ref(self) -> str:
        return f"oci-layout:{self.path}@{self.index_digest}"

    def spec_ref_in(self, repo: Path | None) -> str:
        """The ``base:`` a spec should carry: repo-relative when the layout is inside ``repo`` (a spec
        and its lock then mean the same on every machine), else this machine's absolute path."""
        here, root = self.path.resolve(), repo.resolve() if repo is not None else None
        if root is not None and here.is_relative_to(root):
            return f"oci-layout:{here.relative_to(root).as_posix()}@{self.index_digest}"
        return self.spec_ref


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


def _check_elf(data: bytes, binary: Path, platform: str) -> None:
    """A static busybox ELF executable for ``platform`` (an image must not lie about its arch)."""
    if not data.startswith(b"\x7fELF") or len(data) < 20:
        raise UsageError("not an ELF binary", where=str(binary), fix="pass a static busybox binary")
    machine = int.from_bytes(data[18:20], "big" if data[5] == 2 else "little")
    if machine != ELF_MACHINES[platform]:
        found = _ELF_NAMES.get(machine, f"ELF machine {machine}")
        raise UsageError(
            f"busybox is built for {found}, not {platform}",
            where=str(binary),
            fix=f"pass a static busybox built for {platform} (Debian: busybox-static of that architecture)",
        )


def busybox_layer(binary: Path, platform: str = "linux/amd64") -> bytes:
    """The base layer (small: a static busybox is about 2 MB)."""
    try:
        data = binary.read_bytes()
    except OSError as err:
        raise UsageError(
            f"cannot read busybox: {err.strerror}", where=str(binary), fix="apt-get install busybox-static"
        ) from None
    _check_elf(data, binary, platform)
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
    """A single-platform base (see ``build_busybox_index``)."""
    return build_busybox_index({platform: binary}, output)


def build_busybox_index(binaries: Mapping[str, Path], output: Path) -> BaseLayout:
    """Write the base as an OCI layout at ``output`` (atomic): one manifest per platform, one index.

    ``binaries`` maps each platform to a static busybox built for it (checked from its ELF header).
    index.json names the image ``latest``: the manifest itself for one platform, the index for several.
    """
    if not binaries:
        raise UsageError("no platform given", where="busybox-base", fix="pass --platform (and --busybox)")
    for platform in binaries:
        if platform not in ELF_MACHINES:
            raise UsageError(
                f"platform {platform!r} is not one of {', '.join(ELF_MACHINES)}", where="busybox-base"
            )
    layers = {platform: busybox_layer(binary, platform) for platform, binary in binaries.items()}
    with atomic_directory(output) as tmp:
        writer = LayoutWriter(tmp)
        entries: list[Descriptor] = []
        manifests: dict[str, str] = {}
        for platform, layer in layers.items():
            layer_digest = writer.add_bytes(layer)
            config = canonical_json(
                {
                    **platform_dict(platform),
                    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                    "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                    "history": [{"created": EPOCH, "created_by": "deliver modelcar busybox-base"}],
                }
            )
            manifest = manifest_json(
                Descriptor(OCI_CONFIG, writer.add_bytes(config), len(config)),
                [Descriptor(OCI_LAYER_TAR, layer_digest, len(layer))],
            )
            manifests[platform] = writer.add_bytes(manifest)
            entries.append(
                Descriptor(OCI_MANIFEST, manifests[platform], len(manifest), platform=platform_dict(platform))
            )
        index = index_json(entries)
        index_digest = writer.add_bytes(index)
        top = entries[0] if len(entries) == 1 else Descriptor(OCI_INDEX, index_digest, len(index))
        writer.finish(top, "latest")
    return BaseLayout(output, index_digest, manifests)
