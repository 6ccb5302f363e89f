"""``BrowserEnv``: the base of the web envs, one browser session (context + page) per episode.

A subclass says how a page is made ready before the seed is known (``prepare_page``, run ahead of
time in the session pool), how an episode starts from a seed (``start_episode``, returns the goal)
and what the page's state is worth after each action (``episode_state``). The base class does the
rest: the shared browser, the pool, parsing actions, observations (accessibility tree with ids,
optional screenshot and set-of-marks, the final screenshot), and the reliability cases:

- an action that cannot be done (unknown id, hidden element, forbidden URL): an invalid action;
- an alert/confirm/prompt: answered, and its text shown in the next observation;
- a popup window: closed, and reported;
- a crashed or hung page: the episode ends (truncated, ``info["error"]``); the next reset takes a
  fresh page, and a browser that died is relaunched. The run never stops for it.

A step costs the action (Playwright's actionability checks included), one page script that waits for the
action's frame and reads the title and the task's state (``state_script``), and one accessibility snapshot (plus
a screenshot where asked). Envs used through the sync API (``reset``/``step``) share one Chromium per process
(``turngym.sandboxes.browser.loop``); envs whose pages are made alike share one pool (``pool_key``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from turngym.core.env import TurnEnv
from turngym.core.errors import SandboxError
from turngym.core.types import Action, ImagePart, Message, Observation, TextPart
from turngym.envs.web.actions import BrowserActions
from turngym.sandboxes.browser import (
    BrowserConfig,
    BrowserSandbox,
    BrowserSession,
    ContextOptions,
    PageError,
    PageSnapshot,
    SessionPool,
    png_data_url,
)
from turngym.sandboxes.browser.loop import run_sync


@dataclass
class EpisodeState:
    """What the page's task says after an action."""

    reward: float = 0.0
    done: bool = False
    success: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)


class BrowserEnv(TurnEnv):
    """Base class of browser envs. See the module docstring."""

    snapshot_unsupported = (
        "its state lives in a browser page (DOM, scripts, server state), which cannot be saved as bytes"
    )
    action_format = BrowserActions()
    max_invalid_actions = 5
    #: a JavaScript function of no arguments that reads the task's state in the page (its reward globals...):
    #: run after each action in the same page script as the wait for the action's frame and the title read (one
    #: round trip), its value reaches ``episode_state`` as ``probed``; None where the state is not in the page
    state_script: str | None = None

    def __init__(
        self,
        *,
        axtree: bool = True,
        screenshot: bool = False,
        som: bool = False,
        final_screenshot: bool = True,
        tools: bool = False,
        pool_size: int = 2,
        browser: BrowserConfig | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """``axtree``/``screenshot``/``som``: what each observation shows (the tree with element ids,
        a PNG screenshot, a set-of-marks screenshot with the ids drawn on); ``final_screenshot`` adds
        a screenshot to the observation that ends the episode; ``tools`` offers the actions as
        native tools; ``pool_size`` sessions are made ahead of time; ``browser`` sets the launch
        options and timeouts (``BrowserConfig``)."""
        super().__init__(**kwargs)
        if not (axtree or screenshot or som):
            raise ValueError("a browser env must observe something: set axtree, screenshot or som to True")
        self.axtree, self.screenshot, self.som = axtree, screenshot, som
        self.final_screenshot = final_screenshot
        self.tools = tools
        self.pool_size = pool_size
        self.browser_config = browser if isinstance(browser, BrowserConfig) else BrowserConfig(**(browser or {}))
        self.session: BrowserSession | None = None
        self.goal = ""
        self.seed_used: int | None = None
        self.done = False
        self._sandbox: BrowserSandbox | None = None
        self._pool: SessionPool | None = None
        self._closing: set[asyncio.Task[Any]] = set()

    # -- hooks for subclasses ------------------------------------------------------------------
    def context_options(self) -> ContextOptions:
        return ContextOptions()

    async def prepare_page(self, session: BrowserSession) -> None:
        """Make a fresh page ready before the seed is known (runs ahead of time in the pool)."""

    async def start_episode(self, session: BrowserSession, seed: int) -> str:
        """Start the task instance of ``seed`` on the prepared page; return the goal text."""
        raise NotImplementedError

    async def episode_state(self, session: BrowserSession, probed: Any = None) -> EpisodeState:
        """The reward and whether the task is over, read after each action. ``probed``: the value of
        ``state_script`` read right after the action (None without one, or where it threw in the page)."""
        return EpisodeState()

    async def on_close(self) -> None:
        """Release what the subclass holds (a web server...)."""

    def pool_key(self) -> Hashable | None:
        """Envs of one browser with the same key share one pool of pages made ahead (a page made for one serves
        whichever resets first): return a key only where ``prepare_page`` and ``context_options`` depend on nothing
        but it. None (the default): this env's own pool."""
        return None

    # -- the env API -------------------------------------------------------------------------
    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        self.seed_used = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.done = False
        self._retire_session()
        pool = await self._ensure_pool()
        last: Exception | None = None
        for _ in range(3):  # a page that breaks during set-up is replaced
            self.session = await pool.take()
            try:
                self.goal = await self.start_episode(self.session, self.seed_used)
                snap = await self.session.observe(tree=self.axtree, screenshot=self.screenshot, som=self.som)
                break
            except PageError as e:
                last = e
                self._retire_session()
        else:
            raise SandboxError(f"{self._task_id()}: could not start an episode on a fresh page: {last}")
        header = f"{self.intro()}\n\n{self.action_format.describe()}"
        return self._observation(snap, header=header), {"url": snap.url, "goal": self.goal}

    async def astep(self, action: Action):
        parsed = self.action_format.parse(action)
        if self.session is None or self.done:
            raise SandboxError("step() after the episode ended: call reset() first")
        try:
            probed = await self.session.act(parsed, probe=self.state_script)
            state = await self.episode_state(self.session, probed)
            self.done = state.done
            show_final = state.done and self.final_screenshot
            snap = await self.session.observe(
                tree=self.axtree and not state.done, screenshot=self.screenshot or show_final, som=self.som and not state.done
            )
        except PageError as e:
            self.done = True
            self._retire_session()
            text = f"The browser page failed: {e}. The episode is over."
            return Observation.text(text), 0.0, False, True, {"error": str(e), "success": False, "action": str(parsed)}
        info = {**state.info, "url": snap.url, "action": str(parsed)}
        if state.done:
            info["success"] = bool(state.success)
        header = self.done_text(state) if state.done else ""
        if state.done:  # free the renderer now: the env may wait long for its next reset
            self._retire_session()
        return self._observation(snap, header=header, final=state.done), float(state.reward), state.done, False, info

    def intro(self) -> str:
        """The first message's opening: the task and its goal."""
        return f"{self.description}\n\nGoal: {self.goal}".strip()

    def done_text(self, state: EpisodeState) -> str:
        return f"The task is over (reward {state.reward:g})."

    async def aclose(self) -> None:
        self._retire_session()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.release()
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            await sandbox.release()
        await self.on_close()

    # -- internals -----------------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        """The sync API (``reset``/``step``/``close``) runs on the process's one sync-API loop, so the browser
        envs used through it share one Chromium (``turngym.sandboxes.browser.loop``)."""
        return run_sync(coro, type(self).__name__)

    async def _ensure_pool(self) -> SessionPool:
        loop_changed = self._sandbox is not None and self._sandbox._shared.get(
            (id(asyncio.get_running_loop()), self.browser_config.model_dump_json())
        ) is not self._sandbox
        if loop_changed:  # used from another event loop than before: start over there
            self._pool = self._sandbox = None
        if self._sandbox is None:
            self._sandbox = await BrowserSandbox.shared(self.browser_config)
        elif not self._sandbox.connected:  # the browser died: relaunch it (the pool replaces the pages made before)
            await self._sandbox.ensure_started()
        if self._pool is None:
            key = self.pool_key() or ("env", id(self))
            options = self.context_options()
            self._pool = self._sandbox.shared_pool(key, prepare=self.prepare_page, options=options, size=self.pool_size)
            self._pool.fill()
        return self._pool

    def _retire_session(self) -> None:
        """Close the last episode's context in the background (the next reset does not wait for it)."""
        session, self.session = self.session, None
        if session is not None:
            task = asyncio.ensure_future(session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _observation(self, snap: PageSnapshot, *, header: str = "", final: bool = False) -> Observation:
        parts = [header] if header else []
        notes = []
        if snap.dialogs:
            notes += [f"The page showed a dialog ({d}); it was answered." for d in snap.dialogs]
        if snap.popups:
            notes.append(f"The page opened {len(snap.popups)} new window(s); they were closed.")
        if snap.blocked:
            notes.append(f"{len(snap.blocked)} request(s) outside the task's site were blocked, e.g. {snap.blocked[0]}.")
        parts += notes
        parts.append(f"URL: {snap.url}")
        if snap.tree:
            parts.append(f"Page:\n{snap.tree}")
        content: list[TextPart | ImagePart] = [TextPart(text="\n\n".join(parts))]
        if snap.screenshot is not None:
            content.append(ImagePart(url=png_data_url(snap.screenshot)))
        if snap.som_screenshot is not None:
            content.append(ImagePart(url=png_data_url(snap.som_screenshot)))
        tools = self.action_format.tools if self.tools and not final else []
        return Observation(messages=[Message(role="user", content=content)], tools=tools)
