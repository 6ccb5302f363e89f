"""The browser sandbox: Playwright's async API driving one Chromium per owner, one context per episode.

    browser = await BrowserSandbox.shared(BrowserConfig())     # one Chromium per event loop, ref-counted
    pool = browser.pool(prepare=load_task, size=2)               # contexts+pages made ahead of time
    session = await pool.take()                                  # a fresh context with a ready page
    snap = await session.observe(screenshot=True)                # a11y tree (ids), URL, PNG
    await session.act(BrowserAction(kind="click", ref="7"))
    await session.close(); await pool.close(); await browser.release()

One idea a module:

    config.py        BrowserConfig (launch, timeouts), ContextOptions (one per pool)
    sandbox.py       BrowserSandbox: the Chromium process, its lifecycle, new sessions and pools
    reaper.py        pid files; kills the browsers of owners that are gone
    pool.py          SessionPool: sessions made ahead of time (one per env, or shared by envs of one task)
    loop.py          the event loop of the sync API: sync-API envs of a process share one Chromium
    session.py       BrowserSession: one context and page (observe, act), the isolation rule
    a11y.py          the accessibility-tree text agents read, with element ids
    actions.py       BrowserAction, what a session can be asked to do
    set_of_marks.py  the screenshot with element ids drawn on it

Importing this package imports neither Playwright nor Pillow: they load on first use. Errors are
``SandboxError``s; a page that cannot go on raises ``PageError`` (``PageCrashed``, ``PageHung``), drawn
in turngym/core/errors.py.
"""

from turngym.sandboxes.browser.a11y import Element, parse_snapshot
from turngym.sandboxes.browser.actions import ELEMENT_ACTIONS, BrowserAction, ref_of
from turngym.sandboxes.browser.config import BrowserConfig, ContextOptions
from turngym.sandboxes.browser.pool import SessionPool
from turngym.sandboxes.browser.reaper import reap_orphans, runtime_dir
from turngym.sandboxes.browser.sandbox import CHROMIUM_ARGS, BrowserSandbox, find_chromium
from turngym.sandboxes.browser.session import (
    LOOPBACK_HOSTS,
    BrowserSession,
    PageCrashed,
    PageError,
    PageHung,
    PageSnapshot,
    png_data_url,
    url_allowed,
)
from turngym.sandboxes.browser.set_of_marks import draw_marks

__all__ = [
    "CHROMIUM_ARGS",
    "ELEMENT_ACTIONS",
    "LOOPBACK_HOSTS",
    "BrowserAction",
    "BrowserConfig",
    "BrowserSandbox",
    "BrowserSession",
    "ContextOptions",
    "Element",
    "PageCrashed",
    "PageError",
    "PageHung",
    "PageSnapshot",
    "SessionPool",
    "draw_marks",
    "find_chromium",
    "parse_snapshot",
    "png_data_url",
    "reap_orphans",
    "ref_of",
    "runtime_dir",
    "url_allowed",
]
