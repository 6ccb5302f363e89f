"""report.html and compare.html driven in Chromium (Playwright): a real eval run (GuessNumber played by the random
agent, an env whose odd seeds raise, one MiniWoB episode whose final screenshot the page must show), opened from
file://; the filters change the visible rows, sorting sorts, an episode opens turn by turn, images load, and the
page logs no error. Set TURNGYM_DOCS_SCREENSHOTS=1 to rewrite docs/report.png and docs/compare.png."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import turngym
from tests.conftest import REPO, chromium_of_this_process, require
from turngym.benchmarks.eval import eval_config, execute, plan_run
from turngym.core.env import TurnEnv
from turngym.core.types import Observation

pytestmark = pytest.mark.browser

GN = "turngym/GuessNumber-v0"
FLAKY = "reporttest/Flaky-v0"
MINIWOB = "miniwob/click-test-v1"


class Flaky(TurnEnv):
    """One turn; an odd seed's step raises (the episode ends with that error recorded), an even one succeeds."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._seed = seed or 0
        return Observation.text("Say [1]."), {"task_id": "flaky"}

    def legal_actions(self):
        return ["[1]"]

    def step(self, action):
        if self._seed % 2:
            raise RuntimeError(f"the flaky backend fell over on seed {self._seed}")
        return Observation.text("done"), 1.0, True, False, {"success": True}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs A (GuessNumber, Flaky, one MiniWoB episode; random agent) and B (GuessNumber, Flaky; another seed)."""
    from turngym.core.registry import _browser_missing

    require(_browser_missing() is None, _browser_missing() or "")
    turngym.register(FLAKY, Flaky, max_turns=2)
    root = tmp_path_factory.mktemp("runs")
    envs = [{"id": GN, "kwargs": {"high": 8}, "max_turns": 3}, {"id": FLAKY, "episodes": 4}]
    out = {}
    for name, extra, seed in (("A", [{"id": MINIWOB, "episodes": 1}], 0), ("B", [], 1)):
        suite = root / f"{name}.yaml"
        suite.write_text(yaml.safe_dump({"name": f"mini{name}", "episodes": 8, "envs": [*envs, *extra]}))
        cfg = eval_config(str(suite), agent="random", overrides=[f"agent.seed={seed}"])
        asyncio.run(execute(plan_run(cfg, root / name)))
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from turngym.sandboxes.browser.sandbox import CHROMIUM_ARGS, find_chromium

    marker = f"--turngym-owner={os.getpid()}-report"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=find_chromium(), args=[*CHROMIUM_ARGS, marker])
        try:
            yield b
        finally:
            b.close()
    deadline = time.monotonic() + 10
    while chromium_of_this_process() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not chromium_of_this_process(), "Chromium left running by the report tests"


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(path.resolve().as_uri())
    return page, problems


def visible_ids(page) -> list[str]:
    return page.eval_on_selector_all("#episodes tbody tr.ep", "rs => rs.map(r => r.dataset.id)")


def outcomes(page) -> list[str]:
    return page.eval_on_selector_all("#episodes tbody tr.ep", "rs => rs.map(r => r.dataset.outcome)")


def column(page, key: str) -> list[str]:
    i = page.eval_on_selector_all("#episodes th", f"hs => hs.findIndex(h => h.dataset.key === '{key}')")
    return page.eval_on_selector_all("#episodes tbody tr.ep", f"rs => rs.map(r => r.children[{i}].textContent)")


def docs_shot(page, name: str, tmp_path: Path) -> None:
    target = REPO / "docs" / name if os.environ.get("TURNGYM_DOCS_SCREENSHOTS") else tmp_path / name
    page.screenshot(path=str(target))
    if target.parent.name == "docs":  # committed: a 128-colour palette keeps it small
        from PIL import Image

        Image.open(target).convert("RGB").quantize(colors=128).save(target, optimize=True)


def test_report_filters_sorts_and_opens_transcripts(runs, browser, tmp_path):
    page, problems = open_page(browser, runs["A"] / "report.html")
    try:
        ids = visible_ids(page)
        assert len(ids) == 8 + 4 + 1 and page.text_content("#count") == "13 of 13 episodes shown"
        # the metadata and the plot's full env ids
        meta = page.text_content("#meta")
        assert "random" in meta and turngym.__version__ in meta and "seed=0" in meta and "UTC" in meta
        # each distinct error text once in the errors section
        errors = page.eval_on_selector_all("#errors pre", "ps => ps.map(p => p.textContent)")
        assert len(errors) == 2 and all("the flaky backend fell over on seed" in e for e in errors), errors

        page.select_option("#f-outcome", "error")
        assert sorted(visible_ids(page)) == [f"{FLAKY}/s1/g0", f"{FLAKY}/s3/g0"]
        page.select_option("#f-outcome", "success")
        success = visible_ids(page)
        assert {f"{FLAKY}/s0/g0", f"{FLAKY}/s2/g0"} <= set(success) and len(success) < len(ids)
        assert set(outcomes(page)) == {"success"}
        page.select_option("#f-outcome", "failure")
        failure = visible_ids(page)
        assert f"{GN}/s0/g0" in failure and set(outcomes(page)) == {"failure"}
        assert len(success) + len(failure) + 2 == len(ids)
        page.select_option("#f-outcome", "")
        page.select_option("#f-env", GN)
        assert len(visible_ids(page)) == 8 and all(i.startswith(GN) for i in visible_ids(page))
        page.select_option("#f-env", "")
        page.fill("#f-text", "click-test")
        assert visible_ids(page) == [f"{MINIWOB}/s0/g0"]
        page.fill("#f-text", "")

        page.click("#episodes th[data-key=return]")
        returns = [float(x) for x in column(page, "return")]
        assert returns == sorted(returns) and returns[0] < returns[-1]
        page.click("#episodes th[data-key=return]")
        assert [float(x) for x in column(page, "return")] == sorted(returns, reverse=True)
        page.click("#episodes th[data-key=id]")
        assert visible_ids(page) == sorted(ids)

        # a GuessNumber episode opens with its three turns, rewards and actions
        page.click(f"#episodes tr.ep[data-id='{GN}/s2/g0']")
        detail = page.locator("#episodes tr.detail-row")
        assert detail.locator(".turn").count() == 3 and "reward" in detail.locator(".turn .head").first.text_content()
        page.click(f"#episodes tr.ep[data-id='{GN}/s2/g0']")
        assert page.locator("#episodes tr.detail-row").count() == 0
        # the MiniWoB episode's screenshot loads from the run's images/
        page.click(f"#episodes tr.ep[data-id='{MINIWOB}/s0/g0']")
        shot = page.locator("#episodes tr.detail-row img.shot").last
        assert shot.get_attribute("src").startswith("images/")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shot.element_handle(), timeout=5000)
        assert page.eval_on_selector_all("img", "is => is.every(i => i.complete && i.naturalWidth > 0)")
        # an errored episode shows its error once, in its transcript
        page.click(f"#episodes tr.ep[data-id='{FLAKY}/s1/g0']")
        assert page.locator("#episodes tr.detail-row pre.bad").count() == 1
        page.fill("#f-text", "flaky backend")  # a re-render closes the open episodes
        assert page.locator("#episodes tr.detail-row").count() == 0 and len(visible_ids(page)) == 2
        page.fill("#f-text", "")
        page.click("#episodes th[data-key=env]")
        page.click(f"#episodes tr.ep[data-id='{MINIWOB}/s0/g0']")
        page.evaluate("document.getElementById('caps').scrollIntoView()")
        docs_shot(page, "report.png", tmp_path)
        assert problems == []
    finally:
        page.close()


def test_compare_page_shows_a_delta_row_per_env(runs, browser, tmp_path):
    out = tmp_path / "compare.html"
    cli = [sys.executable, "-m", "turngym.cli.app", "compare", str(runs["A"]), str(runs["B"]), "--out", str(out)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    assert str(out.resolve()) in proc.stdout
    page, problems = open_page(browser, out)
    try:
        envs = page.eval_on_selector_all("#deltas tr.delta", "rs => rs.map(r => r.dataset.env)")
        assert envs == [GN, FLAKY, MINIWOB, "overall"]
        gn = page.locator(f"#deltas tr.delta[data-env='{GN}'] td").all_text_contents()
        assert gn[1] == "8 / 8" and "…" in gn[5]
        miniwob = page.locator(f"#deltas tr.delta[data-env='{MINIWOB}'] td").all_text_contents()
        assert miniwob[1] == "1 / -" and miniwob[4] == "-"
        runs_table = page.text_content("#runs")
        assert "seed=0" in runs_table and "seed=1" in runs_table
        docs_shot(page, "compare.png", tmp_path)
        assert problems == []
    finally:
        page.close()


def test_compare_refuses_a_directory_that_is_no_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "turngym.cli.app", "compare", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and "nothing to compare" in proc.stderr
