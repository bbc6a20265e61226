"""``deliver validate`` with the real kubeconform against the hermetic bundle: valid manifests pass,
broken ones are caught with a precise file, resource, JSON path and message; JSON and JUnit output;
and every real environment of the repo validates clean with zero skipped resources."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import REPO, Result
from delivery.core.errors import ToolError, UsageError
from delivery.schemas import bundle as schema_bundle
from delivery.schemas import sources as schema_sources
from delivery.validation import kubeconform, manifests, validate
from delivery.validation.findings import Finding, Report
from test_schemas import hermetic_schemas

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com/app@{DIGEST}"


@pytest.fixture(scope="module")
def bundle() -> schema_bundle.SchemaBundle:
    """The bundle for the repo's environments, from the repo's schema cache (built once)."""
    return schema_bundle.ensure_bundle(REPO, ["1.34"], source_dir=hermetic_schemas(), offline=True)


def fixture_repo(base: Path, files: dict[str, str], env: str = "dev") -> Path:
    """A throwaway repo (the real environments) whose clusters/<env>/layers hold only ``files``."""
    repo = base / "repo"
    repo.mkdir()
    shutil.copy2(REPO / "pyproject.toml", repo / "pyproject.toml")
    for name in ("environments", "modelcars"):
        shutil.copytree(REPO / name, repo / name)
    for rel, text in files.items():
        path = repo / "clusters" / env / "layers" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return repo


def kubeconform_findings(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, files: dict[str, str]
) -> tuple[Report, list[Finding]]:
    repo = fixture_repo(tmp_path, files)
    [report] = validate.validate_envs(repo, ["dev"], schemas=bundle.root, policies=False)
    return report, report.findings


DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: serving
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {IMAGE}
          ports: [{{containerPort: 8000}}]
"""

VALID = {
    "serving/web.yaml": DEPLOYMENT
    + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: serving}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000}]
""",
    "serving/scaledobject.yaml": """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: serving}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 0
  triggers:
    - type: prometheus
      metadata:
        serverAddress: "http://prometheus:9090"
        query: "sum(vllm:num_requests_waiting)"
        threshold: "5"
""",
    "serving/llmisvc.yaml": """\
apiVersion: serving.kserve.io/v1alpha2
kind: LLMInferenceService
metadata: {name: qwen, namespace: llm-d}
spec:
  model: {uri: "oci://registry.example.com/qwen@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
""",
    "routing/pool.yaml": """\
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: qwen, namespace: serving}
spec:
  selector: {matchLabels: {app: web}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: qwen-epp, port: {number: 9002}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: qwen, namespace: serving}
spec:
  parentRefs: [{name: inference-gateway, namespace: inference}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /v1}}]
      backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: qwen}]
""",
    "platform/app.yaml": """\
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: keda, namespace: argocd}
spec:
  project: platform
  source: {repoURL: "https://kedacore.github.io/charts", chart: keda, targetRevision: 2.20.1}
  destination: {server: "https://kubernetes.default.svc", namespace: keda}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: key, namespace: serving}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: gcp}
  target: {name: key}
  data: [{secretKey: key, remoteRef: {key: vllm-api-key}}]
""",
}


def test_valid_manifests_pass_and_every_resource_is_validated(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    tools("kubeconform")
    report, findings = kubeconform_findings(tmp_path, bundle, VALID)
    assert findings == []
    assert report.resources == 8 and len(report.checked) == 8
    assert ("clusters/dev/layers/routing/pool.yaml", "InferencePool/serving/qwen") in report.checked


# Each case: the broken file -> the one (resource, check, path, exact message) it must be reported as.
BROKEN: dict[str, tuple[str, tuple[str, str, str, str]]] = {
    "old-inference-pool-api": (
        """\
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: qwen, namespace: serving}
spec: {selector: {app: web}, targetPortNumber: 8000, extensionRef: {name: epp}}
""",
        (
            "InferencePool/serving/qwen",
            "kubeconform",
            "",
            "no schema for InferencePool at apiVersion inference.networking.x-k8s.io/v1alpha2 "
            "(Kubernetes 1.34, strict): wrong apiVersion? the bundle has InferencePool at "
            "inference.networking.k8s.io/v1",
        ),
    ),
    "removed-core-api": (
        """\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web, namespace: serving}
spec: {minAvailable: 1}
""",
        (
            "PodDisruptionBudget/serving/web",
            "kubeconform",
            "",
            "no schema for PodDisruptionBudget at apiVersion policy/v1beta1 (Kubernetes 1.34, strict): "
            "wrong apiVersion? the bundle has PodDisruptionBudget at policy/v1",
        ),
    ),
    "kind-without-schema": (
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {}\n",
        (
            "Widget/w",
            "kubeconform",
            "",
            "no schema for Widget at apiVersion example.com/v1 (Kubernetes 1.34, strict): no Widget kind "
            "at any apiVersion; add its CRD to the schema bundle or fix the kind",
        ),
    ),
    "unknown-field-in-spec": (
        DEPLOYMENT.replace("  replicas: 1\n", "  replicas: 1\n  replica: 2\n"),
        ("Deployment/serving/web", "kubeconform", "/spec", "additional properties 'replica' not allowed"),
    ),
    "unknown-field-in-container": (
        DEPLOYMENT.replace("          ports:", "          imagePullPolicyy: Always\n          ports:"),
        (
            "Deployment/serving/web",
            "kubeconform",
            "/spec/template/spec/containers/0",
            "additional properties 'imagePullPolicyy' not allowed",
        ),
    ),
    "unknown-field-in-metadata": (
        DEPLOYMENT.replace("  namespace: serving\n", "  namespace: serving\n  lables: {a: b}\n", 1),
        ("Deployment/serving/web", "kubeconform", "/metadata", "additional properties 'lables' not allowed"),
    ),
    "unknown-top-level-field-on-a-crd": (
        VALID["platform/app.yaml"].split("---\napiVersion: external")[0] + "sync: auto\n",
        ("Application/argocd/keda", "kubeconform", "", "additional properties 'sync' not allowed"),
    ),
    "unknown-field-in-converted-crd": (
        VALID["routing/pool.yaml"]
        .split("---")[0]
        .replace("  targetPorts:", "  targetPortNumber: 8000\n  targetPorts:"),
        (
            "InferencePool/serving/qwen",
            "kubeconform",
            "/spec",
            "additional properties 'targetPortNumber' not allowed",
        ),
    ),
    "missing-required-field": (
        DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", ""),
        ("Deployment/serving/web", "kubeconform", "/spec", "missing property 'selector'"),
    ),
    "missing-required-field-in-crd": (
        VALID["routing/pool.yaml"].split("---")[0].replace("  selector: {matchLabels: {app: web}}\n", ""),
        ("InferencePool/serving/qwen", "kubeconform", "/spec", "missing property 'selector'"),
    ),
    "wrong-type": (
        DEPLOYMENT.replace("replicas: 1", "replicas: two"),
        ("Deployment/serving/web", "kubeconform", "/spec/replicas", "got string, want null or integer"),
    ),
    "wrong-type-in-crd": (
        VALID["routing/pool.yaml"].split("---")[0].replace("number: 8000", "number: eight-thousand"),
        (
            "InferencePool/serving/qwen",
            "kubeconform",
            "/spec/targetPorts/0/number",
            "got string, want integer",
        ),
    ),
    "value-not-in-enum": (
        VALID["routing/pool.yaml"].split("---")[1].replace("type: PathPrefix", "type: Prefix"),
        (
            "HTTPRoute/serving/qwen",
            "kubeconform",
            "/spec/rules/0/matches/0/path/type",
            "value must be one of 'Exact', 'PathPrefix', 'RegularExpression'",
        ),
    ),
    "yaml-syntax-error": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\n",
        ("", "yaml", "", "not valid YAML: did not find expected ',' or ']' at line 5"),
    ),
    "duplicate-key": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\ndata: {c: d}\n",
        (
            "ConfigMap/c",
            "kubeconform",
            "",
            "error unmarshalling resource: error converting YAML to JSON: yaml: unmarshal errors:\n"
            '  line 5: key "data" already set in map',
        ),
    ),
    "missing-api-version": (
        "kind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        ("ConfigMap/c", "kubeconform", "", "error while parsing: missing 'apiVersion' key"),
    ),
    "missing-kind": (
        "apiVersion: v1\nmetadata: {name: c}\ndata: {a: b}\n",
        ("?/c", "kubeconform", "", "error while parsing: missing 'kind' key"),
    ),
    "document-is-not-a-mapping": (
        "- apiVersion: v1\n  kind: ConfigMap\n",
        # our own finding with a line and a fix, not kubeconform's Go unmarshal message (issue 11)
        ("", "yaml", "", "document is a list, not a Kubernetes object (a mapping) at line 1"),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_is_caught_precisely(
    case: str, tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    tools("kubeconform")
    text, expected = BROKEN[case]
    files = {**VALID, "serving/broken.yaml": text}
    _, findings = kubeconform_findings(tmp_path, bundle, files)
    broken_file = "clusters/dev/layers/serving/broken.yaml"
    got = [(f.file, f.resource, f.check, f.path, f.message) for f in findings]
    assert got == [(broken_file, *expected)], f"{case}: {[f.render() for f in findings]}"


def test_each_leaf_error_of_a_resource_is_its_own_finding(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    tools("kubeconform")
    text = (
        DEPLOYMENT.replace("replicas: 1", "replicas: two")
        .replace("  selector:\n    matchLabels: {app: web}\n", "")
        .replace("  namespace: serving\n", "  namespace: serving\n  lables: {}\n", 1)
    )
    _, findings = kubeconform_findings(tmp_path, bundle, {"serving/web.yaml": text})
    got = sorted((f.path, f.message) for f in findings)
    assert got == [
        ("/metadata", "additional properties 'lables' not allowed"),
        ("/spec", "missing property 'selector'"),
        ("/spec/replicas", "got string, want null or integer"),
    ]


def test_resources_are_matched_across_files_and_envs_in_one_run(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    """Three envs share one kubeconform run; each finding lands on its own env, file and resource."""
    tools("kubeconform")
    repo = fixture_repo(tmp_path, {"serving/web.yaml": DEPLOYMENT})
    for env, replicas in (("staging", "two"), ("prod", "1")):
        path = repo / "clusters" / env / "layers" / "serving" / "web.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(DEPLOYMENT.replace("replicas: 1", f"replicas: {replicas}"))
    reports = {
        r.env: r for r in validate.validate_envs(repo, schemas=bundle.root, policies=False, processes=2)
    }
    assert [f.file for f in reports["staging"].findings] == ["clusters/staging/layers/serving/web.yaml"]
    assert reports["dev"].ok and reports["prod"].ok
    assert all(r.resources == 1 and len(r.checked) == 1 for r in reports.values())


def test_partition_keeps_kinds_together_and_balances() -> None:
    kinds = {"a.yaml": {"big"}, "b.yaml": {"big"}, "c.yaml": {"small"}, "d.yaml": {"small", "other"}}
    cost = {"big": 1_000_000, "small": 10_000, "other": 10_000}
    groups = kubeconform.partition_files(sorted(kinds), kinds, cost, 2)
    assert sorted(groups) == [["a.yaml", "b.yaml"], ["c.yaml", "d.yaml"]]
    assert kubeconform.partition_files(["a.yaml"], kinds, cost, 4) == [["a.yaml"]]


def test_a_broken_kubeconform_run_is_a_tool_error_not_a_finding(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    repo = fixture_repo(tmp_path, {"serving/web.yaml": DEPLOYMENT})
    with pytest.raises(ToolError) as err:
        kubeconform.run_kubeconform(
            repo, bundle, "not-a-version", ["clusters/dev/layers/serving/web.yaml"], tools("kubeconform")
        )
    assert "without a JSON report" in err.value.render() and "not-a-version" in err.value.render()


def test_missing_kubeconform_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GOPATH", str(tmp_path))
    monkeypatch.delenv(kubeconform.KUBECONFORM_ENV, raising=False)
    with pytest.raises(ToolError) as err:
        kubeconform.kubeconform_binary()
    assert "kubeconform not found" in err.value.render() and "go install" in err.value.render()


def test_bundle_without_the_envs_kubernetes_version_is_refused(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle
) -> None:
    repo = fixture_repo(tmp_path, {"serving/web.yaml": DEPLOYMENT})
    other = tmp_path / "other-bundle"
    shutil.copytree(bundle.root, other)
    meta = json.loads((other / schema_sources.BUNDLE_FILE).read_text())
    meta["kubernetesVersions"] = ["1.33"]
    (other / schema_sources.BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(UsageError) as err:
        validate.validate_envs(repo, ["dev"], schemas=other)
    assert "no Kubernetes 1.34 schemas" in err.value.render()


def test_manifest_model_names_resources() -> None:
    m = manifests.Manifest(
        Path("clusters/dev/layers/x.yaml"), 0, "serving", {"kind": "Namespace", "metadata": {"name": "a"}}
    )
    n = manifests.Manifest(
        Path("x.yaml"),
        1,
        "serving",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}},
    )
    assert m.resource == "Namespace/a" and n.resource == "Service/n/s" and n.api_version == "v1"


# --------------------------------------------------------------------------- CLI, JSON, JUnit


def test_cli_json_and_junit_report_every_resource(
    deliver: Callable[..., Result],
    tmp_path: Path,
    bundle: schema_bundle.SchemaBundle,
    tools: Callable[[str], str],
) -> None:
    tools("kubeconform")
    files = {**VALID, "serving/broken.yaml": BROKEN["wrong-type"][0].replace("name: web", "name: web2")}
    files["serving/syntax.yaml"] = BROKEN["yaml-syntax-error"][0]
    repo = fixture_repo(tmp_path, files)
    junit = tmp_path / "out" / "validate.xml"
    res = deliver(
        "validate", "--env", "dev", "--schemas", str(bundle.root), "--json", "--junit", str(junit), repo=repo
    )
    assert res.code == 1, res.err
    data = json.loads(res.out)
    assert data["ok"] is False and data["resources"] == 9
    [env] = data["environments"]
    kc = [f for f in env["findings"] if f["check"] in ("kubeconform", "yaml")]
    assert {
        "file": "clusters/dev/layers/serving/broken.yaml",
        "line": None,
        "resource": "Deployment/serving/web2",
        "check": "kubeconform",
        "message": "got string, want null or integer",
        "path": "/spec/replicas",
        "fix": "",
        "status": "failure",
    } in kc
    [syntax] = [f for f in kc if f["check"] == "yaml" and f["file"].endswith("syntax.yaml")]
    assert syntax["line"] == 5 and syntax["fix"]
    assert data["findings"] == len(env["findings"]) and data["warnings"] == len(env["warnings"])

    root = ElementTree.parse(junit).getroot()
    cases = root.findall("testsuite/testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("dev.clusters/dev/layers/serving/broken.yaml", "Deployment/serving/web2") in names
    assert ("dev.clusters/dev/layers/routing/pool.yaml", "InferencePool/serving/qwen") in names
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert "/spec/replicas" in (failed["Deployment/serving/web2"].text or "")
    assert "clusters/dev/layers/serving/syntax.yaml" in failed
    assert root.get("tests") == str(len(cases)) and int(root.get("failures") or 0) == len(failed)
    assert len(cases) >= 10  # 9 resources + the unparsable file (+ any policy-only cases)


def test_cli_text_output_names_file_resource_path_and_fails(
    deliver: Callable[..., Result],
    tmp_path: Path,
    bundle: schema_bundle.SchemaBundle,
    tools: Callable[[str], str],
) -> None:
    tools("kubeconform")
    repo = fixture_repo(tmp_path, {"serving/web.yaml": BROKEN["old-inference-pool-api"][0]})
    res = deliver("validate", "--env", "dev", "--schemas", str(bundle.root), repo=repo)
    assert res.code == 1
    assert (
        "clusters/dev/layers/serving/web.yaml: InferencePool/serving/qwen: [kubeconform] no schema for "
        "InferencePool at apiVersion inference.networking.x-k8s.io/v1alpha2"
    ) in res.err
    assert "FAIL dev:" in res.out
    assert (  # a policy finding carries its fix line, rendered like every Problem
        "[inference-api] at /apiVersion InferencePool uses the retired alpha API "
        "inference.networking.x-k8s.io/v1alpha2\n  fix: use inference.networking.k8s.io/v1 InferencePool"
    ) in res.err
    assert re.search(
        r"^error: [1-9]\d* finding\(s\)\n  fix: apply the fix: line of each finding above, then run "
        r"`deliver validate --env dev` again$",
        res.err,
        re.M,
    )


def test_cli_unknown_env_is_a_usage_error(deliver: Callable[..., Result], repo_copy: Path) -> None:
    res = deliver("validate", "--env", "nope", repo=repo_copy)
    assert res.code == 2 and "unknown environment 'nope'" in res.err


# --------------------------------------------------------------------------- the real repo


def test_every_real_environment_validates_clean(
    deliver: Callable[..., Result],
    tools: Callable[[str], str],
    tmp_path: Path,
    bundle: schema_bundle.SchemaBundle,
) -> None:
    """All layers of dev, staging and prod: kubeconform strict + policies, zero findings, zero skipped."""
    tools("kubeconform")
    envs = ("dev", "staging", "prod")
    for env in envs:
        assert manifests.layer_files(REPO, env), f"clusters/{env}/layers has no manifests"
    junit = tmp_path / "junit.xml"
    res = deliver("validate", "--json", "--junit", str(junit), repo=REPO)
    data = json.loads(res.out)
    problems = [f for e in data["environments"] for f in e["findings"]]
    assert res.code == 0 and data["ok"], json.dumps(problems, indent=1)[:4000]
    assert sorted(e["env"] for e in data["environments"]) == sorted(envs)
    reports = validate.validate_envs(REPO, schemas=bundle.root)
    for report in reports:
        loaded = manifests.load_env_manifests(REPO, report.env)
        assert report.resources == len(loaded) > 0
        assert len(report.checked) == report.resources  # every resource validated, none skipped
        assert (f"clusters/{report.env}/root.yaml", "AppProject/argocd/layers") in report.checked
    root = ElementTree.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("tests") == str(sum(r.resources for r in reports))


def test_roots_are_validated_like_the_layers(
    tmp_path: Path, bundle: schema_bundle.SchemaBundle, tools: Callable[[str], str]
) -> None:
    """clusters/<env>/root.yaml is what `kubectl apply` bootstraps: kubeconform checks it too."""
    tools("kubeconform")
    repo = fixture_repo(tmp_path, {"serving/web.yaml": DEPLOYMENT})
    root = (REPO / "clusters/dev/root.yaml").read_text()
    (repo / "clusters/dev/root.yaml").write_text(
        root.replace("  syncPolicy:\n", "  syncPolicy:\n    automatic: true\n", 1)
    )
    (repo / "clusters/dev/root-serving.yaml").write_text("apiVersion: v1\nkind: [broken\n")
    [report] = validate.validate_envs(repo, ["dev"], schemas=bundle.root, policies=False)
    got = sorted((f.file, f.resource, f.check, f.path, f.message) for f in report.findings)
    assert got == [
        (
            "clusters/dev/root-serving.yaml",
            "",
            "yaml",
            "",
            "not valid YAML: did not find expected ',' or ']' at line 3",
        ),
        (
            "clusters/dev/root.yaml",
            "Application/argocd/layer-platform",
            "kubeconform",
            "/spec/syncPolicy",
            "additional properties 'automatic' not allowed",
        ),
    ]
    assert ("clusters/dev/root.yaml", "AppProject/argocd/layers") in report.checked


def test_cli_reports_an_unpublished_artifact_as_a_warning(
    deliver: Callable[..., Result],
    repo_copy: Path,
    bundle: schema_bundle.SchemaBundle,
    tools: Callable[[str], str],
) -> None:
    """The placeholder of what staging has not received validates (exit 0) but is listed as a warning."""
    tools("kubeconform")
    assert deliver("layers", "render", "--env", "staging", "--write", repo=repo_copy).code == 0
    res = deliver("validate", "--env", "staging", "--schemas", str(bundle.root), repo=repo_copy)
    assert res.code == 0, res.err
    # the modelcar and the vLLM image, each in the Deployment and in the KServe InferenceService
    assert re.search(r"^ok   staging: \d+ resources, 0 finding\(s\), 4 warning\(s\)$", res.out, re.M)
    assert (
        "warning: clusters/staging/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml: "
        "Deployment/serving/raw-vllm: [unpublished] at /spec/template/spec/initContainers/0/image"
    ) in res.err
    data = json.loads(
        deliver("validate", "--env", "staging", "--schemas", str(bundle.root), "--json", repo=repo_copy).out
    )
    assert data["ok"] is True and data["warnings"] == 4
    assert {w["check"] for w in data["environments"][0]["warnings"]} == {"unpublished"}


@pytest.mark.parametrize(
    ("exit_code", "output", "passes"), [(0, "{}", True), (1, "{}", True), (2, "{}", False), (1, "", False)]
)
def test_dagger_report_script_tolerates_findings_only(
    tmp_path: Path, exit_code: int, output: str, passes: bool
) -> None:
    """validate-report keeps the reports when validation finds problems (exit 1), not when it breaks."""
    sys.path.insert(0, str(REPO / "ci/dagger/src"))
    pytest.importorskip("dagger")
    from llm_platform.validate import REPORT_SCRIPT

    out = tmp_path / "out"
    fake = f"printf '{output}'; exit {exit_code}"
    proc = subprocess.run(["sh", "-c", REPORT_SCRIPT, str(out), "sh", "-c", fake], check=False)
    assert (proc.returncode == 0) is passes
    assert (out / "report.json").read_text() == output
