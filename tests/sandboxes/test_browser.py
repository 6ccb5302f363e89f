"""The browser sandbox against the real Chromium: isolation, stable ids, and the reliability cases
(dialog, popup, hung page, crashed renderer, frame detached), and that no Chromium is left."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import chromium_of_this_process, require
from turngym.core.errors import ActionError
from turngym.core.registry import _browser_missing
from turngym.sandboxes.browser import (
    BrowserConfig,
    BrowserSandbox,
    ContextOptions,
    PageCrashed,
    PageHung,
    reap_orphans,
    url_allowed,
)
from turngym.sandboxes.browser.actions import BrowserAction

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True, scope="module")
def chromium_present_and_left_clean():
    require(_browser_missing() is None, _browser_missing() or "")
    yield
    deadline = time.monotonic() + 10
    while chromium_of_this_process() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not chromium_of_this_process(), "Chromium processes left after the browser tests"


def data_url(html: str) -> str:
    from urllib.parse import quote

    return "data:text/html," + quote(html)


@pytest.fixture
def local_server():
    """A loopback HTTP server that answers every GET with a small page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"<html><body><p id=ok>local page</p></body></html>"
            if self.path.startswith("/moving"):  # replaces itself soon after loading
                body = b"<p>moving</p><script>setTimeout(() => location.href = '/landed', 30)</script>"
            elif self.path.startswith("/landed"):
                body = b"<h1>Landed</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_policy():
    assert url_allowed("file:///tmp/x.html") and url_allowed("data:text/html,hi")
    assert url_allowed("http://127.0.0.1:5/a") and url_allowed("http://localhost/") and url_allowed("ws://[::1]:9/")
    assert not url_allowed("https://example.com/") and not url_allowed("http://10.0.0.1/")
    assert not url_allowed("http://127.0.0.1:6/", ("http://127.0.0.1:5",))
    assert url_allowed("ws://127.0.0.1:5/x", ("http://127.0.0.1:5",))


async def test_network_outside_loopback_is_blocked(local_server):
    async with BrowserSandbox(config=BrowserConfig()) as browser:
        session = await browser.new_session()
        await session.goto(local_server + "/start")
        result = await session.evaluate(
            """async (local) => {
                const out = {};
                for (const [k, url] of [['ext', 'http://example.com/x'], ['ip', 'http://10.1.2.3/y'], ['local', local]]) {
                  try { const r = await fetch(url); out[k] = r.status; } catch (e) { out[k] = 'failed'; }
                }
                return out;
            }""",
            local_server + "/api",
        )
        assert result == {"ext": "failed", "ip": "failed", "local": 200}
        snap = await session.observe()
        assert "http://example.com/x" in snap.blocked and "http://10.1.2.3/y" in snap.blocked
        with pytest.raises(ActionError, match="not allowed"):
            await session.act(BrowserAction(kind="goto", url="https://example.com/"))
        await session.close()

        # a session limited to one origin cannot reach another loopback port either
        limited = await browser.new_session(ContextOptions(allowed_origins=("http://127.0.0.1:1",)))
        await limited.goto(data_url("<p>x</p>"))
        assert await limited.evaluate("(u) => fetch(u).then(() => 'ok', () => 'failed')", local_server) == "failed"
        await limited.close()
        await limited.close()  # safe twice


async def test_element_ids_are_stable_across_steps():
    page = data_url(
        """<button onclick="document.getElementById('log').textContent += 'A'">Alpha</button>
        <input aria-label="Name"><div id=log></div>
        <button onclick="const b = document.createElement('button'); b.textContent = 'New';
                         document.body.prepend(b)">Add</button>"""
    )
    async with BrowserSandbox() as browser:
        session = await browser.new_session()
        await session.goto(page)
        first = await session.observe()
        ids = {(e.role, e.name): e.id for e in first.elements.values()}
        alpha, add, name = ids[("button", "Alpha")], ids[("button", "Add")], ids[("textbox", "Name")]
        assert f"[{alpha}] button \"Alpha\"" in first.tree
        await session.act(BrowserAction(kind="click", ref=add))  # prepends a new element
        await session.act(BrowserAction(kind="fill", ref=name, text="Ada"))
        second = await session.observe()
        again = {(e.role, e.name): e.id for e in second.elements.values()}
        assert again[("button", "Alpha")] == alpha and again[("button", "Add")] == add
        assert again[("button", "New")] not in (alpha, add, name)
        await session.act(BrowserAction(kind="click", ref=alpha))
        assert await session.evaluate("document.getElementById('log').textContent") == "A"
        assert await session.evaluate("document.querySelector('input').value") == "Ada"
        with pytest.raises(ActionError, match=r"no element \[999\]"):
            await session.act(BrowserAction(kind="click", ref="999"))
        await session.close()


async def test_dialog_is_answered_and_reported_and_popup_closed():
    page = data_url(
        """<button onclick="alert('Hello there'); document.title = 'after alert'">Alert</button>
        <button onclick="window.open('about:blank')">Popup</button>"""
    )
    async with BrowserSandbox() as browser:
        session = await browser.new_session()
        await session.goto(page)
        snap = await session.observe()
        by_name = {e.name: e.id for e in snap.elements.values()}
        await session.act(BrowserAction(kind="click", ref=by_name["Alert"]))
        snap = await session.observe()
        assert snap.dialogs == ["alert: Hello there"] and snap.title == "after alert"
        await session.act(BrowserAction(kind="click", ref=by_name["Popup"]))
        snap = await session.observe()
        assert len(snap.popups) == 1 and len(session.context.pages) == 1
        await session.close()


async def test_hung_page_ends_the_session_not_the_browser():
    page = data_url("<button onclick='while (true) {}'>Hang</button>")
    async with BrowserSandbox(config=BrowserConfig(page_timeout=3, action_timeout=2)) as browser:
        session = await browser.new_session()
        await session.goto(page)
        snap = await session.observe()
        with pytest.raises(PageHung, match="did not answer"):  # noqa: PT012 - either call may see it
            await session.act(BrowserAction(kind="click", ref=next(iter(snap.elements))))
            await session.observe()
        with pytest.raises(PageHung):
            await session.observe()
        await session.close()
        fresh = await browser.new_session()
        await fresh.goto(data_url("<p>fine</p>"))
        assert "fine" in (await fresh.observe()).tree
        await fresh.close()


async def test_crashed_renderer_is_reported_and_the_next_session_works():
    async with BrowserSandbox() as browser:
        session = await browser.new_session()
        await session.goto(data_url("<p>soon gone</p>"))
        cdp = await session.context.new_cdp_session(session.page)
        with contextlib.suppress(Exception):  # the crash cuts the reply: do not wait for it
            await asyncio.wait_for(cdp.send("Page.crash"), 2)
        with pytest.raises(PageCrashed, match="crashed"):
            for _ in range(50):
                await session.observe()
        await session.close()
        fresh = await browser.new_session()
        await fresh.goto(data_url("<p>alive</p>"))
        assert "alive" in (await fresh.observe()).tree
        await fresh.close()


async def test_observation_survives_a_page_that_navigates_under_it(local_server):
    # the page replaces itself while we observe: frames detach, execution contexts are destroyed
    page = local_server + "/moving"
    async with BrowserSandbox() as browser:
        session = await browser.new_session()
        for _ in range(3):
            await session.goto(page)
            snaps = [await session.observe(screenshot=True) for _ in range(5)]
            assert all(s.screenshot and s.screenshot[:8] == b"\x89PNG\r\n\x1a\n" for s in snaps)
        await session.page.wait_for_load_state()
        assert "Landed" in (await session.observe()).tree
        await session.close()


async def test_set_of_marks_and_pool():
    async with BrowserSandbox() as browser:

        async def prepare(session):
            await session.goto(data_url("<button>One</button><button>Two</button>"))

        pool = browser.pool(prepare=prepare, size=2)
        pool.fill()
        sessions = [await pool.take() for _ in range(3)]
        assert len({id(s.context) for s in sessions}) == 3  # one context each
        snap = await sessions[0].observe(som=True)
        assert snap.som_screenshot[:4] == b"\x89PNG" and all(e.box for e in snap.elements.values() if e.role == "button")
        for s in sessions:
            await s.close()
        await pool.close()
        await pool.close()


def test_orphaned_chromium_of_a_killed_owner_is_reaped(tmp_path):
    """A runner that was SIGKILLed leaves its Chromium; the next start-up kills it."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, json
        from turngym.sandboxes.browser import BrowserSandbox, BrowserConfig
        async def main():
            b = BrowserSandbox(config=BrowserConfig(runtime_dir={str(tmp_path)!r}))
            await b.ensure_started()
            print(json.dumps(b.pids), flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pids = json.loads(proc.stdout.readline())
        assert pids and all(Path(f"/proc/{p}").exists() for p in pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert list((tmp_path / "turngym" / "browsers").glob("*.json")), "the pid file must outlive the owner"
        killed = reap_orphans(BrowserConfig(runtime_dir=str(tmp_path)))
        assert set(pids) <= set(killed)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
        assert not list((tmp_path / "turngym" / "browsers").glob("*.json"))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
