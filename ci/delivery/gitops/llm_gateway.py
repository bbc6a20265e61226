"""The llm-gateway layer: LiteLLM (keys, budgets, limits, spend) on CloudNativePG."""

from __future__ import annotations

from delivery.config import EnvConfig
from delivery.gitops.builder import (
    LayerBuild,
    external_secret,
    object_meta,
    served_model_name,
)
from delivery.gitops.conventions import GATEWAY_NAME, GATEWAY_NS, LLM_GATEWAY_NS
from delivery.gitops.pins import Pins


def llm_gateway_layer(cfg: EnvConfig, pins: Pins) -> LayerBuild:
    """LiteLLM (virtual keys, budgets, TPM/RPM, spend ledger, OpenAI /v1) on CloudNativePG Postgres."""
    b = LayerBuild(cfg, "llm-gateway", [], {})
    b.helm_app("cloudnative-pg", pins.chart("cloudnative-pg"), "cnpg-system", -3, server_side=True)
    instances = 2 if cfg.promotion.approval_required else 1  # gated (production) envs keep a standby
    bootstrap = [
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": object_meta(cfg, "llm-gateway", "litellm-pg", LLM_GATEWAY_NS),
            "spec": {
                "instances": instances,
                "storage": {"size": "10Gi"},
                # CNPG generates the app credentials as Secret litellm-pg-app (never in git)
                "bootstrap": {"initdb": {"database": "litellm", "owner": "litellm"}},
            },
        },
        external_secret(
            cfg,
            "llm-gateway",
            "litellm-master-key",
            LLM_GATEWAY_NS,
            {"PROXY_MASTER_KEY": "litellm-master-key", "LITELLM_SALT_KEY": "litellm-salt-key"},
        ),
        external_secret(
            cfg, "llm-gateway", "litellm-upstream", LLM_GATEWAY_NS, {"UPSTREAM_API_KEY": "vllm-api-key"}
        ),
    ]
    b.git_app("litellm-bootstrap", LLM_GATEWAY_NS, 0, bootstrap)
    served = served_model_name(cfg)
    b.helm_app(
        "litellm",
        pins.chart("litellm"),
        LLM_GATEWAY_NS,
        1,
        {
            "masterkeySecretName": "litellm-master-key",
            "masterkeySecretKey": "PROXY_MASTER_KEY",
            "environmentSecrets": ["litellm-master-key", "litellm-upstream"],
            "envVars": {"PROXY_BASE_URL": f"https://api.{cfg.domain}", "DISABLE_SCHEMA_UPDATE": "true"},
            "db": {
                "useExisting": True,
                "deployStandalone": False,
                "endpoint": "litellm-pg-rw",
                "database": "litellm",
                "secret": {"name": "litellm-pg-app", "usernameKey": "username", "passwordKey": "password"},
            },
            "migrationJob": {"enabled": True},
            "proxy_config": {
                "model_list": [
                    {
                        "model_name": served,
                        "litellm_params": {
                            # openai/ = an OpenAI-compatible upstream: the agentgateway in front of the pool
                            "model": f"openai/{served}",
                            "api_base": f"http://{GATEWAY_NAME}.{GATEWAY_NS}.svc.cluster.local/v1",
                            "api_key": "os.environ/UPSTREAM_API_KEY",
                            # self-hosted tokens are priced so budgets bind (0 would never exhaust one)
                            "input_cost_per_token": 0.0000005,
                            "output_cost_per_token": 0.0000015,
                        },
                    }
                ],
                "general_settings": {
                    "master_key": "os.environ/PROXY_MASTER_KEY",
                    "disable_spend_logs": False,  # the spend ledger
                },
                "litellm_settings": {
                    # every virtual key gets a budget and rate limits unless the admin sets others
                    "default_key_generate_params": {
                        "max_budget": 10,
                        "budget_duration": "30d",
                        "tpm_limit": 100000,
                        "rpm_limit": 60,
                    },
                    "upperbound_key_generate_params": {
                        "max_budget": 1000,
                        "budget_duration": "30d",
                        "tpm_limit": 1000000,
                        "rpm_limit": 1000,
                    },
                },
            },
        },
    )
    return b
