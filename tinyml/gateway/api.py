"""A tiny read-only HTTP endpoint on loopback: GET /status (JSON) and GET /metrics (Prometheus).

Plain asyncio streams, no web framework: two routes do not justify a dependency. Each
request reads the database through its own read-only connection, so a slow scrape never
holds up the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from tinyml.errors import InputError
from tinyml.gateway.status import format_prometheus

log = logging.getLogger("tinyml.gateway")
MAX_REQUEST = 8192
READ_TIMEOUT_S = 5.0


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


Metrics = Callable[[dict[str, Any]], str]


def route(path: str, snap: Callable[[], dict[str, Any]], *, metrics: Metrics = format_prometheus) -> bytes:
    """The response bytes for one GET path; ``metrics`` turns the snapshot into Prometheus text
    (the gateway's by default; the fleet consumer passes its own)."""
    path = path.split("?", 1)[0]
    if path == "/status":
        return _response("200 OK", json.dumps(snap(), indent=1).encode(), "application/json")
    if path == "/metrics":
        return _response("200 OK", metrics(snap()).encode(), "text/plain; version=0.0.4")
    return _response("404 Not Found", b'{"error": "not found; try /status or /metrics"}\n', "application/json")


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  snap: Callable[[], dict[str, Any]], metrics: Metrics) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "GET":
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
    log.info("HTTP status on http://%s:%d/status and /metrics", bound[0], bound[1])
    return server
