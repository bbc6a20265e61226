"""checkov, a scanner nobody here wrote, over every environment's rendered manifests.

Every check must pass except the ones security/checkov-kubernetes.yaml skips, each with its reason;
a skip that no longer fires is an error too (the skip list never outlives its reason). checkov runs
from its own locked environment (.venv-scan, ci/scan/uv.lock), offline (--skip-download).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import require_tool
from delivery.core import yamlio

REPO = Path(__file__).resolve().parent.parent
SKIPS = REPO / "security" / "checkov-kubernetes.yaml"
ENVS = ("dev", "staging", "prod")
CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")


def skips() -> dict[str, str]:
    data = yamlio.plain(yamlio.load_file(SKIPS))
    assert isinstance(data, dict), SKIPS
    return {str(k): str(v) for k, v in data.items()}


def checkov(target: Path) -> list[dict[str, Any]]:
    """Every failed check of one checkov run over ``target`` (no skips applied)."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("BC_API_KEY", None)  # never talk to a platform: the verdict is the local checks'
    proc = subprocess.run(
        [require_tool("checkov"), "-d", str(target), "--framework", "kubernetes", "--skip-download",
         "--compact", "--quiet", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed: list[dict[str, Any]] = []
    for r in reports:
        assert r["summary"]["parsing_errors"] == 0, r["summary"]
        failed += r["results"]["failed_checks"]
    return failed


@pytest.fixture(scope="module")
def failures() -> dict[str, list[dict[str, Any]]]:
    return {env: checkov(REPO / "clusters" / env) for env in ENVS}


def test_the_skip_list_is_reasoned() -> None:
    for check, reason in skips().items():
        assert CHECK_ID.match(check), f"{check}: not a checkov Kubernetes check id"
        assert len(reason.split()) >= 8, f"{check}: say why it does not apply"


@pytest.mark.parametrize("env", ENVS)
def test_checkov_passes_over_the_rendered_manifests(
    env: str, failures: dict[str, list[dict[str, Any]]]
) -> None:
    skipped = skips()
    left = [f for f in failures[env] if f["check_id"] not in skipped]
    assert not left, "\n".join(
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})" for f in left
    )


def test_every_skip_still_fires(failures: dict[str, list[dict[str, Any]]]) -> None:
    fired = {f["check_id"] for env in ENVS for f in failures[env]}
    stale = sorted(set(skips()) - fired)
    assert not stale, f"{stale} no longer fail anywhere: remove them from {SKIPS.name}"


def test_checkov_sees_a_planted_weakness(tmp_path: Path) -> None:
    """The scanner really reads our manifests: a privileged container in a copy is a failure."""
    vllm = REPO / "clusters/dev/layers/components/serving/raw-vllm/deployment-serving-raw-vllm.yaml"
    copy = tmp_path / "layers" / vllm.name
    copy.parent.mkdir()
    copy.write_text(vllm.read_text().replace("allowPrivilegeEscalation: false", "privileged: true"))
    ids = {f["check_id"] for f in checkov(copy.parent)}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= ids, ids  # privileged; allowPrivilegeEscalation
