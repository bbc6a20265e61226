"""Policy checks (delivery/policy.py): the committed envs are clean, and each rule catches its violation.

Every broken case edits a throwaway copy of the repo the way a careless change would, then asserts the
finding's rule id, file, resource, JSON path and message.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from delivery import config as envconfig
from delivery import gitops as layers
from delivery.validation.findings import Finding
from delivery.validation.manifests import load_env_manifests
from delivery.validation.policy import check_policies, check_tofu, check_warnings

REPO = Path(__file__).resolve().parent.parent
LAYERS = "clusters/{env}/layers"
VLLM = "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"
ISVC = (
    "clusters/dev/layers/components/serving/kserve-modelcar/"
    "inferenceservice-serving-qwen2.5-0.5b-instruct-kserve.yaml"
)
VLLM_IMAGE = (
    "vllm/vllm-openai:v0.23.0@sha256:6d8429e38e3747723ca07ee1b17972e09bb9c51c4032b266f24fb1cc3b22ed8f"
)
LITELLM = "clusters/dev/layers/llm-gateway/litellm.yaml"
ROUTE = "clusters/dev/layers/components/routing/model-routes/httproute-serving-qwen2.5-0.5b-instruct.yaml"
KEDA_APP = "clusters/dev/layers/platform/keda.yaml"
LLMD = (
    "clusters/prod/layers/components/serving/llm-d/llminferenceservice-llm-d-qwen2.5-0.5b-instruct-llm-d.yaml"
)


def findings(repo: Path, env: str) -> list[Finding]:
    return check_policies(repo, envconfig.load_env(repo, env), load_env_manifests(repo, env))


def only(repo: Path, env: str, rule: str) -> list[Finding]:
    return [f for f in findings(repo, env) if f.check == rule]


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def add(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_committed_environments_are_clean(env: str) -> None:
    assert findings(REPO, env) == []


def test_tag_instead_of_digest(repo_copy: Path) -> None:
    edit(
        repo_copy,
        VLLM,
        f"image: {VLLM_IMAGE}",
        "image: vllm/vllm-openai:v0.23.0",
    )
    (f,) = only(repo_copy, "dev", "image-digest")
    assert f.file == VLLM and f.resource == "Deployment/serving/raw-vllm"
    assert f.path == "/spec/template/spec/containers/0/image"
    assert "'vllm/vllm-openai:v0.23.0' is not pinned by digest (tag: v0.23.0)" in f.message
    assert "@sha256:<digest>" in f.message


def test_images_in_chart_values_are_checked(repo_copy: Path) -> None:
    edit(
        repo_copy,
        KEDA_APP,
        "releaseName: keda",
        "releaseName: keda\n      valuesObject:\n"
        "        webhooks: {image: ghcr.io/kedacore/keda-admission-webhooks}\n"
        "        operator: {image: {repository: ghcr.io/kedacore/keda, tag: 2.20.1}}",
    )
    got = only(repo_copy, "dev", "image-digest")
    assert [(f.resource, f.path) for f in got] == [
        ("Application/argocd/keda", "/spec/source/helm/valuesObject/webhooks/image"),
        ("Application/argocd/keda", "/spec/source/helm/valuesObject/operator/image"),
    ]
    assert "tag: none (defaults to latest)" in got[0].message
    assert "'ghcr.io/kedacore/keda' (tag 2.20.1) has no digest" in got[1].message


def test_oci_model_reference_without_digest(repo_copy: Path) -> None:
    edit(repo_copy, ISVC, "qwen2.5-0.5b-instruct@sha256:" + "0" * 64, "qwen2.5-0.5b-instruct:latest")
    (f,) = only(repo_copy, "dev", "oci-digest")
    assert f.resource == "InferenceService/serving/qwen2.5-0.5b-instruct-kserve"
    assert f.path == "/spec/predictor/containers/0/env/0/value"
    assert "qwen2.5-0.5b-instruct:latest' is not pinned by digest" in f.message


def test_demo_on_the_request_path(repo_copy: Path) -> None:
    edit(
        repo_copy,
        LITELLM,
        "api_base: http://inference-gateway.inference.svc.cluster.local/v1",
        "api_base: http://qwen2.5-0.5b-instruct-cpu-predictor.demos.svc.cluster.local/v1",
    )
    (f,) = only(repo_copy, "dev", "demo-on-request-path")
    assert f.file == LITELLM and f.resource == "Application/argocd/litellm"
    assert f.path == "/spec/source/helm/valuesObject/proxy_config/model_list/0/litellm_params/api_base"
    assert f.message.startswith("the llm-gateway layer calls a demo service")
    assert "must never be on the request path" in f.message


def test_route_to_a_demo_pool_crosses_namespaces(repo_copy: Path) -> None:
    edit(repo_copy, ROUTE, "name: raw-vllm", "name: raw-vllm\n          namespace: demo-tenant-a")
    got = {f.check: f for f in findings(repo_copy, "dev")}
    assert got["demo-on-request-path"].message == (
        "the routing layer references demo namespace 'demo-tenant-a'; "
        "demos are illustrations and must never be on the request path"
    )
    assert got["route-pool-namespace"].path == "/spec/rules/0/backendRefs/0/namespace"
    assert "agentgateway ignores ReferenceGrants" in got["route-pool-namespace"].message


def test_demo_labelled_resource_in_routing(repo_copy: Path) -> None:
    rel = (
        "clusters/staging/layers/components/routing/inference-gateway/"
        "gateway-inference-inference-gateway.yaml"
    )
    edit(
        repo_copy,
        rel,
        "llm-platform/layer: routing",
        "llm-platform/layer: routing\n    llm-platform/demo: 'true'",
    )
    (f,) = only(repo_copy, "staging", "demo-on-request-path")
    assert f.resource == "Gateway/inference/inference-gateway"
    assert f.path == "/metadata/labels/llm-platform~1demo"
    assert f.message == (
        "the routing layer holds a resource labelled llm-platform/demo=true; "
        "demos are illustrations and must never be on the request path"
    )


def test_llm_d_with_one_gpu(repo_copy: Path) -> None:
    shutil.copytree(
        repo_copy / "clusters/prod/layers/components/serving/llm-d",
        repo_copy / LAYERS.format(env="dev") / "components/serving/llm-d",
    )
    got = only(repo_copy, "dev", "llm-d-gpus")
    assert [f.file for f in got] == [LLMD.replace("prod", "dev")] * 2
    assert "features.llm-d is false in environments/dev/config.yaml" in got[0].message
    assert got[1].message == (
        "llm-d needs at least 2 GPUs (prefill + decode) but env 'dev' has gpu.perNode 1 x gpu.maxNodes 1 = "
        "1 GPU(s); serve with raw vLLM, or raise the GPU pool"
    )


def test_llm_d_asking_for_more_gpus_than_the_pool(repo_copy: Path) -> None:
    edit(repo_copy, LLMD, "  prefill:\n    replicas: 1", "  prefill:\n    replicas: 4")
    (f,) = only(repo_copy, "prod", "llm-d-gpus")
    assert f.resource == "LLMInferenceService/llm-d/qwen2.5-0.5b-instruct-llm-d" and f.path == "/spec"
    assert f.message == (
        "llm-d asks for 5 GPUs (decode 1 + prefill 4) but env 'prod' has "
        "gpu.perNode 1 x gpu.maxNodes 4 = 4 GPU(s)"
    )


def test_secret_with_data(repo_copy: Path) -> None:
    rel = "clusters/staging/layers/components/llm-gateway/litellm-bootstrap/secret-litellm-master-key.yaml"
    add(
        repo_copy,
        rel,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: litellm-master-key, namespace: llm-gateway}\n"
        "stringData: {PROXY_MASTER_KEY: sk-1234}\n",
    )
    (f,) = only(repo_copy, "staging", "secret-data")
    assert f.file == rel and f.resource == "Secret/llm-gateway/litellm-master-key" and f.path == "/stringData"
    assert "Secret carries stringData (PROXY_MASTER_KEY) in git" in f.message
    assert "sk-1234" not in f.message and "ExternalSecret" in f.message


def test_application_without_project_or_destination(repo_copy: Path) -> None:
    edit(repo_copy, KEDA_APP, "  project: platform\n", "")
    edit(
        repo_copy,
        "clusters/dev/layers/platform/kueue.yaml",
        "  destination:\n    server: https://kubernetes.default.svc\n",
        "  destination:\n",
    )
    got = only(repo_copy, "dev", "app-project-destination")
    assert [(f.resource, f.path) for f in got] == [
        ("Application/argocd/keda", "/spec/project"),
        ("Application/argocd/kueue", "/spec/destination"),
    ]
    assert "Application has no spec.project" in got[0].message
    assert "Application has no destination (spec.destination.server or .name)" in got[1].message


def test_application_naming_an_undefined_project(repo_copy: Path) -> None:
    edit(repo_copy, KEDA_APP, "project: platform", "project: default")
    (f,) = only(repo_copy, "dev", "app-project-destination")
    assert f.resource == "Application/argocd/keda" and f.path == "/spec/project"
    assert f.message == (
        "Application names AppProject 'default', which no layer defines "
        "(defined: demos, layers, llm-gateway, platform, routing, serving)"
    )


@pytest.mark.parametrize("revision", ["^2.20.0", "2.x", "latest", "*", ">=2.0.0 <3.0.0", ""])
def test_chart_not_pinned_to_an_exact_version(repo_copy: Path, revision: str) -> None:
    edit(repo_copy, KEDA_APP, "targetRevision: 2.20.1", f"targetRevision: '{revision}'")
    (f,) = only(repo_copy, "dev", "chart-pin")
    assert f.resource == "Application/argocd/keda" and f.path == "/spec/source/targetRevision"
    want = "no version" if not revision else f"{revision!r} is not an exact version"
    assert f.message.startswith(f"chart keda is not pinned: {want}")


def test_crd_git_source_on_a_branch(repo_copy: Path) -> None:
    edit(
        repo_copy,
        "clusters/prod/layers/platform/gateway-api-crds.yaml",
        "targetRevision: v1.5.0",
        "targetRevision: main",
    )
    (f,) = only(repo_copy, "prod", "chart-pin")
    assert f.path == "/spec/sources/0/targetRevision"
    assert "git source https://github.com/kubernetes-sigs/gateway-api is not pinned: 'main'" in f.message


def test_wrong_branch_repo_and_env(repo_copy: Path) -> None:
    rel = "clusters/staging/layers/serving/raw-vllm.yaml"
    edit(repo_copy, rel, "targetRevision: main", "targetRevision: develop")
    edit(repo_copy, rel, "path: clusters/staging/", "path: clusters/prod/")
    edit(
        repo_copy,
        "clusters/staging/layers/routing/model-routes.yaml",
        "example-org/llm-platform.git",
        "someone/fork.git",
    )
    got = only(repo_copy, "staging", "repo-branch")
    assert [(f.file, f.path) for f in got] == [
        ("clusters/staging/layers/routing/model-routes.yaml", "/spec/source/repoURL"),
        (rel, "/spec/source/targetRevision"),
        (rel, "/spec/source/path"),
    ]
    assert "tracks 'develop', but env 'staging' tracks repoBranch 'main'" in got[1].message
    assert "outside this environment (clusters/staging/)" in got[2].message


def test_root_on_the_wrong_branch(repo_copy: Path) -> None:
    edit(repo_copy, "clusters/prod/root.yaml", "targetRevision: main", "targetRevision: HEAD")
    (f,) = only(repo_copy, "prod", "repo-branch")
    assert f.file == "clusters/prod/root.yaml" and f.resource == "Application/argocd/layer-platform"
    assert f.path == "/spec/source/targetRevision"
    assert f.message == (
        "the platform repo source tracks 'HEAD', but env 'prod' tracks repoBranch 'main' "
        "(environments/prod/config.yaml); set targetRevision: main"
    )


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("compute.cnrm.cloud.google.com/v1beta1", "ComputeInstance"),
        ("storage.gcp.upbound.io/v1beta1", "Bucket"),
        ("pkg.crossplane.io/v1", "Provider"),
    ],
)
def test_cloud_resource_kind_under_clusters(repo_copy: Path, api_version: str, kind: str) -> None:
    rel = "clusters/staging/layers/components/platform/platform-config/cloud.yaml"
    add(repo_copy, rel, f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: thing}}\nspec: {{}}\n")
    (f,) = only(repo_copy, "staging", "cloud-resource-kind")
    assert f.file == rel and f.resource == f"{kind}/thing" and f.path == "/apiVersion"
    assert f"{kind} ({api_version}) is a cloud resource: the substrate belongs to OpenTofu" in f.message


def test_kubernetes_and_helm_providers_under_tofu(repo_copy: Path) -> None:
    add(
        repo_copy,
        "tofu/modules/gke/in_cluster.tf",
        '# provider "kubernetes" in a comment is fine\n'
        'terraform {\n  required_providers {\n    helm = { source = "hashicorp/helm" }\n  }\n}\n'
        'provider "kubernetes" {\n  host = "x"\n}\n'
        'resource "helm_release" "argocd" {\n  name = "argocd"\n}\n',
    )
    got = [(f.file, f.resource) for f in check_tofu(repo_copy)]
    assert got == [
        ("tofu/modules/gke/in_cluster.tf:7", "provider 'kubernetes'"),
        ("tofu/modules/gke/in_cluster.tf:4", "provider source 'helm'"),
        ("tofu/modules/gke/in_cluster.tf:10", "helm_release"),
    ]
    got_env = only(repo_copy, "dev", "tofu-provider")
    assert len(got_env) == 3 and "the in-cluster lifecycle belongs to Argo CD" in got_env[0].message
    assert check_tofu(REPO) == []


def test_layer_outside_the_profile(repo_copy: Path) -> None:
    for sub in ("demos", "components/demos"):
        shutil.copytree(repo_copy / "clusters/dev/layers" / sub, repo_copy / "clusters/staging/layers" / sub)
    got = only(repo_copy, "staging", "profile-layers")
    dirs = [f for f in got if f.resource == ""]
    assert [f.file for f in dirs] == [
        "clusters/staging/layers/components/demos",
        "clusters/staging/layers/demos",
    ]
    assert dirs[0].message.startswith(
        "layer 'demos' is outside profile 'llm-gateway' of env 'staging' "
        "(layers: platform, serving, routing, llm-gateway)"
    )
    per_resource = [f for f in got if f.resource]
    assert per_resource and all("outside profile 'llm-gateway'" in f.message for f in per_resource)
    # the demo Applications also point at dev's tree
    assert any(f.check == "repo-branch" for f in findings(repo_copy, "staging"))


def test_missing_layer_directory(repo_copy: Path) -> None:
    shutil.rmtree(repo_copy / "clusters/prod/layers/routing")
    (f,) = [f for f in only(repo_copy, "prod", "profile-layers") if not f.resource]
    assert f.file == "clusters/prod/layers/routing"
    assert "deploys layer 'routing' but the directory is missing" in f.message


def test_old_inference_pool_api(repo_copy: Path) -> None:
    rel = "clusters/dev/layers/components/routing/model-routes/inferencepool-serving-legacy.yaml"
    add(
        repo_copy,
        rel,
        "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"
        "metadata: {name: legacy, namespace: serving}\n"
        "spec: {selector: {app: raw-vllm}, targetPortNumber: 8000, extensionRef: {name: legacy-epp}}\n",
    )
    edit(repo_copy, ROUTE, "group: inference.networking.k8s.io", "group: inference.networking.x-k8s.io")
    got = sorted(only(repo_copy, "dev", "inference-api"), key=lambda f: f.file, reverse=True)
    assert [(f.file, f.path) for f in got] == [
        (rel, "/apiVersion"),
        (ROUTE, "/spec/rules/0/backendRefs/0/group"),
    ]
    assert "uses the retired alpha API inference.networking.x-k8s.io/v1alpha2" in got[0].message
    assert "use inference.networking.k8s.io" in got[1].message


def test_scale_to_zero_without_a_wake_up_signal(repo_copy: Path) -> None:
    rel = "clusters/prod/layers/components/serving/raw-vllm/scaledobject-serving-raw-vllm.yaml"
    text = (repo_copy / rel).read_text()
    (repo_copy / rel).write_text(text[: text.index("    - type: prometheus\n      name: gateway-requests")])
    (f,) = only(repo_copy, "prod", "scale-from-zero")
    assert f.resource == "ScaledObject/serving/raw-vllm" and f.path == "/spec/triggers"
    assert "every trigger reads a metric of the scaled pods (vllm:*, cpu, memory)" in f.message
    edit(repo_copy, rel, "minReplicaCount: 0", "minReplicaCount: 1")
    assert only(repo_copy, "prod", "scale-from-zero") == []


def test_unpublished_modelcar_is_a_warning_on_every_reference(repo_copy: Path) -> None:
    """The all-zero pins.yaml digest passes the rules but is named wherever it is deployed."""
    cfg = envconfig.load_env(REPO, "dev")
    got = check_warnings(cfg, load_env_manifests(REPO, "dev"))
    assert [(f.resource, f.path) for f in got] == [
        ("InferenceService/demos/qwen2.5-0.5b-instruct-cpu", "/spec/predictor/containers/0/env/0/value"),
        ("InferenceService/serving/qwen2.5-0.5b-instruct-kserve", "/spec/predictor/containers/0/env/0/value"),
        ("Deployment/serving/raw-vllm", "/spec/template/spec/initContainers/0/image"),
    ]
    assert got[2].check == "unpublished-modelcar" and got[2].message == (
        "europe-west4-docker.pkg.dev/llm-platform-dev/modelcars/qwen2.5-0.5b-instruct@sha256:"
        + "0" * 64
        + " has the all-zero placeholder digest (clusters/pins.yaml modelcars): the modelcar was never "
        "published and cannot be pulled; run `deliver modelcar publish qwen2.5-0.5b-instruct --env dev`, "
        "then `deliver layers render --env dev --write`"
    )
    (repo_copy / "modelcars/qwen2.5-0.5b-instruct.lock.yaml").write_text(
        f"name: qwen2.5-0.5b-instruct\nmanifest: {{digest: 'sha256:{'12' * 32}'}}\n"
    )
    layers.write_layers(repo_copy, envconfig.load_env(repo_copy, "dev"))
    assert check_warnings(cfg, load_env_manifests(repo_copy, "dev")) == []
    assert findings(repo_copy, "dev") == []
