"""`deliver layers render`: every env's Argo CD layers, generated from its config and clusters/pins.yaml."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from delivery import config as envconfig
from delivery import gitops as layers
from delivery.core import yamlio
from delivery.gitops import conventions, serving
from delivery.gitops.conventions import PROFILES
from delivery.validation.manifests import load_layer_manifests

REPO = Path(__file__).resolve().parent.parent
ENVS = ("dev", "staging", "prod")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def _by_kind(repo: Path, env: str, kind: str) -> list[dict[str, Any]]:
    return [m.doc for m in load_layer_manifests(repo, env) if m.kind == kind]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("env", ENVS)
def test_committed_layers_are_up_to_date_with_config(deliver, env: str) -> None:  # type: ignore[no-untyped-def]
    res = deliver("layers", "render", "--env", env, "--check")
    assert res.code == 0, res.err
    assert f"up to date: clusters/{env}/layers" in res.out


def test_rendering_is_deterministic_and_equals_the_committed_files() -> None:
    for env in ENVS:
        cfg = envconfig.load_env(REPO, env)
        first, second = layers.render_layers(REPO, cfg), layers.render_layers(REPO, cfg)
        assert first == second
        base = REPO / "clusters" / env / "layers"
        committed = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*.yaml")}
        assert committed == first


@pytest.mark.parametrize("env", ENVS)
def test_layer_directories_are_exactly_the_profile(env: str) -> None:
    cfg = envconfig.load_env(REPO, env)
    base = REPO / "clusters" / env / "layers"
    wanted = set(PROFILES[cfg.profile])
    assert {p.name for p in base.iterdir() if p.is_dir()} == wanted | {"components"}
    assert {p.name for p in (base / "components").iterdir()} <= wanted
    # each layer directory holds only what the root's `layers` project admits: Applications + AppProject
    for layer in wanted:
        kinds = {d["kind"] for f in (base / layer).rglob("*.yaml") for d in _docs(f)}
        assert kinds <= {"Application", "AppProject"}, (layer, kinds)
        assert any(d["kind"] == "AppProject" for d in _docs(base / layer / "project.yaml"))
    if cfg.profile != "full":
        assert not (base / "demos").exists() and not (base / "components" / "demos").exists()


@pytest.mark.parametrize("env", ENVS)
def test_every_component_directory_is_deployed_by_exactly_one_application(env: str) -> None:
    cfg = envconfig.load_env(REPO, env)
    apps = _by_kind(REPO, env, "Application")
    paths = [s["path"] for a in apps for s in [a["spec"].get("source") or {}] if "path" in s]
    own = sorted(p for p in paths if p.startswith("clusters/"))
    assert len(own) == len(set(own))
    dirs = sorted(
        str(d.relative_to(REPO))
        for d in (REPO / "clusters" / env / "layers" / "components").glob("*/*")
        if d.is_dir()
    )
    assert own == dirs
    for app in apps:
        spec = app["spec"]
        assert spec["project"] == app["metadata"]["labels"]["llm-platform/layer"]
        assert spec["destination"]["server"] == "https://kubernetes.default.svc"
        for src in spec.get("sources", [spec.get("source")]):
            if src["repoURL"] == cfg.repo_url:
                assert src["targetRevision"] == cfg.repo_branch


def test_images_and_modelcar_are_pinned_by_digest_everywhere() -> None:
    for env in ENVS:
        cfg = envconfig.load_env(REPO, env)
        text = "".join(p.read_text() for p in (REPO / "clusters" / env / "layers").rglob("*.yaml"))
        images = re.findall(r"^\s*(?:- )?image: (\S+)$", text, re.M)
        assert images and all(DIGEST.search(i) for i in images), images
        modelcar = f"{cfg.registry}/qwen2.5-0.5b-instruct@sha256:"
        assert modelcar in text
        for uri in re.findall(r"oci://[^\s'\"]+", text):
            if "@" in uri:
                assert uri.startswith(f"oci://{modelcar}") and DIGEST.search(uri), uri


def test_serving_features_follow_config() -> None:
    dev = _by_kind(REPO, "dev", "LLMInferenceService")
    prod = _by_kind(REPO, "prod", "LLMInferenceService")
    assert dev == [] and _by_kind(REPO, "staging", "LLMInferenceService") == []
    assert len(prod) == 1 and prod[0]["apiVersion"] == "serving.kserve.io/v1alpha2"
    assert prod[0]["spec"]["prefill"]["replicas"] == 1  # disaggregated: needs >= 2 GPUs (prod has 4)
    for env in ENVS:
        isvc = [
            d
            for d in _by_kind(REPO, env, "InferenceService")
            if d["metadata"]["namespace"] == "serving-kserve"
        ]
        env_var = isvc[0]["spec"]["predictor"]["containers"][0]["env"][0]
        assert env_var["name"] == "STORAGE_URI" and env_var["value"].startswith("oci://")
    demos = [
        m for m in load_layer_manifests(REPO, "dev") if "/demos/" in str(m.path) and m.kind != "AppProject"
    ]
    assert demos and all(
        m.doc["metadata"]["labels"].get("llm-platform/demo") == "true"
        for m in demos
        if m.kind != "Application"
    )


def test_keda_scales_from_zero_on_a_signal_that_exists_at_zero_replicas() -> None:
    (so,) = _by_kind(REPO, "prod", "ScaledObject")
    spec = so["spec"]
    assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] == 4  # serving.maxReplicas
    queries = {t["name"]: t["metadata"]["query"] for t in spec["triggers"]}
    assert "vllm:num_requests_waiting" in queries["queue-depth"]
    assert "agentgateway_requests_total" in queries["gateway-requests"]  # gateway, not the scaled pods
    deployment = next(d for d in _by_kind(REPO, "prod", "Deployment") if d["metadata"]["name"] == "raw-vllm")
    assert "replicas" not in deployment["spec"]  # KEDA owns it; Argo ignores /spec/replicas
    # the rendered manifest says which signal wakes it from zero, in a comment above the object
    rel = "clusters/prod/layers/components/serving/raw-vllm/scaledobject-serving-raw-vllm.yaml"
    text = (REPO / rel).read_text()
    comment = "".join(line[2:] + "\n" for line in text.splitlines() if line.startswith("# "))
    assert serving.SCALE_FROM_ZERO_NOTE + "\n" in comment
    assert "at zero replicas" in comment and "agentgateway_requests_total" in comment


def test_routing_targets_the_ga_pool_in_its_own_namespace() -> None:
    for env in ENVS:
        (route,) = _by_kind(REPO, env, "HTTPRoute")
        (ref,) = route["spec"]["rules"][0]["backendRefs"]
        assert ref == {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "raw-vllm"}
        pool_app = next(
            a for a in _by_kind(REPO, env, "Application") if a["metadata"]["name"] == "inference-pool"
        )
        assert pool_app["spec"]["destination"]["namespace"] == route["metadata"]["namespace"]
        assert pool_app["spec"]["source"]["helm"]["releaseName"] == "raw-vllm"
        header = route["spec"]["rules"][0]["matches"][0]["headers"][0]
        assert header["value"] == envconfig.load_env(REPO, env).serving.model


def test_env_values_come_from_config(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = repo_copy / "environments/staging/config.yaml"
    _edit(cfg, "projectID: llm-platform-staging", "projectID: fork-project-1")
    _edit(
        cfg,
        "registry: europe-west4-docker.pkg.dev/llm-platform-staging/modelcars",
        "registry: us-central1-docker.pkg.dev/fork-project-1/models",
    )
    _edit(cfg, "domain: staging.llm.example.com", "domain: ai.fork.dev")
    _edit(cfg, "type: nvidia-l4", "type: nvidia-tesla-t4")
    _edit(cfg, "repoBranch: main", "repoBranch: release/staging")
    _edit(cfg, "https://github.com/example-org/llm-platform.git", "https://github.com/fork/platform.git")
    stale = deliver("layers", "render", "--env", "staging", "--check", repo=repo_copy)
    assert stale.code == 1 and "it is generated, and --write replaces a hand edit here" in stale.err
    assert "then deliver layers render --env staging --write" in stale.err
    assert deliver("layers", "render", "--env", "staging", "--write", repo=repo_copy).code == 0
    assert deliver("layers", "render", "--env", "staging", "--check", repo=repo_copy).code == 0
    (store,) = _by_kind(repo_copy, "staging", "ClusterSecretStore")
    assert store["spec"]["provider"]["gcpsm"]["projectID"] == "fork-project-1"
    (flavor,) = _by_kind(repo_copy, "staging", "ResourceFlavor")
    assert flavor["spec"]["nodeLabels"]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    text = "".join(p.read_text() for p in (repo_copy / "clusters/staging/layers").rglob("*.yaml"))
    assert "us-central1-docker.pkg.dev/fork-project-1/models/qwen2.5-0.5b-instruct@sha256:" in text
    assert "argocd.ai.fork.dev" in text and "https://api.ai.fork.dev" in text
    assert "llm-platform-staging" not in text and "example-org" not in text
    apps = _by_kind(repo_copy, "staging", "Application")
    own = [
        a["spec"]["source"]
        for a in apps
        if a["spec"].get("source", {}).get("path", "").startswith("clusters/")
    ]
    assert own and all(
        s["repoURL"] == "https://github.com/fork/platform.git" and s["targetRevision"] == "release/staging"
        for s in own
    )
    # the other envs are untouched
    assert deliver("layers", "render", "--env", "prod", "--check", repo=repo_copy).code == 0


def _write_release(repo: Path, env: str, artifacts: dict[str, dict[str, str]]) -> None:
    from delivery.release import Release, write_release

    write_release(repo, Release.model_validate({"env": env, "artifacts": artifacts}))


def test_modelcar_and_images_come_from_the_release_of_a_promoted_env(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    digest = "sha256:" + "ab" * 32
    vllm = "sha256:" + "cd" * 32
    prod_registry = "europe-west4-docker.pkg.dev/llm-platform-prod/modelcars"
    _write_release(
        repo_copy,
        "prod",
        {
            "qwen2.5-0.5b-instruct": {
                "kind": "modelcar",
                "ref": f"{prod_registry}/qwen2.5-0.5b-instruct@{digest}",
            },
            "vllm": {"kind": "image", "ref": f"{prod_registry}/vllm-openai@{vllm}"},
        },
    )
    res = deliver("layers", "render", "--env", "prod", "--check", repo=repo_copy)
    assert res.code == 1 and "deployment-serving-raw-vllm.yaml: differs from what" in res.err
    assert deliver("layers", "render", "--env", "prod", "--write", repo=repo_copy).code == 0
    (llmisvc,) = _by_kind(repo_copy, "prod", "LLMInferenceService")
    assert llmisvc["spec"]["model"]["uri"] == f"oci://{prod_registry}/qwen2.5-0.5b-instruct@{digest}"
    (deployment,) = _by_kind(repo_copy, "prod", "Deployment")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == [f"{prod_registry}/vllm-openai@{vllm}"]  # never the pin's docker.io reference
    assert (
        "modelcar digest from clusters/prod/release.yaml"
        in (
            repo_copy / "clusters/prod/layers/components/serving/llm-d/"
            "llminferenceservice-llm-d-qwen2.5-0.5b-instruct-llm-d.yaml"
        ).read_text()
    )
    # the KServe alternative serves the same promoted image
    (isvc,) = _by_kind(repo_copy, "prod", "InferenceService")
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == f"{prod_registry}/vllm-openai@{vllm}"


def test_the_entry_env_deploys_the_pins_and_its_release(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    digest = "sha256:" + "ef" * 32
    dev_registry = "europe-west4-docker.pkg.dev/llm-platform-dev/modelcars"
    ref = f"{dev_registry}/qwen2.5-0.5b-instruct@{digest}"
    _write_release(repo_copy, "dev", {"qwen2.5-0.5b-instruct": {"kind": "modelcar", "ref": ref}})
    res = deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 0 and "warning" not in res.err
    (deployment,) = _by_kind(repo_copy, "dev", "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == ref
    pins = yamlio.plain(yamlio.load_file(repo_copy / "clusters/pins.yaml"))
    assert spec["containers"][0]["image"] == pins["images"]["vllm"]


def test_a_release_naming_the_wrong_kind_is_a_clear_error(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    _write_release(
        repo_copy,
        "dev",
        {"qwen2.5-0.5b-instruct": {"kind": "image", "ref": "r.example/x@sha256:" + "ab" * 32}},
    )
    res = deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 2 and "artifact 'qwen2.5-0.5b-instruct' is a image, not a modelcar" in res.err


def test_check_names_changed_missing_and_extra_files(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    base = repo_copy / "clusters/dev/layers"
    _edit(base / "platform/keda.yaml", "targetRevision: 2.20.1", "targetRevision: 2.20.2")
    (base / "routing/model-routes.yaml").unlink()
    (base / "serving/hand-written.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    res = deliver("layers", "render", "--env", "dev", "--check", repo=repo_copy)
    assert res.code == 1
    assert "clusters/dev/layers/platform/keda.yaml: differs from what" in res.err
    assert "clusters/dev/layers/routing/model-routes.yaml: missing" in res.err
    assert "clusters/dev/layers/serving/hand-written.yaml: not rendered from the config" in res.err
    assert deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy).code == 0
    assert not (base / "serving/hand-written.yaml").exists()
    assert deliver("layers", "render", "--env", "dev", "--check", repo=repo_copy).code == 0


def test_bad_pins_fail_cleanly_and_write_nothing(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    before = {p: p.read_bytes() for p in (repo_copy / "clusters/prod/layers").rglob("*.yaml")}
    pins = repo_copy / "clusters/pins.yaml"
    _edit(
        pins,
        "keda: {repoURL: https://kedacore.github.io/charts, chart: keda, version: 2.20.1}",
        "keda: {repoURL: https://kedacore.github.io/charts, chart: keda, version: '^2.20'}",
    )
    res = deliver("layers", "render", "--env", "prod", "--write", repo=repo_copy)
    assert res.code == 2
    assert "clusters/pins.yaml:" in res.err and "charts.keda.version" in res.err
    after = {p: p.read_bytes() for p in (repo_copy / "clusters/prod/layers").rglob("*.yaml")}
    assert after == before
    _edit(pins, "version: '^2.20'", "version: 2.20.1")
    _edit(pins, "  vllm: vllm/vllm-openai:v0.23.0@sha256:", "  vllm: vllm/vllm-openai:v0.23.0@sha1:")
    res = deliver("layers", "render", "--env", "prod", "--write", repo=repo_copy)
    assert res.code == 2 and "images.vllm" in res.err
    assert {p: p.read_bytes() for p in (repo_copy / "clusters/prod/layers").rglob("*.yaml")} == before


def test_features_off_remove_their_components(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = repo_copy / "environments/prod/config.yaml"
    _edit(cfg, "llm-d: true", "llm-d: false")
    _edit(cfg, "kserve: true", "kserve: false")
    _edit(cfg, "autoscaling: true", "autoscaling: false")
    assert deliver("layers", "render", "--env", "prod", "--write", repo=repo_copy).code == 0
    kinds = {m.kind for m in load_layer_manifests(repo_copy, "prod")}
    assert not kinds & {"LLMInferenceService", "InferenceService", "ScaledObject"}
    names = {m.name for m in load_layer_manifests(repo_copy, "prod") if m.kind == "Application"}
    assert not names & {"kserve", "kserve-crd", "kserve-llmisvc", "llm-d", "kserve-modelcar"}
    (deployment,) = _by_kind(repo_copy, "prod", "Deployment")
    assert deployment["spec"]["replicas"] == 1


def test_profile_change_adds_and_removes_layers(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = repo_copy / "environments/staging/config.yaml"
    _edit(cfg, "profile: llm-gateway", "profile: serving")
    assert deliver("layers", "render", "--env", "staging", "--write", repo=repo_copy).code == 0
    base = repo_copy / "clusters/staging/layers"
    assert sorted(p.name for p in base.iterdir()) == ["components", "platform", "serving"]
    assert sorted(p.name for p in (base / "components").iterdir()) == ["platform", "serving"]
    shutil.rmtree(base)
    assert deliver("layers", "render", "--env", "staging", "--check", repo=repo_copy).code == 1


def test_cli_usage_errors(deliver) -> None:  # type: ignore[no-untyped-def]
    both = deliver("layers", "render", "--env", "dev", "--write", "--check")
    assert both.code == 2 and "--write and --check exclude each other" in both.err
    unknown = deliver("layers", "render", "--env", "nope")
    assert unknown.code == 2 and "unknown environment 'nope' (known: dev, prod, staging)" in unknown.err


def test_eso_identity_matches_the_substrate() -> None:
    """The KSA/GSA pair the layers use is the one tofu/modules/gke binds with Workload Identity."""
    iam = (REPO / "tofu/modules/gke/iam.tf").read_text()
    variables = (REPO / "tofu/modules/gke/variables.tf").read_text()
    assert 'account_id   = "${var.environment}-eso-sa"' in iam
    ksa = f"{conventions.ESO_NS}/{conventions.ESO_KSA}"
    assert re.search(r'variable "eso_kubernetes_service_account"[^}]*default\s*=\s*"' + ksa + '"', variables)
    for env in ENVS:
        cfg = envconfig.load_env(REPO, env)
        app = next(
            a for a in _by_kind(REPO, env, "Application") if a["metadata"]["name"] == "external-secrets"
        )
        sa = app["spec"]["source"]["helm"]["valuesObject"]["serviceAccount"]
        assert (
            sa["name"] == conventions.ESO_KSA
            and app["spec"]["destination"]["namespace"] == conventions.ESO_NS
        )
        gsa = f"{env}-eso-sa@{cfg.cluster.project_id}.iam.gserviceaccount.com"
        assert sa["annotations"]["iam.gke.io/gcp-service-account"] == gsa
        (store,) = _by_kind(REPO, env, "ClusterSecretStore")
        ref = store["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]["serviceAccountRef"]
        assert ref == {"name": conventions.ESO_KSA, "namespace": conventions.ESO_NS}


def test_an_artifact_not_in_the_env_yet_is_a_visible_warning(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    """Without a release entry the placeholder digest renders, and every render names the command."""
    res = deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 0
    assert (
        "warning: modelcar europe-west4-docker.pkg.dev/llm-platform-dev/modelcars/qwen2.5-0.5b-instruct@"
        f"{conventions.UNPUBLISHED} is not in this environment yet (no entry in clusters/dev/release.yaml: "
        "run `deliver modelcar publish qwen2.5-0.5b-instruct --env dev`), then re-render"
    ) in res.err
    res = deliver("layers", "render", "--env", "staging", "--write", repo=repo_copy)
    assert "run `deliver promote --to staging`" in res.err
    (deployment,) = _by_kind(repo_copy, "staging", "Deployment")
    vllm = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert (
        vllm
        == f"europe-west4-docker.pkg.dev/llm-platform-staging/modelcars/vllm-openai@{conventions.UNPUBLISHED}"
    )
    ref = f"europe-west4-docker.pkg.dev/llm-platform-dev/modelcars/qwen2.5-0.5b-instruct@sha256:{'cd' * 32}"
    _write_release(repo_copy, "dev", {"qwen2.5-0.5b-instruct": {"kind": "modelcar", "ref": ref}})
    res = deliver("layers", "render", "--env", "dev", "--write", repo=repo_copy)
    assert res.code == 0 and "warning" not in res.err


def test_malformed_release_is_a_clear_error(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    (repo_copy / "clusters/dev/release.yaml").write_text(
        "env: dev\nartifacts:\n  qwen2.5-0.5b-instruct: {kind: modelcar, ref: 'r.example/x:latest'}\n"
    )
    res = deliver("layers", "render", "--env", "dev", "--check", repo=repo_copy)
    assert res.code == 2
    assert "clusters/dev/release.yaml:3: artifacts.qwen2.5-0.5b-instruct.ref" in res.err


def test_check_json_lists_each_drifted_file(deliver, repo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    keda = repo_copy / "clusters/prod/layers/platform/keda.yaml"
    _edit(keda, "targetRevision: 2.20.1", "targetRevision: 2.20.2")
    res = deliver("layers", "render", "--env", "prod", "--check", "--json", repo=repo_copy)
    assert res.code == 1
    data = json.loads(res.out)  # one document
    assert data["ok"] is False and data["env"] == "prod"
    assert data["problems"] == [
        {
            "where": "clusters/prod/layers/platform/keda.yaml",
            "location": {"file": "clusters/prod/layers/platform/keda.yaml", "line": None, "key": ""},
            "what": "differs from what environments/prod/config.yaml, clusters/pins.yaml and "
            "clusters/prod/release.yaml render: it is generated, and --write replaces a hand edit here",
            "fix": "make the change in environments/prod/config.yaml, clusters/pins.yaml and "
            "clusters/prod/release.yaml (the file's header names them), then deliver layers render "
            "--env prod --write; to keep this edit, copy it there first",
        }
    ]


@pytest.mark.parametrize("env", ENVS)
def test_every_gpu_namespace_has_a_local_queue_on_the_gpu_cluster_queue(env: str) -> None:
    """Kueue v1beta2: a LocalQueue wherever GPU pods run, pointing at the ClusterQueue of the GPU flavor."""
    docs = load_layer_manifests(REPO, env)
    (cq,) = [m.doc for m in docs if m.kind == "ClusterQueue"]
    queues = {m.namespace: m.doc for m in docs if m.kind == "LocalQueue"}
    workloads = ("Deployment", "InferenceService", "LLMInferenceService")
    gpu_namespaces = {m.namespace for m in docs if m.kind in workloads and "'nvidia.com/gpu'" in str(m.doc)}
    assert gpu_namespaces and gpu_namespaces <= set(queues), (gpu_namespaces, sorted(queues))
    selector = cq["spec"]["namespaceSelector"]["matchLabels"]
    namespaces = {m.name: m.doc for m in docs if m.kind == "Namespace"}
    for ns, queue in queues.items():
        assert queue["apiVersion"] == "kueue.x-k8s.io/v1beta2"
        assert queue["spec"]["clusterQueue"] == cq["metadata"]["name"]
        assert namespaces[ns]["metadata"]["labels"].items() >= selector.items(), ns
    (resources,) = [g["flavors"][0]["resources"] for g in cq["spec"]["resourceGroups"]]
    quota = str(envconfig.load_env(REPO, env).gpu.max_gpus)
    assert {"name": "nvidia.com/gpu", "nominalQuota": quota} in resources
