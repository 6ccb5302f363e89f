"""``turngym/WebShopLite-v0``: buy what the instruction asks for in a local web shop.

The env serves the shop on 127.0.0.1 (a free port) and stops it on ``close``; the page sees it as
``http://webshop.lite`` (``ORIGIN``: the browser loads it from the local port, so no port reaches an
observation and two envs with one seed show the same pages) and may reach nothing else. ``reset(seed)``
generates the catalogue and the instruction from the seed. The
episode ends at checkout; the reward is WebShop's attribute-match score of the bought product (the
best one, divided by the number of products bought, so buying everything does not pay).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from turngym.envs.web.base import BrowserEnv, EpisodeState
from turngym.envs.web.webshop.catalogue import make_catalogue, make_task, webshop_reward
from turngym.envs.web.webshop.server import ShopServer, ShopState
from turngym.sandboxes.browser import BrowserSession, ContextOptions

#: the shop's origin as the page and the agent see it, in every process (the server's port is not)
ORIGIN = "http://webshop.lite"


class WebShopLiteEnv(BrowserEnv):
    description = (
        "You are shopping in WebShopLite, a web shop. Find the product the instruction asks for, choose "
        "its options, add it to the cart and check out. You score by how well the bought product matches."
    )

    def __init__(self, *, n_products: int = 60, viewport: tuple[int, int] = (800, 600), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_products < 6:
            raise ValueError(f"n_products must be >= 6 (one per category), got {n_products}")
        self.n_products = n_products
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.server: ShopServer | None = None
        self.state: ShopState | None = None

    def _server(self) -> ShopServer:
        if self.server is None:
            self.server = ShopServer()
        return self.server

    def context_options(self) -> ContextOptions:
        return ContextOptions(viewport=self.viewport, allowed_origins=(), aliases=((ORIGIN, self._server().origin),))

    async def start_episode(self, session: BrowserSession, seed: int) -> str:
        rng = np.random.default_rng(seed)
        catalogue = make_catalogue(rng, self.n_products)
        self.state = ShopState(catalogue=catalogue, task=make_task(rng, catalogue))
        server = self._server()
        server.open(self.state)
        await session.goto(ORIGIN + "/")
        return self.state.task.instruction

    async def episode_state(self, session: BrowserSession, probed: Any = None) -> EpisodeState:
        order = self.state.order if self.state is not None else None
        if order is None:
            return EpisodeState()
        scores = [webshop_reward(self.state.task, p) for p in order]
        reward = max(scores) / len(order)
        bought = [p.product.id for p in order]
        return EpisodeState(reward=reward, done=True, success=reward >= 1.0, info={"bought": bought, "score": reward})

    def done_text(self, state: EpisodeState) -> str:
        return f"Order placed. Score {state.reward:.2f} of 1."

    def instance_state(self) -> Any:
        return {"seed": self.seed_used, "instruction": self.goal}

    async def on_close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
