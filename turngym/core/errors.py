"""turngym's exceptions, one tree:

    TurngymError
    ├── ActionError          an action that does not parse or is not allowed (never escapes ``step``)
    ├── RegistryError        an unknown or broken env id
    ├── EnvUnavailable       an env whose requirements are missing here (package, Docker, Chromium)
    ├── ConfigError          a config or suite file that does not validate
    └── SandboxError         a sandbox that cannot be created or stopped answering

Every message names the value, the cause and the fix.
"""


class TurngymError(Exception):
    """Base class of every error turngym raises on purpose."""


class ActionError(TurngymError, ValueError):
    """The agent's action does not parse or is not allowed here.

    Raised inside ``TurnEnv.step``; the base class turns it into an error observation, the env's
    invalid-action penalty and ``info["action_error"]``. It never reaches the caller of ``step``.
    """


class RegistryError(TurngymError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class EnvUnavailable(TurngymError, RuntimeError):
    """The env exists but cannot run on this machine; the message says what is missing."""


class ConfigError(TurngymError, ValueError):
    pass


class SandboxError(TurngymError, RuntimeError):
    pass
