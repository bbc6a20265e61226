"""Environment config: environments/<env>/config.yaml is the single source of an environment's values.

Public surface: the typed model (``EnvConfig`` and its parts), ``load_env``, ``list_envs`` and
``check`` (every environment and the references between them, all problems at once).
"""

from delivery.config.loader import check, list_envs, load_env
from delivery.config.model import (
    PROTECTED_TAG_PREFIX,
    EnvConfig,
    FreezeWindow,
    Profile,
    Promotion,
    RegistryCleanup,
    parse_duration,
)

__all__ = [
    "PROTECTED_TAG_PREFIX",
    "EnvConfig",
    "FreezeWindow",
    "Profile",
    "Promotion",
    "RegistryCleanup",
    "check",
    "list_envs",
    "load_env",
    "parse_duration",
]
