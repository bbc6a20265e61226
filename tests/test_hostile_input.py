"""Hostile input (issue 11): the cases that must be refused cleanly, gathered in one module.

Expansion bombs ("billion laughs" anchors and aliases), oversized files, files that are not UTF-8
(UTF-16, Latin-1, NUL bytes) and prose where a manifest is expected. Each must end as one ``error:``
line naming the file (and line), a ``fix:`` line and exit 2: no traceback, no memory blow-up, and
quickly (the time bounds below are generous sanity limits, not performance assertions).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Result, free_port, require_tool
from delivery.core import yamlio
from delivery.core.errors import EXIT_BAD_INPUT, EXIT_FAILED, ConfigError
from delivery.modelcar import tarlayer
from delivery.modelcar.busybox import BaseLayout
from delivery.modelcar.tarlayer import LayerFile
from test_modelcar_helpers import point_env_at, sha256_file, small_model, write_spec

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


# --- modelcar sources: no entry silently dropped, exit 2 for a source that cannot be used ---------

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base
THRESHOLD = 1 << 20


def _tiny(repo: Path, busybox_base: BaseLayout, tmp_path: Path) -> Path:
    write_spec(repo, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD)
    return small_model(tmp_path / "model")


def _nothing_written(repo: Path) -> None:
    out = repo / "out" / "modelcars"
    assert not out.exists() or not list(out.iterdir()), "a layout (or a temp directory) was left"
    assert not (repo / "modelcars" / "tiny.lock.yaml").exists(), "a lock was written"


def without_dac(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``deliver`` in a child that permissions apply to: as root, without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (util-linux ``setpriv``), so a mode-000 directory really cannot be read."""
    argv = [sys.executable, "-m", "delivery", f"--repo={repo}", *args]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        argv = [require_tool("setpriv"), f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("case", "mode", "words"),
    [
        ("sub", 0o000, ("cannot read the source: Permission denied", "chmod -R u+rX")),
        ("sub", 0o444, ("cannot read the source: Permission denied", "chmod -R u+rX")),  # listable, no x
        ("sub", 0o111, ("cannot read the source: Permission denied", "chmod -R u+rX")),  # x, not listable
        ("config.json", 0o000, ("config.json is not readable", "chmod u+r")),
        ("sub/extra.txt", 0o200, ("sub/extra.txt is not readable", "chmod u+r")),
    ],
    ids=["dir-000", "dir-444", "dir-111", "file-000", "nested-file-200"],
)
def test_an_unreadable_source_entry_is_an_error_naming_it(
    repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, case: str, mode: int, words: tuple[str, ...]
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    target = src / case
    target.chmod(mode)
    try:
        res = without_dac(repo_copy, "modelcar", "build", "tiny", "--source", str(src), "--no-cache")
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    assert res.returncode == EXIT_BAD_INPUT, res.stderr
    assert str(target) in res.stderr and "Traceback" not in res.stderr
    for word in words:
        assert word in res.stderr, res.stderr
    _nothing_written(repo_copy)
    # the same source, readable again, builds: the error was about that entry only
    ok = without_dac(repo_copy, "modelcar", "build", "tiny", "--source", str(src), "--no-cache", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["files"] == 5  # config, tokenizer, sub/extra.txt, two shards


def test_an_unreadable_file_that_is_not_selected_is_not_read(
    repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    (src / "ignored.pt").chmod(0o000)  # *.pt is never part of a modelcar
    res = without_dac(repo_copy, "modelcar", "build", "tiny", "--source", str(src), "--no-cache", "--json")
    assert res.returncode == 0, res.stderr


def test_a_source_path_beyond_path_max_is_one_error(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    given = tmp_path / "/".join(["d" * 250] * 20)  # 5 KB: no such path can even be looked up
    res = deliver("modelcar", "build", "tiny", "--source", str(given), repo=repo_copy)
    assert res.code == EXIT_BAD_INPUT and "Traceback" not in res.err
    assert "cannot read the source: File name too long" in res.err and "PATH_MAX" in res.err
    assert "bytes)" in res.err and len(res.err) < 1000  # the path is shortened, not 5 KB of d's
    # a directory inside the source that is deeper than PATH_MAX (made with relative mkdirs)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):
            os.mkdir("e" * 250, dir_fd=fd)
            fd, old = os.open("e" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
        with open(os.open("deep.json", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
            fh.write("{}")
    finally:
        os.close(fd)
    res = deliver("modelcar", "build", "tiny", "--source", str(src), "--no-cache", repo=repo_copy)
    assert res.code == EXIT_BAD_INPUT and "Traceback" not in res.err, res.err
    assert "File name too long" in res.err and "PATH_MAX" in res.err
    _nothing_written(repo_copy)


@pytest.mark.parametrize("case", ["fifo", "dangling", "backslash", "missing", "loop"])
def test_a_bad_source_entry_is_bad_input(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, case: str
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    words = {
        "fifo": "is not a regular file",
        "dangling": "is a dangling symlink",
        "backslash": "unsafe file name",
        "missing": "source directory not found",
        "loop": "cannot read the source: Symlink loop",
    }[case]
    if case == "fifo":
        os.mkfifo(src / "pipe.json")
    elif case == "dangling":
        (src / "gone.json").symlink_to(src / "nowhere.json")
    elif case == "backslash":
        (src / "a\\b.json").write_text("{}")
    elif case == "loop":
        (src / "one.json").symlink_to(src / "two.json")
        (src / "two.json").symlink_to(src / "one.json")
    else:
        src = tmp_path / "no-such-dir"
    res = deliver("modelcar", "build", "tiny", "--source", str(src), repo=repo_copy)
    assert res.code == EXIT_BAD_INPUT, res.err
    assert words in res.err and "fix:" in res.err and "Traceback" not in res.err
    _nothing_written(repo_copy)


# --- a stale digest is never remembered ------------------------------------------------------------


class _Reading:
    """A weight file as ``deliver`` reads it, with the user writing to it at a chosen moment:
    ``during`` (after the first chunk) or ``after`` (the last byte read, the file still open)."""

    def __init__(self, fh: io.FileIO, when: str) -> None:
        self.fh, self.when, self.reads = fh, when, 0

    def _rewrite(self) -> None:
        path = Path(self.fh.name)  # type: ignore[arg-type]
        size = path.stat().st_size
        with path.open("r+b") as out:  # same size, other bytes
            out.write(os.urandom(size))

    def readinto(self, buf: Any) -> int:
        n = self.fh.readinto(buf)
        self.reads += 1
        if self.when == "during" and self.reads == 1:
            self._rewrite()
        return n or 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        if n != 1:  # a chunk (not the probe for bytes past the end)
            self.reads += 1
            if self.when == "during" and self.reads == 1:
                self._rewrite()
        return data

    def fileno(self) -> int:
        return self.fh.fileno()

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.when == "after":
            self._rewrite()  # after the last fstat, before the digest cache remembers the file
        self.fh.close()


_REAL_OPEN = tarlayer._open


def _user_writes(monkeypatch: pytest.MonkeyPatch, name: str, when: str) -> None:
    real = tarlayer._open

    def opened(f: LayerFile) -> Any:
        fh = real(f)
        return _Reading(fh, when) if f.path.name == name else fh

    monkeypatch.setattr(tarlayer, "_open", opened)


def _aged(src: Path) -> None:
    """Files last modified an hour ago (their mtime; the ctime stays: see RACY_NS)."""
    old = time.time_ns() - 3600 * 10**9
    for p in src.rglob("*"):
        os.utime(p, ns=(old, old))


def _lock_sums(repo: Path) -> dict[str, str]:
    lock = yamlio.plain(yamlio.load_file(repo / "modelcars" / "tiny.lock.yaml"))
    return {f["path"]: f["sha256"] for f in lock["files"]}


SHARD = "model-00001-of-00002.safetensors"


def test_a_file_written_while_it_is_read_fails_the_build_and_is_never_cached(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarlayer, "RACY_NS", 0)  # so the cache would take the file if we let it
    src = _tiny(repo_copy, busybox_base, tmp_path)
    _aged(src)
    cache = tmp_path / "cache"
    _user_writes(monkeypatch, SHARD, "during")
    res = deliver(
        "modelcar", "build", "tiny", "--source", str(src), "--cache-dir", str(cache), repo=repo_copy
    )
    assert res.code == EXIT_FAILED, res.err
    assert f"models/{SHARD} was written to while it was read" in res.err and "run the build again" in res.err
    _nothing_written(repo_copy)
    assert not (cache / "modelcar-digests.json").exists()
    monkeypatch.setattr(tarlayer, "_open", _REAL_OPEN)
    ok = deliver("modelcar", "build", "tiny", "--source", str(src), "--cache-dir", str(cache), repo=repo_copy)
    assert ok.code == 0, ok.err
    assert _lock_sums(repo_copy)[SHARD] == "sha256:" + sha256_file(src / SHARD)


def test_a_file_rewritten_just_after_its_read_is_hashed_again_next_time(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache keys a sha256 on the file's stat from *before* the read: a write that lands after
    the read (same size) changes the stat, so the next build reads the file again."""
    monkeypatch.setattr(tarlayer, "RACY_NS", 0)
    src = _tiny(repo_copy, busybox_base, tmp_path)
    _aged(src)
    cache = tmp_path / "cache"
    before = sha256_file(src / SHARD)
    _user_writes(monkeypatch, SHARD, "after")
    first = deliver(
        "modelcar", "build", "tiny", "--source", str(src), "--cache-dir", str(cache), repo=repo_copy
    )
    assert first.code == 0, first.err
    assert _lock_sums(repo_copy)[SHARD] == "sha256:" + before  # what was read, consistently
    monkeypatch.setattr(tarlayer, "_open", _REAL_OPEN)
    after = sha256_file(src / SHARD)
    assert after != before
    second = deliver(
        "modelcar", "build", "tiny", "--source", str(src), "--cache-dir", str(cache), repo=repo_copy
    )
    assert second.code == 0, second.err
    assert _lock_sums(repo_copy)[SHARD] == "sha256:" + after  # not the remembered old hash


def test_a_file_changed_a_moment_before_the_read_is_not_remembered(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    """Timestamps are coarse: a file changed within RACY_NS of its read could change again without
    its stat moving, so its sha256 is not cached (the layer's content -> digest entry still is)."""
    src = _tiny(repo_copy, busybox_base, tmp_path)  # just written: every file is racy
    cache = tmp_path / "cache"
    res = deliver(
        "modelcar", "build", "tiny", "--source", str(src), "--cache-dir", str(cache), repo=repo_copy
    )
    assert res.code == 0, res.err
    data = json.loads((cache / "modelcar-digests.json").read_text())
    assert data["files"] == {} and len(data["layers"]) == 3


def test_a_failed_publish_leaves_the_digest_cache_as_it_was(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    point_env_at(repo_copy, "dev", f"127.0.0.1:{free_port()}")  # nothing listens there
    cache = tmp_path / "cache"
    res = deliver(
        "modelcar", "publish", "tiny", "--env", "dev",
        "--allow-unverified-source", "--source", str(src), "--cache-dir", str(cache),
        repo=repo_copy,
    )  # fmt: skip
    assert res.code == EXIT_FAILED, res.err
    assert not (cache / "modelcar-digests.json").exists()
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()


# --- what is written gets the umask's modes, not mkdtemp's 0700 ------------------------------------


def _modes(root: Path) -> set[tuple[str, int]]:
    found = {("dir", root.stat().st_mode & 0o777)}
    for p in root.rglob("*"):
        found.add(("dir" if p.is_dir() else "file", p.stat().st_mode & 0o777))
    return found


@pytest.mark.parametrize(("mask", "dirs", "files"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_written_directories_and_files_follow_the_umask(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    tmp_path: Path,
    mask: int,
    dirs: int,
    files: int,
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    old = os.umask(mask)
    try:
        layers = repo_copy / "clusters/dev/layers"
        assert deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy).code == 0
        out = deliver("modelcar", "build", "tiny", "--source", str(src), "--no-cache", repo=repo_copy)
        assert out.code == 0, out.err
    finally:
        os.umask(old)
    assert _modes(layers) == {("dir", dirs), ("file", files)}
    assert _modes(repo_copy / "out" / "modelcars" / "tiny") == {("dir", dirs), ("file", files)}
    assert (repo_copy / "modelcars" / "tiny.lock.yaml").stat().st_mode & 0o777 == files


# --- errors name where the secret or the endpoint really came from --------------------------------


def test_a_refused_password_names_where_it_came_from(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    tmp_path: Path,
    auth_registry: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _tiny(repo_copy, busybox_base, tmp_path)
    point_env_at(repo_copy, "dev", auth_registry.host)
    argv = [
        "modelcar",
        "publish",
        "tiny",
        "--env",
        "dev",
        "--allow-unverified-source",
        "--source",
        str(src),
        "--no-cache",
    ]
    argv += ["--username", auth_registry.username]
    monkeypatch.setenv("DELIVER_REGISTRY_PASSWORD", "wrong-from-env")
    res = deliver(*argv, repo=repo_copy)
    assert res.code == EXIT_FAILED and "authentication failed" in res.err, res.err
    assert "the password from $DELIVER_REGISTRY_PASSWORD" in res.err
    assert "explicit" not in res.err and "wrong-from-env" not in res.err
    monkeypatch.delenv("DELIVER_REGISTRY_PASSWORD")
    secret = tmp_path / "registry-password"
    secret.write_text("wrong-from-file\n")
    res = deliver(*argv, "--password-file", str(secret), repo=repo_copy)
    assert res.code == EXIT_FAILED and f"the password from {secret}" in res.err, res.err
    assert "wrong-from-file" not in res.err


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("", "huggingface.co"),
        ("http://127.0.0.1:9", "127.0.0.1:9"),
        ("https://user:hf_secret@mirror.example:8443/hf/", "mirror.example:8443/hf"),
    ],
)
def test_hub_errors_name_the_hub_in_use(
    repo_copy: Path,
    busybox_base: BaseLayout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    shown: str,
) -> None:
    """A test double stands in for the Hugging Face Hub (it cannot exist here): it fails as
    huggingface_hub does when the hub cannot be reached and the cache lacks the files."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    from delivery.core.errors import SourceError
    from delivery.modelcar.source import huggingface_source
    from delivery.modelcar.spec import load_spec

    if endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    else:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    write_spec(repo_copy, "tiny", busybox_base.spec_ref)
    spec = load_spec(repo_copy, "tiny")

    def unreachable_hub_double(**_kw: Any) -> str:
        raise LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")

    with pytest.raises(SourceError) as err:
        huggingface_source(spec, cache_dir=tmp_path / "hf", offline=False, downloader=unreachable_hub_double)
    (problem,) = err.value.problems
    assert str(problem.where).startswith(f"{shown}/sentence-transformers/all-MiniLM-L6-v2@")
    assert f"the hub at {shown} could not be reached" in problem.what
    assert "hf_secret" not in err.value.render() and "offline" not in problem.what


# --- machine-written YAML (locks) reads back exactly, whatever the names ---------------------------


def test_machine_written_yaml_round_trips_hostile_strings(tmp_path: Path) -> None:
    tricky = ["null", "~", "yes", "No", "0x10", "1e3", "0777", " lead", "trail ", "- x", "#x", "a: b",
              "\\", '"', "'", "\u2028line", "tab\tx", "ünï", "", "*alias", "&anchor", "!tag", "@at",
              "`tick`", "%pct"]  # fmt: skip
    data = {
        "files": [{"path": t, "size": i, "sha256": f"sha256:{i:064x}"} for i, t in enumerate(tricky)],
        **{t or "empty": t for t in tricky},
        "nested": {"empty": {}, "none": [], "deep": [[1, [2, {"k": None}]], True, 1.5]},
    }
    text = yamlio.dump_machine(data)
    lock = tmp_path / "x.lock.yaml"
    lock.write_text(text)
    assert yamlio.plain(yamlio.load_file(lock)) == data  # the same reader every lock goes through
    assert text.isascii()


def test_a_mistyped_schema_source_directory_is_an_error(
    deliver: Any, repo_copy: Path, tmp_path: Path
) -> None:
    """--source names the hermetic schema copy: a typo must not silently mean "download instead"."""
    for argv in (["schemas", "--env", "dev"], ["validate", "--env", "dev"]):
        res = deliver(*argv, "--source", str(tmp_path / "kube-shemas"), repo=repo_copy)
        assert res.code == EXIT_BAD_INPUT and "does not exist" in res.err and "fix:" in res.err, res.err
