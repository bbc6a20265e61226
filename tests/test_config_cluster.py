"""cluster.authorizedNetworks and cluster.labels: GKE's shapes, checked in config before tofu runs.

A production environment is one whose promotions need approval (``promotion.approvalRequired:
true``, prod here): it must list its authorized networks, and none of them may be 0.0.0.0/0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result
from delivery import config as envconfig
from delivery.core.errors import ConfigError
from delivery.substrate import inputs

Deliver = Callable[..., Result]
DEV_NETWORK = "    - cidrBlock: 203.0.113.0/24\n      displayName: office\n"
DEV_LABELS = "    team: ml-platform\n"


def _edit(repo: Path, env: str, old: str, new: str) -> Path:
    path = repo / "environments" / env / "config.yaml"
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {env}'s config"
    path.write_text(text.replace(old, new))
    return path


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_shipped_configs_carry_networks_and_labels_into_the_tofu_inputs(repo_copy: Path) -> None:
    for env in ("dev", "staging", "prod"):
        cfg = envconfig.load_env(repo_copy, env)
        values = inputs.root_variables(cfg, {"authorized_networks", "labels"})
        assert values["authorized_networks"] == [
            {"cidr_block": n.cidr_block, "display_name": n.display_name}
            for n in cfg.cluster.authorized_networks
        ]
        assert {"cidr_block": "203.0.113.0/24", "display_name": "office"} in values["authorized_networks"]
        assert values["labels"] == {"env": env, "part-of": "llm-platform", "team": "ml-platform"}
    assert envconfig.load_env(repo_copy, "prod").production
    assert not envconfig.load_env(repo_copy, "staging").production


def test_labels_default_to_env_and_part_of(repo_copy: Path) -> None:
    _edit(repo_copy, "staging", "  labels:\n" + DEV_LABELS, "")
    cfg = envconfig.load_env(repo_copy, "staging")
    assert cfg.cluster.labels == {} and cfg.cluster_labels == {"env": "staging", "part-of": "llm-platform"}
    _edit(repo_copy, "dev", DEV_LABELS, "    part-of: my-fork\n")
    assert envconfig.load_env(repo_copy, "dev").cluster_labels["part-of"] == "my-fork"


# (env, old text, new text, key path of the problem, the line's fragment, expected words)
BROKEN = [
    pytest.param(
        "dev",
        "cidrBlock: 203.0.113.0/24",
        "cidrBlock: 203.0.113.7/24",
        "cluster.authorizedNetworks.0.cidrBlock",
        "cidrBlock: 203.0.113.7/24",
        "has host bits set",
        id="host-bits",
    ),
    pytest.param(
        "dev",
        "cidrBlock: 203.0.113.0/24",
        "cidrBlock: 203.0.113.0",
        "cluster.authorizedNetworks.0.cidrBlock",
        "cidrBlock: 203.0.113.0",
        "has no prefix length",
        id="no-prefix",
    ),
    pytest.param(
        "dev",
        "cidrBlock: 203.0.113.0/24",
        "cidrBlock: office.example.com/24",
        "cluster.authorizedNetworks.0.cidrBlock",
        "office",
        "is not a network in CIDR notation",
        id="not-an-address",
    ),
    pytest.param(
        "dev",
        "cidrBlock: 203.0.113.0/24",
        "cidrBlock: 203.0.113.0/33",
        "cluster.authorizedNetworks.0.cidrBlock",
        "/33",
        "is not a network in CIDR notation",
        id="prefix-too-long",
    ),
    pytest.param(
        "dev",
        "cidrBlock: 203.0.113.0/24",
        "cidrBlock: 2001:db8::/32",
        "cluster.authorizedNetworks.0.cidrBlock",
        "cidrBlock: 2001:db8::/32",
        "GKE authorized networks are IPv4",
        id="ipv6",
    ),
    pytest.param(
        "prod",
        "cidrBlock: 198.51.100.0/28",
        "cidrBlock: ::/0",
        "cluster.authorizedNetworks.1.cidrBlock",
        "cidrBlock: ::/0",
        "GKE authorized networks are IPv4",
        id="ipv6-everything",
    ),
    pytest.param(
        "dev",
        "      displayName: office\n",
        "",
        "cluster.authorizedNetworks.0.displayName",
        "cidrBlock",
        "required key is missing",
        id="no-display-name",
    ),
    pytest.param(
        "dev",
        DEV_NETWORK,
        "    - 203.0.113.0/24\n",
        "cluster.authorizedNetworks.0",
        "- 203.0.113.0/24",
        "expected a mapping",
        id="plain-string",
    ),
    pytest.param(
        "dev",
        DEV_NETWORK,
        DEV_NETWORK * 2,
        "cluster.authorizedNetworks",
        "authorizedNetworks:",
        "203.0.113.0/24 is listed twice",
        id="duplicate",
    ),
    pytest.param(
        "prod",
        "cidrBlock: 198.51.100.0/28",
        "cidrBlock: 0.0.0.0/0",
        "cluster.authorizedNetworks.1.cidrBlock",
        "cidrBlock: 0.0.0.0/0",
        "opens the control plane of a production environment to the whole internet",
        id="prod-everything",
    ),
    pytest.param(
        "prod",
        "cidrBlock: 198.51.100.0/28",
        "cidrBlock: 64.0.0.0/7",
        "cluster.authorizedNetworks.1.cidrBlock",
        "cidrBlock: 64.0.0.0/7",
        "opens the control plane of a production environment to 2^25 addresses",
        id="prod-too-broad",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "    Team: ml\n",
        "cluster.labels",
        "labels:",
        "key 'Team'",
        id="label-uppercase",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "    1team: ml\n",
        "cluster.labels",
        "labels:",
        "key '1team'",
        id="label-digit-first",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "    team: ML.platform\n",
        "cluster.labels",
        "labels:",
        "value 'ML.platform' of 'team'",
        id="label-value-syntax",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        f"    team: {'x' * 64}\n",
        "cluster.labels",
        "labels:",
        "up to 63",
        id="label-too-long",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "    team: 7\n",
        "cluster.labels.team",
        "team: 7",
        "expected a string",
        id="label-int",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "    env: production\n",
        "cluster.labels",
        "labels:",
        "key 'env' is set for you",
        id="label-reserved",
    ),
    pytest.param(
        "dev",
        DEV_LABELS,
        "".join(f"    l{i}: x\n" for i in range(62)),
        "cluster.labels",
        "labels:",
        "GCP allows 64 per resource",
        id="too-many-labels",
    ),
]


@pytest.mark.parametrize(("env", "old", "new", "key", "line_of", "expected"), BROKEN)
def test_a_bad_network_or_label_is_one_precise_config_error(
    deliver: Deliver, repo_copy: Path, env: str, old: str, new: str, key: str, line_of: str, expected: str
) -> None:
    path = _edit(repo_copy, env, old, new)
    with pytest.raises(ConfigError) as err:
        envconfig.load_env(repo_copy, env)
    problems = err.value.problems
    assert len(problems) == 1, err.value.render()
    where = problems[0].where
    assert (where.file, where.key) == (f"environments/{env}/config.yaml", key)
    assert where.line == _line_of(path, line_of)
    assert expected in problems[0].what, problems[0].what
    assert problems[0].fix
    result = deliver("config", "check", "--env", env, repo=repo_copy)
    assert result.code == 2 and f"{where}: " in result.err and "fix:" in result.err


def test_a_production_env_must_name_its_networks(deliver: Deliver, repo_copy: Path) -> None:
    path = repo_copy / "environments/prod/config.yaml"
    text = path.read_text()
    start = text.index("  authorizedNetworks:\n")
    path.write_text(text[:start] + text[text.index("  labels:\n") :])
    with pytest.raises(ConfigError) as err:
        envconfig.load_env(repo_copy, "prod")
    (problem,) = err.value.problems
    assert (
        str(problem.where)
        == f"environments/prod/config.yaml:{_line_of(path, 'cluster:')}: cluster.authorizedNetworks"
    )
    assert "production environment (promotion.approvalRequired: true)" in problem.what
    assert "203.0.113.0/24" in problem.fix
    # an empty list is the same, at its own line
    _edit(repo_copy, "prod", "  labels:\n", "  authorizedNetworks: []\n  labels:\n")
    res = deliver("config", "check", "--env", "prod", repo=repo_copy)
    assert res.code == 2
    line = _line_of(path, "authorizedNetworks: []")
    assert f"config.yaml:{line}: cluster.authorizedNetworks: is missing or empty" in res.err


def test_production_is_known_by_its_approval_gate_not_its_name(repo_copy: Path) -> None:
    # staging is not production: it may go without networks (nobody outside reaches its control
    # plane), and may even open it, until its promotions need approval
    path = repo_copy / "environments/staging/config.yaml"
    _edit(repo_copy, "staging", "cidrBlock: 203.0.113.0/24", "cidrBlock: 0.0.0.0/0")
    assert envconfig.load_env(repo_copy, "staging").cluster.authorized_networks[0].cidr_block == "0.0.0.0/0"
    _edit(repo_copy, "staging", "  approvalRequired: false", "  approvalRequired: true")
    with pytest.raises(ConfigError, match="to the whole internet") as err:
        envconfig.load_env(repo_copy, "staging")
    assert err.value.problems[0].where.line == _line_of(path, "cidrBlock: 0.0.0.0/0")
    # and prod without its gate is an ordinary environment
    _edit(repo_copy, "prod", "  approvalRequired: true", "  approvalRequired: false")
    _edit(repo_copy, "prod", "cidrBlock: 198.51.100.0/28", "cidrBlock: 0.0.0.0/0")
    assert not envconfig.load_env(repo_copy, "prod").production


def test_networks_that_add_up_to_the_internet_are_refused_in_production(repo_copy: Path) -> None:
    """Each half of the address space is broad on its own; together they are 0.0.0.0/0."""
    _edit(repo_copy, "prod", "cidrBlock: 203.0.113.0/24", "cidrBlock: 10.0.0.0/8")
    envconfig.load_env(repo_copy, "prod")  # a /8 alone is allowed
    _edit(repo_copy, "prod", "cidrBlock: 198.51.100.0/28", "cidrBlock: 11.0.0.0/8")
    with pytest.raises(ConfigError, match=r"together these networks cover 10\.0\.0\.0/7"):
        envconfig.load_env(repo_copy, "prod")
