"""The WebShopLite web app: a stdlib HTTP server on 127.0.0.1 (a free port), in a thread.

Pages: ``/`` (search box), ``/search?q=&page=``, ``/item/<id>`` (options as radio buttons, add to
cart), ``/cart`` (remove, checkout), ``/checkout`` (places the order). Every page shows the
instruction. The shop's state (catalogue, task, cart, order) is replaced at each episode's reset.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote_plus, urlsplit

from turngym.envs.web.webshop.catalogue import Product, Purchase, Task, search

PAGE_SIZE = 10


@dataclass
class ShopState:
    catalogue: list[Product]
    task: Task
    cart: list[Purchase] = field(default_factory=list)
    order: list[Purchase] | None = None

    def product(self, pid: str) -> Product | None:
        return next((p for p in self.catalogue if p.id == pid), None)


def _page(state: ShopState, title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - WebShopLite</title>"
        "<style>body{font-family:sans-serif;margin:12px} .instr{background:#eef;padding:6px}"
        " li{margin:4px 0}</style></head><body>"
        f"<div class='instr' role='note' aria-label='Instruction'>Instruction: {html.escape(state.task.instruction)}</div>"
        "<nav><a href='/'>Home</a> | <a href='/cart'>Cart (" + str(len(state.cart)) + ")</a></nav>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def render(state: ShopState, path: str, query: dict[str, list[str]]) -> tuple[int, str]:
    """(status, html) for one GET request."""
    q = {k: v[0] for k, v in query.items()}
    if path == "/":
        body = (
            "<form action='/search' role='search'><input name='q' aria-label='Search' placeholder='Search products'>"
            "<button type='submit'>Search</button></form>"
        )
        return 200, _page(state, "WebShopLite", body)
    if path == "/search":
        hits = search(state.catalogue, q.get("q", ""))
        page = max(1, int(q.get("page", "1") or 1))
        shown = hits[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        items = "".join(
            f"<li><a href='/item/{p.id}'>{html.escape(p.title)}</a> ${p.price:.2f}</li>" for p in shown
        )
        more = (
            f"<a href='/search?q={quote_plus(q.get('q', ''))}&page={page + 1}'>Next page</a>"
            if page * PAGE_SIZE < len(hits)
            else ""
        )
        body = f"<p>{len(hits)} results for {html.escape(q.get('q', ''))!s} (page {page})</p><ul>{items}</ul>{more}"
        return 200, _page(state, "Search results", body)
    if path.startswith("/item/"):
        p = state.product(path.rsplit("/", 1)[1])
        if p is None:
            return 404, _page(state, "Not found", "<p>No such product.</p>")
        groups = "".join(
            f"<fieldset><legend>{opt}</legend>"
            + "".join(
                f"<label><input type='radio' name='{opt}' value='{html.escape(v)}'>{html.escape(v)}</label> "
                for v in values
            )
            + "</fieldset>"
            for opt, values in p.options.items()
        )
        body = (
            f"<p>Price: ${p.price:.2f} | Rating: {p.rating}</p>"
            f"<p>Features: {', '.join(html.escape(a) for a in p.attributes)}</p>"
            f"<form action='/cart/add'><input type='hidden' name='id' value='{p.id}'>{groups}"
            "<button type='submit'>Add to cart</button></form>"
        )
        return 200, _page(state, p.title, body)
    if path in ("/cart/add", "/cart/remove"):
        if path == "/cart/add" and (p := state.product(q.get("id", ""))) is not None:
            state.cart.append(Purchase(p, {opt: q[opt] for opt in p.options if opt in q}))
        if path == "/cart/remove" and 0 <= (i := int(q.get("i", "-1"))) < len(state.cart):
            state.cart.pop(i)
        # the cart page, its URL set in place: no HTTP redirect, which the browser would follow to the serving port
        status, text = render(state, "/cart", {})
        return status, text.replace("</body>", "<script>history.replaceState(null, '', '/cart')</script></body>")
    if path == "/cart":
        items = "".join(
            f"<li>{html.escape(c.product.title)} ({html.escape(', '.join(f'{k}: {v}' for k, v in c.options.items()) or 'no options')})"
            f" ${c.product.price:.2f} <a href='/cart/remove?i={i}'>Remove</a></li>"
            for i, c in enumerate(state.cart)
        )
        body = f"<ul>{items}</ul>" if state.cart else "<p>Your cart is empty.</p>"
        body += "<form action='/checkout'><button type='submit'>Checkout</button></form>"
        return 200, _page(state, "Cart", body)
    if path == "/checkout":
        if not state.cart:
            return 200, _page(state, "Checkout", "<p>Your cart is empty: add a product first.</p>")
        state.order = list(state.cart)
        state.cart = []
        return 200, _page(state, "Order placed", "<p>Thank you! Your order is placed.</p>")
    return 404, _page(state, "Not found", "<p>No such page.</p>")


class ShopServer:
    """The web app in a thread; ``state`` is swapped per episode. ``close()`` is safe twice."""

    def __init__(self) -> None:
        self.state: ShopState | None = None
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                with shop._lock:
                    if shop.state is None:
                        status, text = 503, "the shop is not open yet"
                    else:
                        status, text = render(shop.state, parts.path, parse_qs(parts.query))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webshoplite", daemon=True)
        self._thread.start()
        self._closed = False

    def open(self, state: ShopState) -> None:
        with self._lock:
            self.state = state

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
