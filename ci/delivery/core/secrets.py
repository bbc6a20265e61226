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


REGISTRY_PASSWORD_VAR = "DELIVER_REGISTRY_PASSWORD"


def registry_password(
    username: str | None, password_file: Path | None, command: str
) -> tuple[str | None, str]:
    """``(password, origin)`` from ``--password-file`` or ``$DELIVER_REGISTRY_PASSWORD``.

    A password and ``--username`` go together (one without the other is a UsageError); with
    neither, ``(None, "")``: the registry client then uses docker config, Google credentials or
    anonymous. ``origin`` says where the password came from (the file, or the variable's name).
    """
    password, origin = read_secret("registry password", password_file, REGISTRY_PASSWORD_VAR)
    if password and not username:
        raise UsageError(
            "a registry password was given without --username",
            where=origin,
            fix="add --username (Artifact Registry: oauth2accesstoken), or drop the password to use "
            "docker config / Google credentials",
        )
    if username and not password:
        raise UsageError(
            f"--username {username} needs a password",
            where=command,
            fix=f"pass --password-file FILE or set ${REGISTRY_PASSWORD_VAR}",
        )
    return password, origin
