"""Secrets (HF token, registry password) from a file or an environment variable, never logged.

A secret file holds only the value (surrounding whitespace is dropped); an unreadable or empty file
is one clear error that names the file, never its content.
"""

from __future__ import annotations

import os
from pathlib import Path

from delivery.core.errors import UsageError


def read_secret(what: str, file: Path | None, env_var: str) -> tuple[str | None, str]:
    """``(value, origin)`` of a secret: from ``file`` if given, else ``$env_var``; ``(None, "")`` if neither.

    ``origin`` names where it came from (the file path or ``$VAR``), for error messages.
    """
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise UsageError(
                f"cannot read the {what} file: {err.strerror}",
                where=str(file),
                fix=f"pass a readable file holding only the {what} (or set {env_var})",
            ) from None
        if not value:
            raise UsageError(f"the {what} file is empty", where=str(file), fix=f"write the {what} into it")
        return value, str(file)
    if os.environ.get(env_var):
        return os.environ[env_var], f"${env_var}"
    return None, ""
