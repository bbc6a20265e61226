"""Hostile input (issue 11): the cases that must be refused cleanly, gathered in one module.

Expansion bombs ("billion laughs" anchors and aliases), oversized files, files that are not UTF-8
(UTF-16, Latin-1, NUL bytes) and prose where a manifest is expected. Each must end as one ``error:``
line naming the file (and line), a ``fix:`` line and exit 2: no traceback, no memory blow-up, and
quickly (the time bounds below are generous sanity limits, not performance assertions).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Result
from delivery.core import yamlio
from delivery.core.errors import EXIT_BAD_INPUT, EXIT_FAILED, ConfigError

REPO = Path(__file__).resolve().parent.parent
CONFIG = "environments/dev/config.yaml"
PINS = "clusters/pins.yaml"
LAYER = "clusters/dev/layers/platform/keda.yaml"
SANE_SECONDS = 5.0
# ``deliver validate`` reports a manifest file it cannot load as a [yaml] finding (exit 1) and goes on
FINDING = {"code": EXIT_FAILED}


@pytest.fixture(autouse=True)
def _hermetic_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_KUBE_SCHEMAS", str(REPO.parent / "shared" / "kube-schemas"))
    monkeypatch.setenv("DELIVER_SCHEMA_CACHE", str(REPO / ".cache" / "schemas"))


def laughs(levels: int = 9, width: int = 9, key: str = "lol") -> str:
    """A billion-laughs document: each level lists the previous one ``width`` times (width**levels)."""
    lines = [f"{key}0: &{key}0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{key}{i}: &{key}{i} [" + ", ".join([f"*{key}{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def run(deliver, repo: Path, *args: str) -> tuple[Result, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = deliver(*args, repo=repo)
    return result, time.monotonic() - start


def assert_refused(
    result: Result, elapsed: float, where: str, *words: str, code: int = EXIT_BAD_INPUT
) -> None:
    """Exit ``code``, an ``error:`` line, ``<where>: …`` (as ``error: <where>`` or on its own line, in
    ``config check``'s per-file list or ``validate``'s findings) with every word, a ``fix:`` line, no
    traceback, no absolute path, in sane time."""
    assert result.code == code, result
    assert "Traceback" not in result.err + result.out, result.err
    lines = result.err.splitlines()
    assert any(line.startswith("error:") for line in lines), result.err
    assert any(line.removeprefix("error: ").startswith(f"{where}:") for line in lines), result.err
    for word in words:
        assert word in result.err, result.err
    assert "fix:" in result.err, result.err
    assert str(REPO) not in result.err and "/tmp/" not in result.err, "absolute path shown"
    assert elapsed < SANE_SECONDS, f"took {elapsed:.1f}s"


# --- expansion bombs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "args"),
    [
        (CONFIG, ("config", "check")),
        (CONFIG, ("layers", "render", "--env", "dev")),
        (PINS, ("layers", "render", "--env", "dev")),
    ],
)
def test_alias_bomb_in_an_owned_file_is_refused(
    deliver, repo_copy: Path, rel: str, args: tuple[str, ...]
) -> None:
    path = repo_copy / rel
    body = path.read_text(encoding="utf-8")
    first_alias_line = len(body.splitlines()) + 2
    path.write_text(body + laughs(key="zz"), encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, *args)
    assert_refused(result, elapsed, f"{rel}:{first_alias_line}", "alias *zz0", "write the value out")


def test_even_a_small_alias_is_refused_in_a_config(deliver, repo_copy: Path) -> None:
    path = repo_copy / CONFIG
    body = path.read_text(encoding="utf-8")
    n = len(body.splitlines())
    path.write_text(body + "extra: &x {a: 1}\nagain: *x\n", encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(result, elapsed, f"{CONFIG}:{n + 2}", "alias *x")


def test_alias_bomb_in_a_manifest_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / LAYER
    body = path.read_text(encoding="utf-8")
    n = len(body.splitlines())
    path.write_text(body + "---\n" + laughs(), encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "validate", "--env", "dev")
    # the line of the collection whose aliases cross the limit (level 7 of the laughs: 9**7 nodes)
    assert_refused(result, elapsed, f"{LAYER}:{n + 1 + 7}", "expand to over", "billion laughs", **FINDING)


def test_recursive_alias_in_a_manifest_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / LAYER
    body = path.read_text(encoding="utf-8")
    n = len(body.splitlines())
    path.write_text(body + "---\nloop: &loop [*loop]\n", encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "validate", "--env", "dev")
    assert_refused(result, elapsed, f"{LAYER}:{n + 2}", "recursive", **FINDING)


def test_a_few_aliases_in_a_manifest_still_load() -> None:
    text = "a: &x {k: v}\nb: *x\nc: [*x, *x]\n"
    assert yamlio.load_all_data(text, "m.yaml") == [{"a": {"k": "v"}, "b": {"k": "v"}, "c": [{"k": "v"}] * 2}]


def test_billion_laughs_data_is_refused_by_the_loader() -> None:
    with pytest.raises(ConfigError) as err:
        yamlio.load_all_data(laughs(levels=12, width=10), "m.yaml")
    assert err.value.problems[0].where.file == "m.yaml"
    assert err.value.problems[0].where.line is not None


# --- oversized files -------------------------------------------------------------------------------


@pytest.mark.parametrize("megabytes", [10, 100])
def test_huge_config_is_refused_from_its_size(deliver, repo_copy: Path, megabytes: int) -> None:
    path = repo_copy / CONFIG
    with path.open("ab") as f:
        f.truncate(megabytes * 1024 * 1024)  # sparse: a huge file without writing it
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(result, elapsed, CONFIG, "over the 1 MiB limit", str(megabytes * 1024 * 1024))
    assert elapsed < 1.0, f"a {megabytes} MB config took {elapsed:.2f}s to refuse"


def test_config_just_over_the_limit_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / PINS
    body = path.read_text(encoding="utf-8")
    path.write_text(body + "#" * (yamlio.MAX_FILE_BYTES + 1) + "\n", encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "layers", "render", "--env", "dev")
    assert_refused(result, elapsed, PINS, "over the 1 MiB limit")


def test_huge_manifest_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / LAYER
    body = path.read_text(encoding="utf-8")
    path.write_text(body + "# padding\n" * (yamlio.MAX_MANIFEST_BYTES // 10 + 1), encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "validate", "--env", "dev")
    assert_refused(result, elapsed, LAYER, "16 MiB limit", **FINDING)


def test_read_text_refuses_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(yamlio.MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match="over the 1 MiB limit") as err:
        yamlio.read_text(big, "shown/big.yaml")
    assert err.value.problems[0].where.file == "shown/big.yaml"


# --- not UTF-8 -------------------------------------------------------------------------------------


def test_utf16_config_is_refused_with_a_fix(deliver, repo_copy: Path) -> None:
    path = repo_copy / CONFIG
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(result, elapsed, f"{CONFIG}:1", "UTF-16", "save the file as UTF-8")


def test_utf16_without_bom_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / CONFIG
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16-le"))
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(result, elapsed, f"{CONFIG}:1", "UTF-16", "save the file as UTF-8")


def test_latin1_config_names_the_line_of_the_bad_byte(deliver, repo_copy: Path) -> None:
    path = repo_copy / CONFIG
    body = path.read_text(encoding="utf-8")
    n = len(body.splitlines())
    path.write_bytes(body.encode("utf-8") + "# café\n".encode("latin-1"))
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(result, elapsed, f"{CONFIG}:{n + 1}", "not UTF-8", "save the file as UTF-8")


def test_non_utf8_pins_is_refused(deliver, repo_copy: Path) -> None:
    path = repo_copy / PINS
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    result, elapsed = run(deliver, repo_copy, "layers", "render", "--env", "dev")
    assert_refused(result, elapsed, f"{PINS}:1", "save the file as UTF-8")


# --- prose where a document is expected ------------------------------------------------------------


def test_prose_config_is_refused_clearly(deliver, repo_copy: Path) -> None:
    (repo_copy / CONFIG).write_text("This environment is configured elsewhere.\n", encoding="utf-8")
    result, elapsed = run(deliver, repo_copy, "config", "check")
    assert_refused(
        result, elapsed, CONFIG, "expected a mapping at the top level (got a string)", "key: value"
    )


def test_prose_manifest_is_refused_by_the_loader_on_request() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\n---\n# notes\nThis file holds the platform's notes.\n"
    assert len(yamlio.load_all_data(text, "m.yaml")) == 2  # the default keeps every document
    with pytest.raises(ConfigError, match="not a Kubernetes object") as err:
        yamlio.load_all_data(text, "m.yaml", mappings_only=True)
    assert str(err.value.problems[0].where) == "m.yaml:5"
    assert "comment" in err.value.problems[0].fix


# --------------------------------------------------------------------------- paths that leave the repo


def _outside(tmp_path: Path, name: str, text: str) -> Path:
    target = tmp_path / "elsewhere" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


@pytest.mark.parametrize(
    ("rel", "argv"),
    [
        ("environments/dev/config.yaml", ["config", "check"]),
        ("modelcars/qwen2.5-0.5b-instruct.yaml", ["layers", "render", "--env", "dev"]),
        ("clusters/pins.yaml", ["layers", "render", "--env", "dev"]),
        ("clusters/dev/release.yaml", ["layers", "render", "--env", "dev"]),
        ("clusters/dev/ledger.jsonl", ["history", "--env", "dev"]),
    ],
    ids=["env-config", "modelcar-spec", "pins", "release", "ledger"],
)
def test_a_repo_file_that_is_a_symlink_out_of_the_repo_is_refused(
    deliver: Any, repo_copy: Path, tmp_path: Path, rel: str, argv: list[str]
) -> None:
    path = repo_copy / rel
    outside = _outside(tmp_path, path.name, path.read_text() if path.exists() else "")
    path.unlink(missing_ok=True)
    path.symlink_to(outside)
    res = deliver(*argv, repo=repo_copy)
    assert res.code == 2, res.err
    assert f"error: {rel}: {rel} resolves to {outside.resolve()}, outside the repo" in res.err
    assert "fix: replace the symlink with the file itself" in res.err and "Traceback" not in res.err


def test_a_symlink_inside_the_repo_is_followed(deliver: Any, repo_copy: Path) -> None:
    config = repo_copy / "environments/dev/config.yaml"
    real = repo_copy / "environments/dev/real-config.yaml"
    config.rename(real)
    config.symlink_to(real.name)
    assert deliver("config", "check", "--env", "dev", repo=repo_copy).code == 0


def test_a_symlinked_manifest_or_layers_directory_is_refused_and_nothing_is_left(
    deliver: Any, repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVER_KUBE_SCHEMAS", str(REPO.parent / "shared" / "kube-schemas"))
    monkeypatch.setenv("DELIVER_SCHEMA_CACHE", str(REPO / ".cache" / "schemas"))
    keda = repo_copy / "clusters/dev/layers/platform/keda.yaml"
    outside = _outside(tmp_path, "keda.yaml", keda.read_text())
    keda.unlink()
    keda.symlink_to(outside)
    res = deliver("validate", "--env", "dev", repo=repo_copy)
    assert res.code == 2 and "outside the repo" in res.err and "Traceback" not in res.err
    keda.unlink()
    layers = repo_copy / "clusters/dev/layers"
    moved = tmp_path / "elsewhere" / "layers"
    layers.rename(moved)
    layers.symlink_to(moved)
    res = deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 2 and "clusters/dev/layers is a symlink" in res.err
    assert sorted(p.name for p in (repo_copy / "clusters/dev").iterdir() if p.name.startswith(".")) == []
