"""Secrets come from a file or an environment variable; errors name the file, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.core.errors import UsageError
from delivery.core.secrets import read_secret


def test_file_wins_over_environment_and_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_FOR_TEST", "from-env")
    secret = tmp_path / "secret"
    secret.write_text("  from-file\n")
    assert read_secret("token", secret, "SECRET_FOR_TEST") == ("from-file", str(secret))
    assert read_secret("token", None, "SECRET_FOR_TEST") == ("from-env", "$SECRET_FOR_TEST")
    monkeypatch.delenv("SECRET_FOR_TEST")
    assert read_secret("token", None, "SECRET_FOR_TEST") == (None, "")


def test_empty_or_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(UsageError, match="the registry password file is empty") as exc:
        read_secret("registry password", empty, "X_PASSWORD")
    assert exc.value.problems[0].where.file == str(empty)
    with pytest.raises(UsageError, match="cannot read the HF token file") as exc:
        read_secret("HF token", tmp_path / "missing", "HF_TOKEN")
    assert "HF_TOKEN" in exc.value.problems[0].fix
