"""turngym: a gym for LLM agents that act over many turns.

    import turngym
    env = turngym.make("turngym/GuessNumber-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("[8]")
"""

from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError, EnvUnavailable, RegistryError, TurngymError
from turngym.core.registry import env_info, list_envs, make, register
from turngym.core.types import Episode, Message, Observation, ToolCall, ToolSpec, Turn

__all__ = [
    "ActionError",
    "EnvUnavailable",
    "Episode",
    "Message",
    "Observation",
    "RegistryError",
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
