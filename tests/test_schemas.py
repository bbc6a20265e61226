"""The hermetic schema bundle: built offline from ../shared/kube-schemas and kubernetes-validate,
every source checked against its sha256 pin, cached by key, and readable by the real kubeconform."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import IN_CI, REPO, Result
from delivery.core.errors import SourceError, UsageError
from delivery.schemas import bundle as schema_bundle
from delivery.schemas import convert as schema_convert
from delivery.schemas import sources as schema_sources

SHARED_SCHEMAS = REPO.parent / "shared" / "kube-schemas"


def hermetic_schemas() -> Path:
    """The hermetic upstream copy beside the repo; skips locally, fails in CI, when it is missing."""
    if (SHARED_SCHEMAS / "catalog").is_dir():
        return SHARED_SCHEMAS
    msg = f"hermetic schema sources not found at {SHARED_SCHEMAS}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> schema_bundle.SchemaBundle:
    """A bundle built from scratch (fresh cache), offline."""
    cache = tmp_path_factory.mktemp("schema-cache")
    return schema_bundle.ensure_bundle(
        REPO, ["1.34"], source_dir=hermetic_schemas(), cache_dir=cache, offline=True
    )


def test_pins_cover_every_hermetic_file_and_match_it() -> None:
    source = hermetic_schemas()
    pins = {p.path: p for p in schema_sources.pinned_files()}
    on_disk = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file() and p.name != "README.md"}
    assert set(pins) == on_disk
    data, origin = schema_sources.read_sources(
        list(pins.values()), source_dir=source, download_cache=Path("/nonexistent"), offline=True
    )
    assert set(origin.values()) == {"source"} and len(data) == len(pins)
    assert pins["catalog/argoproj.io/application_v1alpha1.json"].url.endswith(
        f"datreeio/CRDs-catalog/{schema_sources.CATALOG_COMMIT}/argoproj.io/application_v1alpha1.json"
    )
    assert pins["crds/kserve-v0.19.0/serving.kserve.io_llminferenceservices.yaml"].url.endswith(
        "kserve/kserve/v0.19.0/config/crd/full/serving.kserve.io_llminferenceservices.yaml"
    )


def test_bundle_records_provenance_and_indexes_kinds(built: schema_bundle.SchemaBundle) -> None:
    meta = json.loads((built.root / schema_sources.BUNDLE_FILE).read_text())
    assert meta["kubernetesVersions"] == ["1.34"]
    assert meta["sources"]["kubernetesValidate"]["version"] == "1.37.0"
    files = {f["path"]: f for f in meta["sources"]["files"]}
    assert len(files) == len(schema_sources.pinned_files())
    assert all(f["from"] == "source" and len(f["sha256"]) == 64 for f in files.values())
    assert built.api_versions("Deployment", "1.34") == ["apps/v1"]
    assert built.api_versions("InferencePool", "1.34") == ["inference.networking.k8s.io/v1"]
    assert built.converted["LLMInferenceService"] == [
        "serving.kserve.io/v1alpha1",
        "serving.kserve.io/v1alpha2",
    ]
    assert "InferenceService" not in built.converted  # the catalog has it: not converted again
    assert built.crds["application"] == ["argoproj.io/v1alpha1"]
    assert built.api_versions("Application", "1.34") == ["argoproj.io/v1alpha1"]
    assert (built.root / "licenses/catalog/LICENSE").is_file()


def test_core_schemas_are_standalone_for_kubeconform(built: schema_bundle.SchemaBundle) -> None:
    for variant in ("v1.34.0-standalone", "v1.34.0-standalone-strict"):
        folder = built.root / "kubernetes" / variant
        files = list(folder.rglob("*.json"))
        assert len(files) > 250
        for path in files:
            text = path.read_text()
            assert "/api/_definitions.json" not in text, path
            assert "https://kubernetes.io/api" not in json.loads(text).get("$id", ""), path
    pod = json.loads((built.root / "kubernetes/v1.34.0-standalone-strict/v1/pod_v1.json").read_text())
    assert pod["properties"]["spec"]["$ref"] == "#/$defs/io.k8s.api.core.v1.PodSpec"
    assert "io.k8s.api.core.v1.Container" in pod["$defs"]  # inlined transitively
    assert "io.k8s.api.apps.v1.DeploymentSpec" not in pod["$defs"]  # and only what it uses


def test_crd_variants_differ_only_in_strictness(built: schema_bundle.SchemaBundle) -> None:
    rel = "inference.networking.k8s.io/inferencepool_v1.json"
    plain = json.loads((built.root / "crds/standalone" / rel).read_text())
    strict = json.loads((built.root / "crds/standalone-strict" / rel).read_text())
    assert "additionalProperties" not in plain  # top level open, as in the catalog
    assert plain["properties"]["spec"]["additionalProperties"] is False
    assert strict["additionalProperties"] is False
    catalog = json.loads(
        (built.root / "crds/standalone-strict/argoproj.io/application_v1alpha1.json").read_text()
    )
    assert catalog["additionalProperties"] is False


def test_openapi_conversion_handles_nullable_and_int_or_string() -> None:
    converted = schema_convert.openapi_to_jsonschema(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "legacy": {"type": "string", "format": "int-or-string"},
                "note": {"type": "string", "nullable": True, "enum": ["a"]},
                "properties": {"type": "object", "properties": {"x": {"type": "string"}}},
            },
        }
    )
    props = converted["properties"]
    assert props["port"]["oneOf"] == [{"type": "string"}, {"type": "integer"}]
    assert props["legacy"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["note"] == {"type": ["string", "null"], "enum": ["a", None]}
    strict = schema_convert.strictify(converted)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["properties"]["additionalProperties"] is False  # a field named "properties"
    assert "additionalProperties" not in strict["properties"]["port"]


def test_strictify_keeps_objects_that_preserve_unknown_fields_open() -> None:
    schema = {
        "type": "object",
        "properties": {
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    strict = schema_convert.strictify(schema)
    assert "additionalProperties" not in strict["properties"]["config"]
    assert strict["properties"]["labels"]["additionalProperties"] == {"type": "string"}


def test_bundle_is_cached_by_its_inputs(built: schema_bundle.SchemaBundle) -> None:
    marker = (built.root / schema_sources.BUNDLE_FILE).stat().st_mtime_ns
    again = schema_bundle.ensure_bundle(
        REPO, ["1.34"], source_dir=Path("/nonexistent"), cache_dir=built.root.parent, offline=True
    )
    assert again.root == built.root and (again.root / schema_sources.BUNDLE_FILE).stat().st_mtime_ns == marker
    pins = schema_sources.pinned_files()
    assert schema_bundle.bundle_key(["1.34"], pins) == built.key
    assert schema_bundle.bundle_key(["1.33", "1.34"], pins) != built.key
    assert schema_bundle.bundle_key(["1.34"], pins[1:]) != built.key


def test_offline_without_sources_fails_and_writes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as err:
        schema_bundle.ensure_bundle(
            REPO, ["1.34"], source_dir=tmp_path / "missing", cache_dir=cache, offline=True
        )
    assert "not available offline" in err.value.render() and "--source" in err.value.render()
    assert not any(p for p in cache.rglob("*") if p.is_file())


def test_a_tampered_source_file_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "kube-schemas"
    shutil.copytree(hermetic_schemas(), source)
    target = (
        source / "crds/gateway-api-inference-extension-v1.5.0/inference.networking.k8s.io_inferencepools.yaml"
    )
    target.write_text(target.read_text().replace("InferencePool", "InferencePoo1", 1))
    with pytest.raises(SourceError) as err:
        schema_bundle.ensure_bundle(
            REPO, ["1.34"], source_dir=source, cache_dir=tmp_path / "cache", offline=True
        )
    assert "does not match the pin" in err.value.render()
    assert "inference.networking.k8s.io_inferencepools.yaml" in err.value.render()


def test_unsupported_kubernetes_minor_names_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        schema_bundle.ensure_bundle(
            REPO, ["1.24"], source_dir=hermetic_schemas(), cache_dir=tmp_path, offline=True
        )
    assert "no schemas for Kubernetes 1.24" in err.value.render()
    assert "1.25" in err.value.render() and "1.37" in err.value.render()


# --------------------------------------------------------------------------- the online path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def loopback_mirror_for_tests(root: Path) -> Iterator[Callable[[str], bytes]]:
    """A real HTTP server on loopback serving ``root`` laid out like the upstream URLs.

    Upstream hosts are unreachable here, so the fetcher maps each pinned https URL to the same
    path on this server: the download, sha256 check and download cache run for real.
    """
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def fetch(url: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        local = f"http://127.0.0.1:{server.server_port}/{parsed.netloc}{parsed.path}"
        with urllib.request.urlopen(local, timeout=10) as resp:
            data: bytes = resp.read()
            return data

    try:
        yield fetch
    finally:
        server.shutdown()
        server.server_close()


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    source = hermetic_schemas()
    for pin in schema_sources.pinned_files():
        parsed = urllib.parse.urlparse(pin.url)
        target = mirror / parsed.netloc / parsed.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / pin.path, target)
    return mirror


def test_online_fetches_pinned_urls_verifies_and_caches_downloads(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path)
    cache = tmp_path / "cache"
    with loopback_mirror_for_tests(mirror) as fetch:
        bundle = schema_bundle.ensure_bundle(
            REPO, ["1.34"], source_dir=tmp_path / "none", cache_dir=cache, fetch=fetch
        )
    origins = {f["from"] for f in bundle.provenance["files"]}
    assert origins == {"download"}
    assert len(list((cache / "sources").iterdir())) == len({p.sha256 for p in schema_sources.pinned_files()})
    # the downloads now serve offline, with no source dir at all
    _, origin = schema_sources.read_sources(
        schema_sources.pinned_files(), source_dir=None, download_cache=cache / "sources", offline=True
    )
    assert set(origin.values()) == {"cache"}


def test_online_download_that_does_not_match_its_pin_is_rejected(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path)
    victim = next(mirror.rglob("appproject_v1alpha1.json"))
    victim.write_text(victim.read_text().replace("AppProject", "AppProjekt"))
    cache = tmp_path / "cache"
    with loopback_mirror_for_tests(mirror) as fetch, pytest.raises(SourceError) as err:
        schema_bundle.ensure_bundle(
            REPO, ["1.34"], source_dir=tmp_path / "none", cache_dir=cache, fetch=fetch
        )
    assert "downloaded sha256" in err.value.render() and "appproject_v1alpha1.json" in err.value.render()
    assert not any(p.name.endswith(".json") for p in cache.rglob("*"))


# --------------------------------------------------------------------------- CLI and kubeconform


def test_cli_schemas_offline_output_json(
    deliver: Callable[..., Result], repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(schema_sources.SOURCE_DIR_ENV, str(hermetic_schemas()))
    monkeypatch.setenv(schema_sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
    out = tmp_path / "bundle"
    res = deliver("schemas", "--env", "dev", "--offline", "--output", str(out), "--json", repo=repo_copy)
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert info["ok"] and info["path"] == str(out) and info["kubernetesVersions"] == ["1.34"]
    assert "InferencePool" in info["schemas"]["converted"]
    assert schema_bundle.SchemaBundle.load(out).key == info["key"]
    text = deliver("schemas", "--offline", repo=repo_copy)
    assert text.code == 0 and f"schema bundle {info['key']}" in text.out


def test_cli_schemas_offline_without_sources_fails_clearly(
    deliver: Callable[..., Result], repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(schema_sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
    empty = tmp_path / "empty-copy"  # an existing directory without the pinned files
    empty.mkdir()
    res = deliver("schemas", "--offline", "--source", str(empty), repo=repo_copy)
    assert res.code == 1
    assert "not available offline" in res.err and "fix:" in res.err


def test_every_schema_in_the_bundle_compiles_in_kubeconform(
    built: schema_bundle.SchemaBundle, tools: Callable[[str], str], tmp_path: Path
) -> None:
    """kubeconform treats a schema it cannot compile as missing, so compile each CRD schema once."""
    docs = []
    index = {**built.crds, **built.converted}
    for kind, versions in sorted(index.items()):
        for api_version in versions:
            docs.append(f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: probe}}\n")
    (tmp_path / "probe.yaml").write_text("---\n".join(docs))
    proc = subprocess.run(
        [tools("kubeconform"), "-strict", "-summary", "-verbose", "-output", "json",
         "-kubernetes-version", "1.34.0",
         *[a for loc in built.locations() for a in ("-schema-location", loc)], "probe.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    results = json.loads(proc.stdout)["resources"]
    assert len(results) == len(docs)
    missing = [r for r in results if "could not find schema" in r["msg"]]
    assert missing == []
