"""MiniWoB++ in turngym: the 130 tasks of the ``miniwob`` package, ``miniwob/<task>-v1``.

The task pages are the package's own HTML, opened as ``file://`` URLs. The pool loads a task page
ahead of time; ``reset(seed)`` seeds the page's ``Math.random`` (``Math.seedrandom``, as the
package and BrowserGym do), starts the episode (``core.startEpisodeReal``) and reads the goal
(``core.getUtterance``). After each action the reward is read from the page's globals
(``WOB_DONE_GLOBAL``, ``WOB_RAW_REWARD_GLOBAL``, ``WOB_REWARD_GLOBAL``, ``WOB_REWARD_REASON``).

Rewards (``reward=``): ``"raw"`` the page's reward in [-1, 1] (default); ``"binary"`` 1 when the
raw reward is positive, else 0 (BrowserGym's choice); ``"timed"`` the page's time-discounted reward.
``info["success"]`` is raw reward > 0. The page's own 10 s episode timer is lifted (the turn limit
is the env's clock); set ``episode_max_time`` in ms to restore it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

from turngym.core.errors import EnvUnavailable, did_you_mean
from turngym.envs.web.base import BrowserEnv, EpisodeState
from turngym.envs.web.miniwob_tasks import MINIWOB_TASKS
from turngym.sandboxes.browser import BrowserSession, ContextOptions

#: the page's score display and start cover are hidden: agents see only the task
_HIDE_HUMAN_DISPLAY = "#reward-display, #click-canvas, #sync-task-cover { display: none !important; }"

_START = """async ([seed, maxTime]) => {
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTime;
  core.startEpisodeReal();
  for (let i = 0; i < 300 && !WOB_TASK_READY; i++) await new Promise(r => requestAnimationFrame(r));
  const u = core.getUtterance();
  return [WOB_TASK_READY, typeof u === 'string' ? u : (u.utterance || JSON.stringify(u))];
}"""

_STATE = "() => [WOB_DONE_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_GLOBAL, WOB_REWARD_REASON]"


def miniwob_html_dir() -> Path:
    """The directory of the task HTML files inside the installed ``miniwob`` package."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise EnvUnavailable("MiniWoB++ needs the miniwob package: pip install 'turngym[browser]' (make setup does)")
    return Path(next(iter(spec.submodule_search_locations))) / "html" / "miniwob"


class MiniWoBEnv(BrowserEnv):
    """One MiniWoB++ task. See the module docstring."""

    state_script = _STATE

    def __init__(
        self,
        *,
        task: str,
        reward: Literal["raw", "binary", "timed"] = "raw",
        episode_max_time: int = 1_000_000,
        viewport: tuple[int, int] = (160, 210),
        device_scale_factor: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in MINIWOB_TASKS:
            raise ValueError(f"unknown MiniWoB++ task {task!r}.{did_you_mean(task, MINIWOB_TASKS)}")
        if reward not in ("raw", "binary", "timed"):
            raise ValueError(f"reward must be 'raw', 'binary' or 'timed', got {reward!r}")
        self.task = task
        self.reward_mode = reward
        self.episode_max_time = int(episode_max_time)
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.device_scale_factor = float(device_scale_factor)
        self.html_dir = miniwob_html_dir()
        self.url = (self.html_dir / f"{task}.html").as_uri()
        self.description = (
            f"MiniWoB++ task {task}: do what the goal says on the small web page below. "
            "The page is shown as an accessibility tree; act with one action per reply."
        )

    def context_options(self) -> ContextOptions:
        return ContextOptions(
            viewport=self.viewport, device_scale_factor=self.device_scale_factor, goto_prefixes=(self.url,)
        )

    def pool_key(self) -> Hashable:
        # the pages made ahead depend only on the task page and the context options: envs of one task share them
        return (type(self), self.url, self.context_options())

    async def prepare_page(self, session: BrowserSession) -> None:
        await session.goto(self.url)
        await session.page.add_style_tag(content=_HIDE_HUMAN_DISPLAY)

    async def start_episode(self, session: BrowserSession, seed: int) -> str:
        ready, utterance = await session.evaluate(_START, [seed, self.episode_max_time])
        if not ready:
            raise EnvUnavailable(f"{self.task}: the page did not become ready (WOB_TASK_READY stayed false)")
        return utterance

    async def episode_state(self, session: BrowserSession, probed: Any = None) -> EpisodeState:
        if session.page.url.split("#")[0] != self.url:
            return EpisodeState(
                reward=0.0 if self.reward_mode == "binary" else -1.0,
                done=True,
                success=False,
                info={"error": f"the page navigated away from the task to {session.page.url}"},
            )
        # read with the action's frame (state_script); read again where that threw (the page was replaced)
        done, raw, timed, reason = probed if probed is not None else await session.evaluate(_STATE)
        if not done:
            return EpisodeState()
        raw = float(raw)
        value = {"raw": raw, "binary": float(raw > 0), "timed": float(timed)}[self.reward_mode]
        return EpisodeState(reward=value, done=True, success=raw > 0, info={"raw_reward": raw, "reason": reason})

    def instance_state(self) -> Any:
        return {"task": self.task, "seed": self.seed_used, "goal": self.goal}
