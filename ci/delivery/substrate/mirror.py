"""Providers from a filesystem mirror instead of a registry (``--provider-mirror DIR``).

A real user's init downloads providers from the registry, as usual. Where no registry can be
reached (this project's CI), a directory laid out as ``HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/`` (the
"unpacked" filesystem-mirror layout, for ``registry.opentofu.org`` and/or ``registry.terraform.io``)
serves them. ``bash .ci/install`` makes one from ../shared/tofu-providers in ``default_dir()``.

- The mirror reaches the binary only through a CLI config file the runner writes (``cli_config``):
  always an existing file, with nothing from any registry (``direct { exclude }``), so a provider
  the mirror lacks fails ``init`` at once instead of going to the network.
- A mirror's provider may be a local build (this one is): its hash is not the official release's,
  so a ``.terraform.lock.hcl`` written with it must never reach the tree. Runs with a mirror work in
  scratch copies, and ``refuse_mirror_lock`` stops any lock carrying a mirror package's hash from
  being copied (or left) in a root.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import Location, UsageError, ValidationFailed
from delivery.core.fsutil import atomic_write_text
from delivery.substrate.tool import cache_home

MIRROR_ENV_VAR = "DELIVER_PROVIDER_MIRROR"
HOSTS = ("registry.opentofu.org", "registry.terraform.io")
_LOCK_HASH = re.compile(r'"((?:h1|zh):[A-Za-z0-9+/=]+)"')
_LAYOUT_FIX = (
    "pass a directory laid out as HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION "
    "(HOST registry.opentofu.org and/or registry.terraform.io); `bash .ci/install` makes one in "
    "~/.cache/llm-platform/tofu-mirror from ../shared/tofu-providers"
)


def default_dir() -> Path:
    """Where ``.ci/install`` unpacks ../shared/tofu-providers (never used unless passed explicitly)."""
    return cache_home() / "tofu-mirror"


@dataclass(frozen=True)
class Package:
    """One provider package in a mirror: ``HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/``."""

    host: str
    namespace: str
    type: str
    version: str
    platform: str
    path: Path

    @property
    def source(self) -> str:
        return f"{self.host}/{self.namespace}/{self.type}"

    def h1(self) -> str:
        """The package's ``h1:`` hash, as init records it in a lock (Go's dirhash.Hash1)."""
        files = sorted(p for p in self.path.rglob("*") if p.is_file())
        key = tuple((f.relative_to(self.path).as_posix(), *_stamp(f)) for f in files)
        if key not in _H1_CACHE:  # a provider is 100+ MB; the hosts' copies are usually hard links
            summary = hashlib.sha256()
            for file in files:
                with file.open("rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
                summary.update(f"{digest}  {file.relative_to(self.path).as_posix()}\n".encode())
            _H1_CACHE[key] = "h1:" + base64.b64encode(summary.digest()).decode()
        return _H1_CACHE[key]


_H1_CACHE: dict[tuple[tuple[str, int, int, int, int], ...], str] = {}


def _stamp(file: Path) -> tuple[int, int, int, int]:
    st = file.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Mirror:
    """A checked provider mirror directory and the packages it holds."""

    path: Path
    packages: tuple[Package, ...]

    def sources(self) -> list[str]:
        return sorted({p.source for p in self.packages})

    def h1_hashes(self) -> dict[str, Package]:
        return {p.h1(): p for p in self.packages}


def load(path: Path, where: str = "--provider-mirror") -> Mirror:
    """Check ``path`` is a mirror holding at least one provider package (else bad input, exit 2)."""
    path = path.expanduser()
    if not path.is_dir():
        raise UsageError(
            f"provider mirror {str(path)!r} is not a directory",
            where=f"{where} / ${MIRROR_ENV_VAR}",
            fix=_LAYOUT_FIX,
        )
    packages = []
    for host in HOSTS:
        for pkg in sorted((path / host).glob("*/*/*/*_*")):
            if pkg.is_dir() and any(pkg.glob("terraform-provider-*")):
                namespace, type_, version, platform = pkg.relative_to(path / host).parts
                packages.append(Package(host, namespace, type_, version, platform, pkg.resolve()))
    if not packages:
        raise UsageError(
            f"provider mirror {str(path)!r} holds no provider package",
            where=f"{where} / ${MIRROR_ENV_VAR}",
            fix=_LAYOUT_FIX,
        )
    return Mirror(path.resolve(), tuple(packages))


def cli_config_text(mirror: Mirror) -> str:
    """A CLI config: the mirror's providers from the mirror, nothing from any registry."""
    include = json.dumps(mirror.sources())
    exclude = json.dumps([f"{host}/*/*" for host in HOSTS])
    return (
        "# Written by deliver (--provider-mirror): providers come from this mirror only.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror.path))}\n"
        f"    include = {include}\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = {exclude}\n"
        "  }\n"
        "}\n"
    )


def cli_config(mirror: Mirror) -> Path:
    """Write (atomically) and return the runner's own CLI config file for ``mirror``."""
    text = cli_config_text(mirror)
    name = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_home() / "tofu-cli" / f"mirror-{name}.tfrc"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return path


def from_option(value: Path | None) -> Mirror | None:
    """The mirror named by ``--provider-mirror`` / ``$DELIVER_PROVIDER_MIRROR`` (click passes both)."""
    return load(value) if value is not None else None


def known(mirror: Mirror | None) -> list[Mirror]:
    """The mirrors a lock is checked against: the one in use, and the one .ci/install made."""
    found = [mirror] if mirror else []
    candidate = default_dir()
    if candidate.is_dir() and all(m.path != candidate.resolve() for m in found):
        with contextlib.suppress(UsageError):
            found.append(load(candidate))
    return found


def refuse_mirror_lock(lock_text: str, where: Location | str, mirrors: list[Mirror], action: str) -> None:
    """Refuse a lock that pins a provider by a mirror package's hash (a local build nobody else has)."""
    hashes = set(_LOCK_HASH.findall(lock_text))
    for mirror in mirrors:
        for h1, pkg in mirror.h1_hashes().items():
            if h1 in hashes:
                raise ValidationFailed(
                    f"this .terraform.lock.hcl was written with the provider mirror's own build of "
                    f"{pkg.namespace}/{pkg.type} {pkg.version} ({h1}, in {mirror.path}); {action}",
                    where=where,
                    fix="never commit such a lock: plan offline in a scratch copy (deliver plan --env ENV "
                    "--offline --provider-mirror DIR), and let a real init take the providers (and their "
                    "official hashes) from the registry",
                )
