"""The scripted WebShopLite shopper: an oracle that knows the target product of the task and
walks the site like an agent would (search, open the product, choose options, add, check out),
reading the page tree for element ids. Each reply depends on the page it is on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from turngym.core.types import Observation
from turngym.envs.web.webshop.env import ORIGIN


def expert(env: Any) -> Callable[[Observation], str]:
    task = env.state.task
    target = env.state.product(task.target) if hasattr(env.state, "product") else None
    chosen: set[str] = set()

    def find(role: str, name: str) -> str | None:
        for e in env.session.last.elements.values():
            if e.role == role and e.name == name:
                return e.id
        return None

    def policy(observation: Observation) -> str:
        path = urlsplit(env.session.page.url).path
        if path == "/":
            return f'fill({find("searchbox", "Search") or find("textbox", "Search")}, {target.title!r})'
        if path == "/search":
            link = find("link", target.title)
            if link is not None:
                return f"click({link})"
            more = find("link", "Next page")
            return f"click({more})" if more else f"goto({ORIGIN + '/'!r})"
        if path == f"/item/{target.id}":
            for opt, value in task.options.items():
                if opt not in chosen:
                    chosen.add(opt)
                    return f"click({find('radio', value)})"
            return f"click({find('button', 'Add to cart')})"
        if path == "/cart":
            return f"click({find('button', 'Checkout')})"
        return f"goto({ORIGIN + '/'!r})"

    searched = False

    def with_submit(observation: Observation) -> str:
        # after filling the search box, click Search
        nonlocal searched
        if urlsplit(env.session.page.url).path == "/" and searched:
            searched = False
            return f"click({find('button', 'Search')})"
        action = policy(observation)
        searched = action.startswith("fill(")
        return action

    return with_submit
