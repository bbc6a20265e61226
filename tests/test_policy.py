"""Policy checks (delivery/validation/policy/): the committed envs are clean, each rule catches its
violation, and the registry agrees with the policy table of docs/layers.md.

Every broken case edits a throwaway copy of the repo the way a careless change would, then asserts the
finding's rule id, file, resource, JSON path, message and fix.
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
from pathlib import Path

import pytest

from delivery import config as envconfig
from delivery import gitops as layers
from delivery.validation.findings import Finding, Status
from delivery.validation.manifests import load_env_manifests
from delivery.validation.policy import RULES, Scope, check_policies, check_tofu, check_warnings, rules_table

REPO = Path(__file__).resolve().parent.parent
LAYERS = "clusters/{env}/layers"
VLLM = "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"
ISVC = (
    "clusters/dev/layers/components/serving/kserve-modelcar/"
    "inferenceservice-serving-kserve-qwen2.5-0.5b-instruct-kserve.yaml"
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
    found = check_policies(repo, envconfig.load_env(repo, env), load_env_manifests(repo, env))
    for f in found:  # every policy finding fails validation and says how to repair it
        assert f.status is Status.FAILURE and f.fix, f.render()
        assert f.render().endswith(f"\n  fix: {f.fix}")
    return found


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
    assert "@sha256:<digest>" in f.fix
    assert f.render() == (
        f"{VLLM}: Deployment/serving/raw-vllm: [image-digest] at /spec/template/spec/containers/0/image "
        "image 'vllm/vllm-openai:v0.23.0' is not pinned by digest (tag: v0.23.0)\n"
        "  fix: pin it as <image>@sha256:<digest> (see clusters/pins.yaml)"
    )


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
    assert f.resource == "InferenceService/serving-kserve/qwen2.5-0.5b-instruct-kserve"
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
    assert (got[1].message, got[1].fix) == (
        "llm-d needs at least 2 GPUs (prefill + decode) but env 'dev' has gpu.perNode 1 x gpu.maxNodes 1 = "
        "1 GPU(s)",
        "serve with raw vLLM, or raise the GPU pool",
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
    assert "sk-1234" not in f.message + f.fix and "ExternalSecret" in f.fix


def test_a_json_manifest_is_validated_like_yaml(repo_copy: Path) -> None:
    """Argo CD's directory sources apply .json files too: a JSON Secret with data is caught, and a JSON
    file is a manifest of its layer for every rule."""
    rel = "clusters/staging/layers/components/llm-gateway/litellm-bootstrap/secret-litellm-master-key.json"
    add(
        repo_copy,
        rel,
        '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": "llm-gateway"},'
        ' "data": {"PROXY_MASTER_KEY": "c2stMTIzNA=="}}\n',
    )
    (f,) = only(repo_copy, "staging", "secret-data")
    assert (f.file, f.resource, f.path) == (rel, "Secret/llm-gateway/k", "/data")
    assert rel in [str(m.path) for m in load_env_manifests(repo_copy, "staging")]
    notes = repo_copy / "clusters/staging/layers/components/llm-gateway/litellm-bootstrap/NOTES.txt"
    notes.write_text("not a manifest: Argo CD does not apply it\n")
    assert str(notes.relative_to(repo_copy)) not in [
        str(m.path) for m in load_env_manifests(repo_copy, "staging")
    ]


LIMIT = 1 << 20  # the API server's MaxSecretSize: a ConfigMap's or Secret's data, decoded


SSA = {"argocd.argoproj.io/sync-options": "ServerSideApply=true"}  # no last-applied annotation


def _config_map(name: str, data: dict[str, object], key: str = "data", **meta: object) -> str:
    import json

    annotations = {**SSA, **(meta.pop("annotations", None) or {})}  # type: ignore[dict-item]
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "keda", "annotations": annotations, **meta},
    }
    doc[key] = data
    return json.dumps(doc)


def test_objects_the_api_server_refuses_for_their_size(repo_copy: Path) -> None:
    """ConfigMap/Secret data over 1 MiB (text, base64 binaryData, Secret data and stringData),
    annotations over 256 KiB and any object over 1.5 MiB are findings; exactly 1 MiB passes."""
    import base64

    layer = "clusters/dev/layers/platform"
    add(repo_copy, f"{layer}/cm-at-limit.json", _config_map("at-limit", {"a": "x" * (LIMIT - 1), "b": "y"}))
    add(repo_copy, f"{layer}/cm-over.json", _config_map("over", {"a": "x" * LIMIT, "b": "y"}))
    # 0.8 MiB as text + 0.3 MiB of binary (0.4 MiB once base64-encoded): counted decoded, over in sum
    add(
        repo_copy,
        f"{layer}/cm-mixed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mixed, namespace: keda, annotations: "
        "{argocd.argoproj.io/sync-options: ServerSideApply=true}}\n"
        f"data: {{t: {'x' * (800 << 10)}}}\n"
        f"binaryData: {{b: {base64.b64encode(bytes(300 << 10)).decode()}}}\n",
    )
    # base64 of 0.9 MiB is 1.2 MiB of text: under the limit, as the API server counts it
    add(
        repo_copy,
        f"{layer}/cm-binary-under.json",
        _config_map("binary-under", {"b": base64.b64encode(bytes(900 << 10)).decode()}, key="binaryData"),
    )
    add(
        repo_copy,
        f"{layer}/big-notes.json",
        _config_map("notes", {"a": "1"}, annotations={"note": "n" * (257 << 10)}),
    )
    # under both the data and the annotation limits, but 1.8 MiB in all (an unknown field's bytes)
    huge = _config_map("huge", {"a": "x" * (900 << 10)}, annotations={"n": "z" * (200 << 10)})
    add(repo_copy, f"{layer}/huge.json", huge[:-1] + ', "extra": "' + "q" * (700 << 10) + '"}')
    found = {(f.resource, f.message.split(";")[0]) for f in only(repo_copy, "dev", "object-size")}
    assert found == {
        ("ConfigMap/keda/over", f"ConfigMap data is {LIMIT + 1:,} bytes"),
        ("ConfigMap/keda/mixed", f"ConfigMap data is {(800 << 10) + (300 << 10):,} bytes"),
        (
            "ConfigMap/keda/notes",
            f"annotations are {len('note') + (257 << 10) + len(''.join(*SSA.items())):,} bytes",
        ),
        ("ConfigMap/keda/huge", "the object is 1.8 MiB as JSON"),
    }, found
    secret = "clusters/dev/layers/platform/secret-big.yaml"
    add(
        repo_copy,
        secret,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: big, namespace: keda, annotations: "
        "{argocd.argoproj.io/sync-options: ServerSideApply=true}}\n"
        f"data: {{k: {base64.b64encode(bytes(600 << 10)).decode()}}}\n"
        f"stringData: {{s: {'s' * (600 << 10)}}}\n",
    )
    (f,) = [f for f in only(repo_copy, "dev", "object-size") if f.resource == "Secret/keda/big"]
    assert f.message.startswith(f"Secret data is {1200 << 10:,} bytes") and "split it" in f.fix


def test_an_object_applied_client_side_must_fit_its_last_applied_annotation(repo_copy: Path) -> None:
    """Argo CD syncs client-side unless told: kubectl then copies the object into an annotation,
    which the 256 KiB annotation limit caps; a 300 KiB ConfigMap is fine only server-side."""
    import json

    component = "clusters/dev/layers/components/platform/platform-config"
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "keda"}}
    doc["data"] = {"a": "x" * (300 << 10)}
    add(repo_copy, f"{component}/configmap-keda-big.json", json.dumps(doc))
    (f,) = only(repo_copy, "dev", "object-size")
    assert "is applied client-side" in f.message and "ServerSideApply=true" in f.fix
    doc["metadata"]["annotations"] = SSA  # type: ignore[index]
    add(repo_copy, f"{component}/configmap-keda-big.json", json.dumps(doc))
    assert only(repo_copy, "dev", "object-size") == []
    # the Application's own syncOptions count too
    app = "clusters/dev/layers/platform/platform-config.yaml"
    del doc["metadata"]["annotations"]  # type: ignore[attr-defined]
    add(repo_copy, f"{component}/configmap-keda-big.json", json.dumps(doc))
    edit(repo_copy, app, "    syncOptions:\n", "    syncOptions:\n      - ServerSideApply=true\n")
    assert only(repo_copy, "dev", "object-size") == []


# --- the request path as the only path (NetworkPolicies) and restricted pods -------------------------

SERVING_POLICIES = "clusters/dev/layers/components/serving/serving-namespaces"
GATEWAY_POLICIES = "clusters/dev/layers/components/routing/inference-gateway"
VLLM = "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"


def _policy(name: str, namespace: str, ingress: str, types: str = "[Ingress]") -> str:
    return (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  podSelector: {{}}\n  policyTypes: {types}\n  ingress:\n{ingress}"
    )


def test_the_shipped_policies_let_in_exactly_the_request_path() -> None:
    """What the rendered NetworkPolicies open, computed from them, is the glossary's graph."""
    from delivery.config import load_env
    from delivery.validation.manifests import load_env_manifests
    from delivery.validation.policy.network import openings

    manifests = load_env_manifests(REPO, "prod")
    opened = {
        (o.source, m.namespace, tuple(sorted(o.ports)) if o.ports else None)
        for m in manifests
        if m.kind == "NetworkPolicy"
        for o in openings(m)
    }
    assert load_env(REPO, "prod").features.kserve and load_env(REPO, "prod").features.llm_d
    assert opened == {
        ("inference", "serving", (8000, 9002)),  # the gateway -> vLLM and the EPP
        ("serving", "serving", (8000,)),  # the EPP scrapes vLLM
        ("monitoring", "serving", (8000, 9090)),
        ("inference", "serving-kserve", (8080,)),
        ("monitoring", "serving-kserve", (8080,)),
        ("llm-gateway", "inference", None),  # LiteLLM -> the gateway
        ("monitoring", "inference", (15020,)),
        ("*", "kserve", (9443,)),  # the API server's webhook calls
        ("monitoring", "kserve", None),
        ("inference", "llm-d", None),  # prod has llm-d: the gateway -> its scheduler and servers
        ("llm-d", "llm-d", None),  # prefill <-> decode
        ("monitoring", "llm-d", None),
    }
    assert not [f for f in findings(REPO, "prod") if f.check in ("request-path", "pod-security")]


@pytest.mark.parametrize(
    ("namespace", "ingress", "expected"),
    [
        (
            "serving",
            "    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: demo-tenant-a}}}]"
            "\n",
            "lets namespace demo-tenant-a reach serving on every port",
        ),
        ("inference", "    - {}\n", "lets any namespace (a demo tenant's too) reach inference on every port"),
        (
            "serving",
            "    - from: [{namespaceSelector: {matchLabels: {llm-platform/layer: routing}}}]\n",
            "selects namespaces by a label their owners can set",
        ),
        (
            "serving",
            "    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: llm-gateway}}}]\n",
            "lets namespace llm-gateway reach serving on every port",  # LiteLLM around the gateway
        ),
        (
            "serving",
            "    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]\n"
            "      ports: [{port: 22}]\n",
            "lets namespace monitoring reach serving on port 22",
        ),
        ("serving", "    - from: [{ipBlock: {cidr: 10.0.0.0/8}}]\n", "lets any namespace"),
        (
            "serving",
            "    - from: [{podSelector: {}}]\n      ports: [{port: 9000, endPort: 9001}]\n",
            "lets namespace serving reach serving on port 9000, 9001",
        ),
        (
            "serving",
            "    - from: [{namespaceSelector: {}}]\n      ports: [{port: http}]\n",
            "lets any namespace (a demo tenant's too) reach serving on every port",
        ),
        (
            "serving",
            "    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: inference}}}]\n"
            "      ports: [{port: 8000, protocol: UDP}]\n",
            "lets namespace inference reach serving on every port",  # the graph is TCP
        ),
    ],
    ids=[
        "tenant-to-vllm",
        "any-to-gateway",
        "spoofable-label",
        "litellm-bypass",
        "wrong-port",
        "ipblock",
        "own-namespace-other-port",
        "named-port-any-namespace",
        "udp",
    ],
)
def test_a_hole_in_the_request_path_is_found(
    repo_copy: Path, namespace: str, ingress: str, expected: str
) -> None:
    rel = f"{SERVING_POLICIES}/networkpolicy-{namespace}-hole.yaml"
    add(repo_copy, rel, _policy("hole", namespace, ingress))
    (f,) = only(repo_copy, "dev", "request-path")
    assert (f.file, f.resource) == (rel, f"NetworkPolicy/{namespace}/hole")
    assert expected in f.message and "not an edge of the request path" in f.message, f.message
    assert f.path.startswith("/spec/ingress/0") and "LiteLLM -> the gateway" in f.fix


def test_egress_policies_and_allowed_edges_are_not_holes(repo_copy: Path) -> None:
    add(
        repo_copy,
        f"{SERVING_POLICIES}/networkpolicy-serving-egress.yaml",
        _policy("egress", "serving", "    - {}\n", "[Egress]").replace("ingress:", "egress:"),
    )
    add(
        repo_copy,
        f"{SERVING_POLICIES}/networkpolicy-serving-again.yaml",
        _policy(
            "again",
            "serving",
            "    - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, "
            "operator: In, values: [inference]}]}}]\n      ports: [{port: 8000}]\n",
        ),
    )
    assert only(repo_copy, "dev", "request-path") == []


def test_holes_the_api_server_defaults_open_are_found(repo_copy: Path) -> None:
    """An empty policyTypes means [Ingress]; a policy without a namespace lands in its
    Application's destination; both are evaluated like the rest."""
    add(repo_copy, f"{SERVING_POLICIES}/networkpolicy-serving-empty-types.yaml",
        _policy("empty-types", "serving", "    - {}\n", "[]"))  # fmt: skip
    add(repo_copy, f"{SERVING_POLICIES}/networkpolicy-no-namespace.yaml",
        _policy("no-ns", "serving", "    - {}\n").replace(", namespace: serving", ""))  # fmt: skip
    got = {(f.resource, f.message.split(":")[0]) for f in only(repo_copy, "dev", "request-path")}
    hole = "lets any namespace (a demo tenant's too) reach serving on every port"
    assert got == {("NetworkPolicy/serving/empty-types", hole), ("NetworkPolicy/no-ns", hole)}, got


def test_a_namespace_argo_creates_still_needs_its_default_deny(repo_copy: Path) -> None:
    """kserve has no Namespace document: the Applications deploying into it put it on the path."""
    for p in (repo_copy / SERVING_POLICIES).glob("networkpolicy-kserve-*.yaml"):
        p.unlink()
    (f,) = only(repo_copy, "dev", "request-path")
    assert f.resource == "Namespace/kserve" and "no default-deny" in f.message


def test_a_name_selector_narrowed_by_more_labels_is_still_bounded_by_the_name(repo_copy: Path) -> None:
    narrow = "{kubernetes.io/metadata.name: inference, team: x}"
    add(
        repo_copy,
        f"{SERVING_POLICIES}/networkpolicy-serving-narrow.yaml",
        _policy("narrow", "serving", f"    - from: [{{namespaceSelector: {{matchLabels: {narrow}}}}}]\n"
                "      ports: [{port: 8000}]\n"),
    )  # fmt: skip
    assert only(repo_copy, "dev", "request-path") == []


@pytest.mark.parametrize("namespace", ["serving", "inference", "kserve"])
def test_a_request_path_namespace_without_default_deny_is_found(repo_copy: Path, namespace: str) -> None:
    folder = GATEWAY_POLICIES if namespace == "inference" else SERVING_POLICIES
    (repo_copy / folder / f"networkpolicy-{namespace}-default-deny-ingress.yaml").unlink()
    (f,) = only(repo_copy, "dev", "request-path")
    assert f.resource == f"Namespace/{namespace}" and "no default-deny ingress NetworkPolicy" in f.message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "            capabilities:\n              drop:\n                - ALL\n",
            "",
            "container modelcar does not drop ALL capabilities",
        ),
        (
            "            allowPrivilegeEscalation: false\n",
            "            allowPrivilegeEscalation: true\n",
            "container modelcar may escalate privileges",
        ),
        (
            "      shareProcessNamespace: true\n",
            "      shareProcessNamespace: true\n      hostNetwork: true\n",
            "hostNetwork is set",
        ),
        (
            "        - name: model-link\n          emptyDir: {}\n",
            "        - name: model-link\n          hostPath: {path: /var/lib}\n",
            "volume type hostPath",
        ),
        ("            runAsUser: 65532\n", "            runAsUser: 0\n", "container modelcar runs as uid 0"),
        (
            "        seccompProfile:\n          type: RuntimeDefault\n      initContainers:",
            "      initContainers:",
            None,
        ),  # the containers still carry their own profile: fine
        (
            "            - name: http\n              containerPort: 8000\n",
            "            - name: http\n              containerPort: 8000\n              hostPort: 8000\n",
            "container vllm uses a hostPort",
        ),
        (
            "      securityContext:\n        runAsUser: 65532\n",
            "      securityContext:\n        runAsUser: 0\n",
            "the pod runs as uid 0",
        ),
        (
            "      securityContext:\n        runAsUser: 65532\n",
            "      securityContext:\n        sysctls: [{name: kernel.msgmax, value: '1'}]\n"
            "        runAsUser: 65532\n",
            "unsafe sysctls kernel.msgmax",
        ),
        (
            "            allowPrivilegeEscalation: false\n",
            "            allowPrivilegeEscalation: false\n            procMount: Unmasked\n",
            "container modelcar unmasks /proc",
        ),
    ],
    ids=[
        "caps",
        "escalation",
        "host-network",
        "host-path",
        "root",
        "pod-seccomp-only",
        "host-port",
        "pod-root",
        "sysctls",
        "proc-mount",
    ],
)
def test_a_pod_we_render_that_is_not_restricted_is_found(
    repo_copy: Path, old: str, new: str, expected: str | None
) -> None:
    edit(repo_copy, VLLM, old, new)
    got = only(repo_copy, "dev", "pod-security")
    if expected is None:
        assert got == []
        return
    assert got and all(f.resource == "Deployment/serving/raw-vllm" for f in got)
    assert any(expected in f.message for f in got), [f.message for f in got]


def test_namespace_levels_and_kserve_pods(repo_copy: Path) -> None:
    serving = f"{SERVING_POLICIES}/namespace-serving.yaml"
    edit(
        repo_copy,
        serving,
        "pod-security.kubernetes.io/enforce: restricted",
        "pod-security.kubernetes.io/enforce: baseline",
    )
    (f,) = only(repo_copy, "dev", "pod-security")
    assert (
        f.resource == "Namespace/serving" and "only pods we render run there: enforce restricted" in f.message
    )
    edit(repo_copy, serving, "    pod-security.kubernetes.io/enforce: baseline\n", "")
    (f,) = only(repo_copy, "dev", "pod-security")
    assert "enforces no Pod Security level" in f.message
    edit(repo_copy, serving, "  labels:\n", "  labels:\n    pod-security.kubernetes.io/enforce: restricted\n")
    isvc = "clusters/dev/layers/components/demos/kserve-cpu-demo/"
    isvc += "inferenceservice-demos-qwen2.5-0.5b-instruct-cpu.yaml"
    edit(
        repo_copy, isvc, "      runAsNonRoot: true\n      seccompProfile:\n        type: RuntimeDefault\n", ""
    )
    got = only(repo_copy, "dev", "pod-security")
    assert {f.message for f in got} == {
        "the predictor pod may run as root (securityContext.runAsNonRoot)",
        "the predictor pod has no RuntimeDefault seccomp profile",
    }


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
    assert (f.message, f.fix) == (
        "the platform repo source tracks 'HEAD', but env 'prod' tracks repoBranch 'main' "
        "(environments/prod/config.yaml)",
        "set targetRevision: main",
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


IN_CLUSTER_TF = "tofu/modules/gke/in_cluster.tf"


def test_kubernetes_and_helm_providers_under_tofu(repo_copy: Path) -> None:
    add(
        repo_copy,
        IN_CLUSTER_TF,
        '# provider "kubernetes" in a comment is fine\n'
        'terraform {\n  required_providers {\n    helm = { source = "hashicorp/helm" }\n  }\n}\n'
        'provider "kubernetes" {\n  host = "x"\n}\n'
        'resource "helm_release" "argocd" {\n  name = "argocd"\n}\n',
    )
    got = [(f.file, f.line, f.resource) for f in check_tofu(repo_copy)]
    assert got == [
        (IN_CLUSTER_TF, 4, "terraform.required_providers.helm"),
        (IN_CLUSTER_TF, 7, "provider.kubernetes"),
        (IN_CLUSTER_TF, 10, "helm_release.argocd"),
    ]
    for env in ("dev", "staging", "prod"):  # a shared module: every env reports it
        got_env = only(repo_copy, env, "tofu-provider")
        assert [(f.file, f.line) for f in got_env] == [
            (IN_CLUSTER_TF, 4),
            (IN_CLUSTER_TF, 7),
            (IN_CLUSTER_TF, 10),
        ]
    assert "the in-cluster lifecycle belongs to Argo CD" in got_env[0].message
    assert got_env[2].render() == (
        f"{IN_CLUSTER_TF}:10: helm_release.argocd: [tofu-provider] in-cluster resource: the substrate stops "
        "at the cluster, the in-cluster lifecycle belongs to Argo CD\n"
        "  fix: move in-cluster objects to clusters/<env>/layers (Argo CD), keep tofu to cloud resources"
    )
    assert check_tofu(REPO) == []


# Each case: a file planted under tofu/ -> the (line, resource) of every tofu-provider finding in it.
# The rule is the substrate's HCL rule; every case the former regex caught is here, comments included.
# It also catches what the regex missed (a .tofu file, a version-only required provider), and reports
# a file that is not valid HCL as unreadable (the regex scanned its text).
TOFU_CASES: dict[str, tuple[str, str, list[tuple[int, str]]]] = {
    "provider-block": (
        "tofu/modules/gke/helm.tf",
        'provider "helm" {\n  kubernetes {\n    host = "x"\n  }\n}\n',
        [(1, "provider.helm")],
    ),
    "required-provider": (
        "tofu/modules/gke/k8s.tf",
        'terraform {\n  required_providers {\n    kubernetes = {\n      source = "hashicorp/kubernetes"\n'
        "    }\n  }\n}\n",
        [(3, "terraform.required_providers.kubernetes")],
    ),
    "aliased-registry-source": (
        "tofu/envs/dev/kubectl.tf",
        "terraform {\n  required_providers {\n"
        '    k8s = { source = "registry.opentofu.org/gavinbunney/kubectl" }\n'
        '    kc = { source = "alekc/kubectl" }\n  }\n}\n',
        [(3, "terraform.required_providers.k8s"), (4, "terraform.required_providers.kc")],
    ),
    "resource-and-data": (
        "tofu/modules/gke/objects.tf",
        'resource "kubernetes_namespace" "serving" {\n  metadata {\n    name = "serving"\n  }\n}\n'
        'resource "kubectl_manifest" "crd" {\n  yaml_body = "x"\n}\n'
        'data "kubernetes_secret" "key" {\n}\n',
        [(1, "kubernetes_namespace.serving"), (6, "kubectl_manifest.crd"), (9, "data.kubernetes_secret.key")],
    ),
    "module-no-root-calls": (
        "tofu/modules/extra/main.tf",
        'resource "helm_release" "argocd" {\n  name = "argocd"\n}\n',
        [(1, "helm_release.argocd")],
    ),
    "comments-only": (
        "tofu/modules/gke/notes.tf",
        '# provider "kubernetes" {}\n// resource "helm_release" "x" {}\n'
        '/* provider "helm" {}\nresource "kubernetes_namespace" "n" {} */\n',
        [],
    ),
    "tofu-suffix": (
        "tofu/modules/gke/in_cluster.tofu",
        'provider "kubernetes" {\n}\n',
        [(1, "provider.kubernetes")],
    ),
    "version-only-required-provider": (
        "tofu/modules/gke/legacy.tf",
        'terraform {\n  required_providers {\n    helm = "~> 2.0"\n  }\n}\n',
        [(3, "terraform.required_providers.helm")],
    ),
    "not-valid-hcl": (
        "tofu/modules/gke/broken.tf",
        'resource "helm_release" "argocd" {\n',
        [(0, "")],
    ),
}


@pytest.mark.parametrize("case", sorted(TOFU_CASES))
def test_each_in_cluster_provider_case_under_tofu(repo_copy: Path, case: str) -> None:
    rel, text, expected = TOFU_CASES[case]
    add(repo_copy, rel, text)
    got = check_tofu(repo_copy)
    assert [(f.file, f.line or 0, f.resource) for f in got] == [(rel, line, res) for line, res in expected]
    assert all(f.rule == "tofu-provider" and f.fix for f in got)
    if case == "not-valid-hcl":
        assert got[0].message.startswith("cannot check for in-cluster providers: not valid HCL")
    else:
        assert all("the in-cluster lifecycle belongs to Argo CD" in f.message for f in got)
    assert len(only(repo_copy, "dev", "tofu-provider")) == len(expected)


def test_an_env_root_reports_only_in_its_own_env(repo_copy: Path) -> None:
    add(repo_copy, "tofu/envs/prod/k8s.tf", 'provider "kubernetes" {\n}\n')
    (f,) = only(repo_copy, "prod", "tofu-provider")
    assert (f.file, f.line, f.resource) == ("tofu/envs/prod/k8s.tf", 1, "provider.kubernetes")
    assert only(repo_copy, "dev", "tofu-provider") == only(repo_copy, "staging", "tofu-provider") == []


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
    assert "use inference.networking.k8s.io" in got[1].fix


def test_scale_to_zero_without_a_wake_up_signal(repo_copy: Path) -> None:
    rel = "clusters/prod/layers/components/serving/raw-vllm/scaledobject-serving-raw-vllm.yaml"
    text = (repo_copy / rel).read_text()
    (repo_copy / rel).write_text(text[: text.index("    - type: prometheus\n      name: gateway-requests")])
    (f,) = only(repo_copy, "prod", "scale-from-zero")
    assert f.resource == "ScaledObject/serving/raw-vllm" and f.path == "/spec/triggers"
    assert "every trigger reads a metric of the scaled pods (vllm:*, cpu, memory)" in f.message
    edit(repo_copy, rel, "minReplicaCount: 0", "minReplicaCount: 1")
    assert only(repo_copy, "prod", "scale-from-zero") == []


def test_unpublished_is_a_warning_on_every_reference(repo_copy: Path) -> None:
    """The placeholder digest of an artifact the env lacks passes the rules but is named wherever it is."""
    cfg = envconfig.load_env(REPO, "dev")
    got = check_warnings(REPO, cfg, load_env_manifests(REPO, "dev"))
    assert {f.status for f in got} == {Status.WARNING}
    assert [(f.resource, f.path) for f in got] == [
        ("InferenceService/demos/qwen2.5-0.5b-instruct-cpu", "/spec/predictor/containers/0/env/0/value"),
        (
            "InferenceService/serving-kserve/qwen2.5-0.5b-instruct-kserve",
            "/spec/predictor/containers/0/env/0/value",
        ),
        ("Deployment/serving/raw-vllm", "/spec/template/spec/initContainers/0/image"),
    ]
    assert got[2].check == "unpublished" and (got[2].message, got[2].fix) == (
        "europe-west4-docker.pkg.dev/llm-platform-dev/modelcars/qwen2.5-0.5b-instruct@sha256:"
        + "0" * 64
        + " has the all-zero placeholder digest: dev does not have this artifact (the modelcar was never "
        "published into it) and cannot pull it",
        "run `deliver modelcar publish qwen2.5-0.5b-instruct --env dev`, then "
        "`deliver layers render --env dev --write`",
    )
    staging = envconfig.load_env(REPO, "staging")
    promoted = check_warnings(REPO, staging, load_env_manifests(REPO, "staging"))
    assert {f.fix for f in promoted} == {
        "run `deliver promote --to staging` (from dev; it re-renders the layers)"
    }
    assert len(promoted) == 4  # the modelcar and the vLLM image, each in the Deployment and the ISVC
    (repo_copy / "clusters/dev/release.yaml").write_text(
        "env: dev\nartifacts:\n  qwen2.5-0.5b-instruct:\n    kind: modelcar\n"
        "    ref: europe-west4-docker.pkg.dev/llm-platform-dev/modelcars/qwen2.5-0.5b-instruct"
        f"@sha256:{'12' * 32}\n"
    )
    layers.write_layers(repo_copy, envconfig.load_env(repo_copy, "dev"))
    assert check_warnings(repo_copy, cfg, load_env_manifests(repo_copy, "dev")) == []
    assert findings(repo_copy, "dev") == []


# --------------------------------------------------------------------------- the registry


def test_readme_policy_table_is_the_registry() -> None:
    """docs/layers.md's `| rule | catches |` table is ``rules_table()``: same ids, summaries and order."""
    text = (REPO / "docs" / "layers.md").read_text()
    section = text[text.index("### Policy checks") :]
    section = section[: section.index("\n### ")]
    table = "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", table, re.M)
    assert rows == [(r.id, r.catches) for r in RULES], (
        "docs/layers.md's policy table differs from the registry "
        "(ci/delivery/validation/policy/registry.py); "
        "replace it with:\n" + rules_table()
    )
    assert table == rules_table()


def test_registry_rules_are_unique_typed_and_each_planted_here() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    source = Path(__file__).read_text()
    for rule in RULES:
        params = inspect.signature(rule.check).parameters
        assert len(params) == (2 if rule.scope is Scope.MANIFEST else 1), rule.id
        assert f"``{rule.id}``" in (rule.check.__doc__ or ""), f"{rule.id}: its function's docstring names it"
        assert f'"{rule.id}"' in source, f"{rule.id} has no test planting its violation"
    assert [r.id for r in RULES if r.status is Status.WARNING] == ["unpublished"]


# --------------------------------------------------------------------------- package boundaries

VALIDATION_MAY_IMPORT = (
    "delivery.core",
    "delivery.config",
    "delivery.gitops.conventions",
    "delivery.schemas",
    "delivery.substrate",
    "delivery.validation",
)


def _delivery_imports(package: Path) -> dict[str, set[str]]:
    """Every ``delivery.*`` module each file of ``package`` imports (file -> modules)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "delivery":
                names.update(f"delivery.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(REPO))] = {
            n for n in names if n == "delivery" or n.startswith("delivery.")
        }
    return found


def test_validation_imports_only_what_it_reads_and_substrate_never_imports_it() -> None:
    allowed = VALIDATION_MAY_IMPORT
    for file, modules in _delivery_imports(REPO / "ci/delivery/validation").items():
        bad = sorted(m for m in modules if not any(m == a or m.startswith(a + ".") for a in allowed))
        assert not bad, f"{file} imports {bad}; validation may import only {', '.join(allowed)}"
    for file, modules in _delivery_imports(REPO / "ci/delivery/substrate").items():
        assert not [m for m in modules if m.startswith("delivery.validation")], file
