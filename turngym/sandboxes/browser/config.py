"""How the browser is launched (``BrowserConfig``) and how each session's context is made
(``ContextOptions``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BrowserConfig(BaseModel):
    """How the browser is launched and how long pages may take. Times in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: Chromium binary; None finds one ($TURNGYM_CHROMIUM, chromium, chromium-browser, google-chrome)
    executable_path: str | None = None
    headless: bool = True
    extra_args: tuple[str, ...] = ()
    launch_timeout: float = 60.0
    #: an element action (click, fill...) that cannot run within this time fails as an invalid action
    action_timeout: float = 5.0
    navigation_timeout: float = 30.0
    #: a page that does not answer an observation or a script within this time is hung
    page_timeout: float = 20.0
    #: where pid files live; None: $XDG_RUNTIME_DIR/turngym or /tmp/turngym-<uid>
    runtime_dir: str | None = None
    #: at most this many sessions made ahead of time in all pools of one browser together (each is a
    #: renderer process); past it, a pool makes its sessions on demand
    max_warm: int = Field(default=12, ge=0)


class ContextOptions(BaseModel):
    """Per-session browser-context options (one set per pool)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    viewport: tuple[int, int] = (800, 600)
    device_scale_factor: float = 1.0
    #: extra URL prefixes the agent may ``goto`` besides loopback http(s) (e.g. a task's file:// dir)
    goto_prefixes: tuple[str, ...] = ()
    #: http(s) origins the page may reach (``http://127.0.0.1:8123``); None: any loopback origin
    allowed_origins: tuple[str, ...] | None = None
    #: (shown origin, serving origin) pairs: the page loads ``http://webshop.lite/cart`` from
    #: ``http://127.0.0.1:PORT/cart`` but sees, links and reports the shown one, so a site an env serves on a free
    #: local port looks the same in every process (no port in observations; one seed, one page everywhere). A
    #: shown origin is always allowed, and the agent may ``goto`` it. The browser follows an HTTP redirect
    #: itself without routing it, so such a site must not answer with HTTP redirects (WebShopLite renders the
    #: target page and sets its URL with ``history.replaceState``).
    aliases: tuple[tuple[str, str], ...] = ()
    #: record a Playwright trace per session into this directory (slow; for debugging)
    trace_dir: str | None = None

