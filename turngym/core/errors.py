"""turngym's exceptions, one tree (every one is defined here; the modules that raise them import them):

    TurngymError                 base of every error turngym raises on purpose
    ├── ActionError              (ValueError) an action that does not parse or is not allowed (never escapes ``step``)
    ├── EpisodeOver              (RuntimeError) ``step`` after the episode ended (terminated or truncated), before ``reset``
    ├── SnapshotUnsupported      (NotImplementedError) ``snapshot``/``restore`` of an env whose state cannot be saved as bytes
    ├── SnapshotError            (ValueError) bytes ``restore`` cannot take: not a snapshot, another version, another env's
    ├── RegistryError            (KeyError) an unknown or broken env id
    ├── EnvUnavailable           (RuntimeError) an env whose requirements are missing here (package, Docker, Chromium)
    ├── ConfigError              (ValueError) a config, suite or ``--set`` value that does not validate
    ├── TemplateError            (ValueError) a chat template that cannot give an append-only token stream
    ├── BackendError             (RuntimeError) a model server answered with an error or breaks the token contract
    ├── StaleWeightsError        (RuntimeError) the rollout engine does not serve the weights just pushed to it
    ├── LearnerError             (RuntimeError) a process of the data-parallel learner died, hung or diverged
    ├── RolloutError             (RuntimeError) Ray rollout workers cannot go on: all are gone, or one raised
    ├── CheckFailed              (AssertionError) an env failed one of ``turngym envs check``'s checks
    ├── GameStuck                (RuntimeError) a wrapped game cannot go on within its bounds (ends the episode truncated)
    ├── RemoteEnvError           (ConnectionError) a served env that cannot be reached, or lost mid-step
    ├── ServeError               (RuntimeError) a served env's session cannot take a message now (its OpenEnv error code)
    └── SandboxError             (RuntimeError) a sandbox that cannot be created or stopped answering
        └── PageError            one browser page cannot go on (the episode ends, the browser goes on)
            ├── PageCrashed      the page's renderer process died
            └── PageHung         the page did not answer within the timeout (an endless script)

    TimeUp                       (BaseException) raised inside a call cut at its deadline (the TextArena adapter's
                                 step bound); never escapes ``step``, and ``except Exception`` in a game cannot
                                 swallow it, so it is outside the tree above and not exported

The second base in parentheses keeps ``except ValueError`` (or ``RuntimeError``, ...) clauses working.
Every message names the value, the cause and the fix. The command line exits with code 2 on
``ConfigError``, ``RegistryError`` and ``EnvUnavailable`` (what the user gave cannot work as given)
and 1 on the others.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ActionError",
    "BackendError",
    "CheckFailed",
    "ConfigError",
    "EnvUnavailable",
    "EpisodeOver",
    "GameStuck",
    "LearnerError",
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
    "TimeUp",
    "TurngymError",
    "did_you_mean",
]


class TimeUp(BaseException):
    """Raised inside a call of ``turngym.envs.adapters._deadline.call_within`` whose time is up."""


class TurngymError(Exception):
    """Base class of every error turngym raises on purpose."""


class ActionError(TurngymError, ValueError):
    """The agent's action does not parse or is not allowed here.

    Raised inside ``TurnEnv.step``; the base class turns it into an error observation, the env's
    invalid-action penalty and ``info["action_error"]``. It never reaches the caller of ``step``.
    """


class EpisodeOver(TurngymError, RuntimeError):
    """``step``/``astep`` was called after the episode ended (terminated, or truncated by ``TurnLimit``) and
    before the next ``reset``: a finished episode takes no more actions and pays no more reward."""


class SnapshotUnsupported(TurngymError, NotImplementedError):
    """``snapshot()`` or ``restore()`` of an env whose state lives outside Python (a Docker sandbox, a browser,
    another engine) or that does not declare support (``TurnEnv.snapshot_unsupported``); the message says why."""


class SnapshotError(TurngymError, ValueError):
    """Bytes that ``restore()`` cannot take: not a turngym snapshot, corrupt, of another snapshot format version,
    or taken from another env (id, arguments or wrappers)."""


class RegistryError(TurngymError, KeyError):
    """An env id that is not registered (the message suggests close ids) or whose entry point is broken."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class EnvUnavailable(TurngymError, RuntimeError):
    """The env exists but cannot run on this machine; the message says what is missing."""


class ConfigError(TurngymError, ValueError):
    """A config file, suite file or ``--set`` override that does not validate; the message names the key,
    the value and the fix."""


class TemplateError(TurngymError, ValueError):
    """A chat template whose renders cannot be turned into an append-only token stream."""


class BackendError(TurngymError, RuntimeError):
    """A server answered with an error or with something the token contract cannot accept."""


class StaleWeightsError(TurngymError, RuntimeError):
    """The rollout engine does not serve the weights the trainer just pushed."""


class LearnerError(TurngymError, RuntimeError):
    """A process of the data-parallel learner (``learner.processes`` > 1) exited, hung past ``learner.timeout``, or
    holds other parameters than rank 0; the message names the rank and the process."""


class RolloutError(TurngymError, RuntimeError):
    """Rollout workers (Ray actors) cannot go on: every one is gone, or one raised; the message names the worker
    (pid, host, node) and the cause. The episodes that finished are kept."""


class GameStuck(TurngymError, RuntimeError):
    """A wrapped game (TextArena) cannot go on within the adapter's bounds: its own loop ran past the step's
    time limit, or its opponents never gave the turn back. The adapter ends the episode truncated with the
    message; it never escapes ``step``."""


class CheckFailed(TurngymError, AssertionError):
    """One check of ``turngym.core.checker`` failed; the message says what the env did."""


class RemoteEnvError(TurngymError, ConnectionError):
    """A ``remote/<url>`` env whose server cannot be reached, refused the session, or went away during a
    step (that episode ends with this error; the next reset opens a new session). ``retryable``: the
    session went away or was refused for now, so a reset (safe to repeat) may try a fresh one."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ServeError(TurngymError, RuntimeError):
    """What ``turngym serve`` answers a session's message with instead of playing it: ``code`` is the
    OpenEnv error code (``CAPACITY_REACHED``, ``FACTORY_ERROR``, ``EXECUTION_ERROR``), ``details`` go
    beside the message in the error reply."""

    def __init__(self, message: str, code: str = "EXECUTION_ERROR", **details: object) -> None:
        super().__init__(message)
        self.code, self.details = code, details


class SandboxError(TurngymError, RuntimeError):
    """A sandbox (container, browser) that cannot be created or stopped answering."""


class PageError(SandboxError):
    """The page of one session cannot go on (the episode ends; the browser and the run go on)."""


class PageCrashed(PageError):
    """The page's renderer process died."""


class PageHung(PageError):
    """The page did not answer within the timeout (an endless script)."""


def did_you_mean(value: object, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> str:
    """``" Did you mean 'flow_grpo'?"`` for the choices close to ``value``, or ``""`` where none is."""
    close = [repr(c) for c in difflib.get_close_matches(str(value), list(choices), n=n, cutoff=cutoff)]
    if not close:
        return ""
    return f" Did you mean {close[0] if len(close) == 1 else ', '.join(close[:-1]) + ' or ' + close[-1]}?"
