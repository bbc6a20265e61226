"""Engine-free checks of the Dagger module: it imports, its functions are typed and documented,
every image it references is pinned by digest, and side-effecting functions are never cached."""

from __future__ import annotations

import inspect
import json
import re
import sys
import typing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE_SRC = REPO / "ci" / "dagger" / "src"
sys.path.insert(0, str(MODULE_SRC))

dagger = pytest.importorskip("dagger")
from dagger.mod._module import FUNCTION_DEF_KEY  # noqa: E402
from llm_platform import images  # noqa: E402
from llm_platform.main import LlmPlatform  # noqa: E402

DIGEST_REF = re.compile(r"^[a-z0-9.\-/:_]+@sha256:[0-9a-f]{64}$")
# Functions with side effects outside the engine: never cached.
SIDE_EFFECTS = {"modelcar_publish", "tofu_apply", "promote"}


def _functions() -> dict[str, typing.Any]:
    return {
        name: fn
        for name, fn in inspect.getmembers(LlmPlatform, inspect.isfunction)
        if hasattr(fn, FUNCTION_DEF_KEY)
    }


def test_dagger_json_pins_the_v021_engine_matching_the_sdk() -> None:
    cfg = json.loads((REPO / "dagger.json").read_text())
    assert cfg["source"] == "ci/dagger"
    assert cfg["sdk"]["source"] == "python"
    sdk_pin = re.search(r'"dagger-io==([0-9.]+)"', (REPO / "ci/dagger/pyproject.toml").read_text())
    assert sdk_pin and cfg["engineVersion"] == f"v{sdk_pin.group(1)}"
    assert cfg["engineVersion"].startswith("v0.21.")
    dev_pin = re.search(r'"dagger-io==([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert dev_pin and dev_pin.group(1) == sdk_pin.group(1)


def test_module_exposes_functions_for_existing_steps() -> None:
    names = set(_functions())
    assert {"config_check", "root", "toolbox"} <= names


@pytest.mark.parametrize("name", sorted(_functions()))
def test_function_is_documented_and_fully_typed(name: str) -> None:
    fn = _functions()[name]
    assert inspect.getdoc(fn), f"{name} has no docstring"
    hints = typing.get_type_hints(fn, include_extras=True)
    assert "return" in hints, f"{name} has no return type"
    for pname in inspect.signature(fn).parameters:
        if pname == "self":
            continue
        assert pname in hints, f"{name}({pname}) is untyped"
        hint = hints[pname]
        assert typing.get_origin(hint) is typing.Annotated, f"{name}({pname}) lacks Annotated[..., Doc()]"
        docs = [m for m in typing.get_args(hint)[1:] if isinstance(m, dagger.Doc)]
        assert docs and docs[0].documentation.strip(), f"{name}({pname}) has no Doc"


def test_side_effecting_functions_are_never_cached() -> None:
    fns = _functions()
    for name in SIDE_EFFECTS & set(fns):
        assert getattr(fns[name], FUNCTION_DEF_KEY).cache == "never", name
    for name in fns:
        if name.endswith(("publish", "apply", "promote")):
            assert name in SIDE_EFFECTS, f"{name} looks side-effecting: add it to SIDE_EFFECTS"


def test_every_image_is_pinned_by_digest() -> None:
    pinned = {k: v for k, v in vars(images).items() if k.isupper() and isinstance(v, str)}
    assert pinned, "images.py defines no images"
    for name, ref in pinned.items():
        assert DIGEST_REF.match(ref), f"images.{name} = {ref!r} is not pinned by digest"
    # No image reference may bypass images.py: every from_() takes an images.* constant.
    for path in (MODULE_SRC / "llm_platform").glob("*.py"):
        text = path.read_text()
        for call in re.findall(r"from_\(([^)]*)\)", text):
            assert call.strip().startswith("images."), f"{path.name}: from_({call}) is not a pinned image"
    pyproject = (REPO / "ci/dagger/pyproject.toml").read_text()
    base = re.search(r'base-image = "([^"]+)"', pyproject)
    assert base and DIGEST_REF.match(base.group(1))


def test_toolbox_builds_a_lazy_pipeline_without_an_engine() -> None:
    from llm_platform.toolbox import deliver, toolbox

    ctr = deliver(toolbox(dagger.dag.directory()), "config", "check")
    assert isinstance(ctr, dagger.Container)


def test_modelcar_build_and_lock_share_one_build_pipeline() -> None:
    from llm_platform import modelcar

    source = dagger.dag.directory()
    assert isinstance(modelcar.build(source, "m", None), dagger.Directory)
    assert isinstance(modelcar.lock(source, "m", None), dagger.File)
    hints = typing.get_type_hints(_functions()["modelcar_lock"])
    assert hints["return"] is dagger.File
    # both read from modelcar.built(): the same exec, which the engine runs once for both
    src = inspect.getsource(modelcar)
    assert src.count('"modelcar", "build"') == 1
