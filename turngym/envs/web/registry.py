"""Registration of the web envs: the 130 MiniWoB++ tasks (``miniwob/<task>-v1``) and WebShopLite.

By string only: nothing here imports Playwright or the ``miniwob`` package (the task names are a
static list), so ``import turngym`` and ``turngym envs list`` stay fast.
"""

from turngym.core.registry import register
from turngym.envs.web.miniwob_tasks import MINIWOB_TASKS

#: MiniWoB++ tasks with a scripted expert (turngym.envs.web.miniwob_experts)
MINIWOB_EXPERT_TASKS = frozenset(
    {
        "click-test",
        "click-test-2",
        "click-test-transfer",
        "click-button",
        "click-button-sequence",
        "click-option",
        "click-checkboxes",
        "click-checkboxes-transfer",
        "click-dialog",
        "click-dialog-2",
        "click-tab",
        "click-collapsible",
        "click-collapsible-nodelay",
        "enter-text",
        "enter-text-2",
        "enter-password",
        "focus-text",
        "focus-text-2",
        "choose-list",
        "login-user",
        "unicode-test",
        "simple-arithmetic",
        "multi-layouts",
        "multi-orderings",
    }
)


def register_web() -> None:
    for task in MINIWOB_TASKS:
        register(
            f"miniwob/{task}-v1",
            "turngym.envs.web.miniwob:MiniWoBEnv",
            description=f"MiniWoB++ {task}: a small web task in Chromium; reward read from the page.",
            modality="gui",
            sandbox="browser",
            max_turns=10,
            reward_range=(-1.0, 1.0),
            tags=("web", "miniwob"),
            expert="turngym.envs.web.miniwob_experts:expert" if task in MINIWOB_EXPERT_TASKS else None,
            requires=("browser", "module:miniwob"),
            kwargs={"task": task},
        )
    register(
        "turngym/WebShopLite-v0",
        "turngym.envs.web.webshop.env:WebShopLiteEnv",
        description="Buy the product an instruction asks for in a local web shop; partial credit by attribute match.",
        modality="gui",
        sandbox="browser",
        max_turns=30,
        reward_range=(0.0, 1.0),
        tags=("web", "shopping", "webshop"),
        expert="turngym.envs.web.webshop.expert:expert",
        requires=("browser",),
    )
