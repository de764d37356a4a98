"""A tiny read-only HTTP endpoint on loopback: the dashboard at /, GET /status (JSON) and
GET /metrics (Prometheus).

Plain asyncio streams, no web framework: a handful of routes do not justify a dependency.
Each request reads the database through its own read-only connection, so a slow scrape
never holds up the writer. The dashboard is three static files shipped in the package
(``dashboard/``) that poll /status; they load nothing from anywhere else, and the Content
Security Policy says so to the browser. Requests whose Host header is not a loopback name
are refused, so a web page elsewhere cannot read /status through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from tinyml.errors import InputError
from tinyml.gateway.status import format_prometheus

log = logging.getLogger("tinyml.gateway")
MAX_REQUEST = 8192
READ_TIMEOUT_S = 5.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: {CSP}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


@lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> bytes:
    return resources.files("tinyml.gateway").joinpath("dashboard", name).read_bytes()


Metrics = Callable[[dict[str, Any]], str]


def route(path: str, snap: Callable[[], dict[str, Any]], *, metrics: Metrics = format_prometheus) -> bytes:
    """The response bytes for one GET path; ``metrics`` turns the snapshot into Prometheus text
    (the gateway's by default; the fleet consumer passes its own)."""
    path, _, query = path.partition("?")
    if path in ASSETS:
        name, content_type = ASSETS[path]
        return _response("200 OK", asset(name), content_type)
    if path == "/status":
        page = status_page(query)
        if page is None:
            return _response("400 Bad Request", b'{"error": "use /status?limit=N&offset=M with 1 <= N <= 1000"}\n',
                             "application/json")
        try:
            body = snap(**page) if page else snap()
        except TypeError:  # a snapshot source that cannot page (the fleet consumer's)
            return _response("400 Bad Request", b'{"error": "this /status does not page"}\n', "application/json")
        return _response("200 OK", json.dumps(body, indent=1).encode(), "application/json")
    if path == "/metrics":
        return _response("200 OK", metrics(snap()).encode(), "text/plain; version=0.0.4")
    return _response("404 Not Found", b'{"error": "not found; try /, /status or /metrics"}\n', "application/json")


MAX_PAGE = 1000


def status_page(query: str) -> dict[str, int] | None:
    """``limit``/``offset`` from a /status query ({} when absent: the whole snapshot, the shape the
    dashboard reads); None when they are malformed or out of range."""
    fields = dict(part.partition("=")[::2] for part in query.split("&") if part)
    page = {k: fields[k] for k in ("limit", "offset") if k in fields}
    if not page:
        return {}
    try:
        out = {k: int(v) for k, v in page.items()}
    except ValueError:
        return None
    out.setdefault("limit", MAX_PAGE)
    out.setdefault("offset", 0)
    return out if 1 <= out["limit"] <= MAX_PAGE and out["offset"] >= 0 else None


def loopback_host(head: bytes) -> bool:
    """Whether the request's Host header (required by HTTP/1.1) names a loopback address."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("latin-1").lower()
            if host.startswith("["):  # [::1]:8080
                host = host.split("]", 1)[0] + "]"
            elif host.count(":") == 1:  # 127.0.0.1:8080
                host = host.split(":", 1)[0]
            return host in LOOPBACK_HOSTS
    return False


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  snap: Callable[[], dict[str, Any]], metrics: Metrics) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if not loopback_host(head):
            body = _response("403 Forbidden", b'{"error": "the Host header must name a loopback address"}\n',
                             "application/json")
        elif method != "GET":
            body = _response("405 Method Not Allowed", b'{"error": "only GET"}\n', "application/json")
        else:
            body = await asyncio.to_thread(route, path, snap, metrics=metrics)
        writer.write(body)
        await writer.drain()
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
            ConnectionError):
        writer.write(_response("400 Bad Request", b'{"error": "bad request"}\n', "application/json"))
    finally:
        writer.close()


async def serve(host: str, port: int, snap: Callable[[], dict[str, Any]], *,
                metrics: Metrics = format_prometheus) -> asyncio.Server:
    """Start serving; the bound address is logged (port 0 picks a free one)."""
    try:
        server = await asyncio.start_server(lambda r, w: _handle(r, w, snap, metrics), host, port, limit=MAX_REQUEST)
    except OSError as exc:
        raise InputError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}",
                         "pick another --http port (127.0.0.1:0 picks a free one)") from None
    bound = server.sockets[0].getsockname()
    log.info("HTTP dashboard on http://%s:%d/ (and /status, /metrics)", bound[0], bound[1])
    return server
