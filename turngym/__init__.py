"""turngym: a gym for LLM agents that act over many turns.

    import turngym
    env = turngym.make("turngym/GuessNumber-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("[8]")

The public API is ``__all__`` (tests/test_public_api.py holds it to an exact list); every exception
turngym raises on purpose is here, in the tree drawn in ``turngym.core.errors``.
"""

from turngym.core.env import TurnEnv
from turngym.core.errors import (
    ActionError,
    BackendError,
    CheckFailed,
    ConfigError,
    EnvUnavailable,
    EpisodeOver,
    GameStuck,
    LearnerError,
    PageCrashed,
    PageError,
    PageHung,
    RegistryError,
    RemoteEnvError,
    RolloutError,
    SandboxError,
    ServeError,
    SnapshotError,
    SnapshotUnsupported,
    StaleWeightsError,
    TemplateError,
    TurngymError,
)
from turngym.core.registry import env_info, list_envs, make, register
from turngym.core.types import Episode, Message, Observation, ToolCall, ToolSpec, Turn

__all__ = [
    "ActionError",
    "BackendError",
    "CheckFailed",
    "ConfigError",
    "EnvUnavailable",
    "Episode",
    "EpisodeOver",
    "GameStuck",
    "LearnerError",
    "Message",
    "Observation",
    "PageCrashed",
    "PageError",
    "PageHung",
    "RegistryError",
    "RemoteEnvError",
    "RolloutError",
    "SandboxError",
    "ServeError",
    "SnapshotError",
    "SnapshotUnsupported",
    "StaleWeightsError",
    "TemplateError",
    "ToolCall",
    "ToolSpec",
    "Turn",
    "TurnEnv",
    "TurngymError",
    "__version__",
    "env_info",
    "list_envs",
    "make",
    "register",
]
__version__ = "0.1.0"

from turngym.envs import register_builtin_envs as _register_builtin_envs  # noqa: E402

_register_builtin_envs()
