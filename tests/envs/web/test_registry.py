"""Registration of the web envs: every MiniWoB++ task, metadata, and no heavy import."""

from __future__ import annotations

import subprocess
import sys

import turngym
from turngym.envs.web.miniwob_experts import SOLVERS
from turngym.envs.web.miniwob_tasks import MINIWOB_TASKS
from turngym.envs.web.registry import MINIWOB_EXPERT_TASKS


def test_static_task_list_is_the_package_list():
    # found without importing the package: `import miniwob` registers its own Selenium envs under
    # the same gymnasium ids (miniwob/<task>-v1), replacing turngym's
    from turngym.envs.web.miniwob import miniwob_html_dir

    html = miniwob_html_dir()
    assert sorted(p.stem for p in html.glob("*.html")) == sorted(MINIWOB_TASKS)
    assert len(MINIWOB_TASKS) == 130


def test_every_task_registered_with_metadata():
    ids = {info.id for info in turngym.list_envs(include_unavailable=True, namespace="miniwob")}
    assert ids == {f"miniwob/{t}-v1" for t in MINIWOB_TASKS}
    info = turngym.env_info("miniwob/click-button-v1")
    assert (info.modality, info.sandbox, info.kwargs) == ("gui", "browser", {"task": "click-button"})
    assert "browser" in info.requires and info.expert
    assert turngym.env_info("miniwob/drag-box-v1").expert is None
    shop = turngym.env_info("turngym/WebShopLite-v0")
    assert (shop.modality, shop.sandbox, shop.reward_range) == ("gui", "browser", (0.0, 1.0))


def test_expert_list_matches_the_solvers():
    assert set(SOLVERS) == set(MINIWOB_EXPERT_TASKS)
    assert len(SOLVERS) >= 15


def test_importing_turngym_imports_no_browser_code():
    code = (
        "import sys, turngym; turngym.list_envs(include_unavailable=True); "
        "bad = [m for m in ('playwright', 'miniwob', 'turngym.sandboxes.browser', 'turngym.envs.web.miniwob') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
