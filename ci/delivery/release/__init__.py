"""Releases and ledgers: what each environment runs by exact digest, and how it came to run it.

- ``model``: clusters/<env>/release.yaml (``Release``, ``Artifact``), read and written atomically;
- ``ledger``: clusters/<env>/ledger.jsonl, the append-only record (``Entry``, ``read_ledger``, ``append``);
- ``entry``: recording a new artifact in an entry environment (what ``deliver modelcar publish`` does).

A library: its commands live with the steps that change releases (modelcar, promotion).
"""

from delivery.release.ledger import Change, Entry, append, ledger_path, new_id, read_ledger
from delivery.release.model import (
    Artifact,
    Release,
    Source,
    protected_tag,
    read_release,
    release_path,
    render,
    write_release,
)

__all__ = [
    "Artifact",
    "Change",
    "Entry",
    "Release",
    "Source",
    "append",
    "ledger_path",
    "new_id",
    "protected_tag",
    "read_ledger",
    "read_release",
    "release_path",
    "render",
    "write_release",
]
