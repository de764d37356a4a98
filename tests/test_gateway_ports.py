"""A gateway port that will not open says what it waits for: a missing device, a busy one,
or a TCP endpoint nobody serves yet. Real ports: a pty held by pyserial, a closed TCP port."""

from __future__ import annotations

import asyncio
import logging
import os

import serial

from tinyml.device import protocol
from tinyml.device.endpoints import free_tcp_port, listen_tcp, open_pty, socket_url
from tinyml.gateway.ingest import PortState, ResultsRecord
from tinyml.gateway.ports import Intake, open_port, read_port, waiting_for


def _failure(url: str) -> Exception:
    try:
        asyncio.run(open_port(url, 115200)).close()
    except (OSError, serial.SerialException) as exc:
        return exc
    raise AssertionError(f"{url} opened")


def test_missing_busy_and_unserved_ports_are_told_apart(tmp_path):
    missing = str(tmp_path / "ttyUSB9")
    text = waiting_for(missing, _failure(missing))
    assert "does not exist" in text and "plugged in" in text

    master, slave, name = open_pty()
    holder = serial.Serial(name, exclusive=True)
    try:
        text = waiting_for(name, _failure(name))
        assert "busy" in text and "released" in text and "does not exist" not in text
    finally:
        holder.close()
        os.close(master)
        os.close(slave)

    url = socket_url(free_tcp_port())
    assert "nothing listens on 127.0.0.1" in waiting_for(url, _failure(url))


def test_read_port_logs_what_it_waits_for_once_per_reason(tmp_path, caplog):
    url = str(tmp_path / "ttyUSB9")

    async def main():
        stop = asyncio.Event()
        intake = Intake()
        task = asyncio.create_task(read_port(url, 115200, intake, stop))
        await asyncio.sleep(1.0)  # several retries (backoff starts at 0.2 s)
        stop.set()
        await task
        return intake.take()

    with caplog.at_level(logging.WARNING, logger="tinyml.gateway"):
        states = asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.name == "tinyml.gateway"]
    assert len(warnings) == 1 and "waiting for the device to be plugged in" in warnings[0], warnings
    assert len(states) == 1 and not states[0].connected and "does not exist" in states[0].error


def _frames(device: str, seqs: range) -> bytes:
    hello = protocol.Hello(1, "b", "1", device, b"\x01" * 8, 1, 2, 3, 7, protocol.LATENCY_US)
    return protocol.encode(hello) + _results(seqs)


def _results(seqs: range) -> bytes:
    return b"".join(protocol.encode(protocol.Result(s, 7, s, 500, protocol.LATENCY_US, 0, 0.1, (1, 0, -2))) for s in seqs)


def _serve(streams: list[bytes], cuts: list[list[int]], intake_limit: int | None, collect,
           **intake_options: float) -> dict[str, list[int]]:
    """Each stream from a TCP server of its own, written in pieces cut at ``cuts`` (pieces of several
    streams interleaved, so one wake-up finds several ports ready with many frames or part of one),
    read through ``read_port`` into one intake; ``collect`` takes records from the intake as they come.
    Returns each port's result seqs in the order they arrived."""
    servers = [listen_tcp(0) for _ in streams]
    for s in servers:
        s.setblocking(False)
    urls = [socket_url(s.getsockname()[1]) for s in servers]
    want = sum(len(s) for s in streams)

    async def main() -> dict[str, list[int]]:
        stop = asyncio.Event()
        intake = Intake(limit=intake_limit, **intake_options)
        tasks = [asyncio.create_task(read_port(u, 115200, intake, stop)) for u in urls]
        loop = asyncio.get_running_loop()
        conns = [(await loop.sock_accept(s))[0] for s in servers]
        pieces = [[stream[a:b] for a, b in zip([0, *cut], [*cut, len(stream)], strict=True)]
                  for stream, cut in zip(streams, cuts, strict=True)]
        seqs: dict[str, list[int]] = {u: [] for u in urls}
        for round_ in range(max(len(p) for p in pieces)):
            for conn, piece in zip(conns, pieces, strict=True):
                if round_ < len(piece):
                    await loop.sock_sendall(conn, piece[round_])
            await asyncio.sleep(0.01)
            collect(intake, seqs)
        for _ in range(500):
            collect(intake, seqs)
            if sum(len(s) for s in seqs.values()) == want:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*tasks)
        for c in conns:
            c.close()
        return seqs

    try:
        return asyncio.run(main())
    finally:
        for s in servers:
            s.close()


def _take_all(intake: Intake, seqs: dict[str, list[int]]) -> None:
    for rec in intake.take():
        if isinstance(rec, ResultsRecord):
            seqs[rec.port] += [r.seq for r in rec.results]


def test_many_ports_many_frames_per_read_and_frames_cut_across_reads():
    counts = [300, 1, 120, 57]
    streams = [_frames(f"dev{i}", range(n)) for i, n in enumerate(counts)]
    # one stream whole (hundreds of frames in one read), one cut in every frame, others cut at odd places
    cuts = [[], list(range(1, len(streams[1]), 7)), [5, 6, 700, 2001, 2002], list(range(50, len(streams[3]), 333))]
    seqs = _serve(streams, cuts, None, _take_all)
    assert [seqs[u] for u in sorted(seqs, key=list(seqs).index)] == [list(range(n)) for n in counts]


def test_a_full_intake_pauses_reading_until_the_writer_takes_and_loses_nothing():
    limit, most = 50, 20
    streams = [_frames(f"dev{i}", range(400)) for i in range(3)]
    largest = []

    def take_slowly(intake: Intake, seqs: dict[str, list[int]]) -> None:
        largest.append(intake.size)
        for rec in intake.take(most):  # a writer that takes a little at a time
            if isinstance(rec, ResultsRecord):
                seqs[rec.port] += [r.seq for r in rec.results]

    seqs = _serve(streams, [[] for _ in streams], limit, take_slowly)
    assert all(s == list(range(400)) for s in seqs.values())
    # Paused at the limit: what waits is at most the limit plus one port's read (each port's whole
    # stream, 400 results and 2 other records, fits in one read), never every port's at once.
    assert limit <= max(largest) < limit + 2 * 402


def test_a_busy_intake_polls_the_ports_and_watches_them_again_when_the_load_falls():
    """Above ``busy_rate`` results/s the ports are read every ``poll_s`` instead of on readiness: nothing
    is lost or reordered, frames cut across polls included, with a full intake pausing the polls too;
    once the results stop, the intake goes back to watching the ports."""
    counts = [400, 250, 400]
    streams = [_frames(f"dev{i}", range(n)) for i, n in enumerate(counts)]
    cuts = [list(range(97, len(s), 97)) for s in streams]  # about a frame per piece, cut inside frames
    modes: list[bool] = []

    def take_slowly(intake: Intake, seqs: dict[str, list[int]]) -> None:
        modes.append(intake.polling)
        for rec in intake.take(30):
            if isinstance(rec, ResultsRecord):
                seqs[rec.port] += [r.seq for r in rec.results]

    seqs = _serve(streams, cuts, 60, take_slowly, poll_s=0.02, busy_rate=10.0)
    assert [seqs[u] for u in sorted(seqs, key=list(seqs).index)] == [list(range(n)) for n in counts]
    assert not modes[0] and True in modes  # read on readiness at first, polled once the rate was measured


def test_a_polled_port_that_closes_is_reconnected_and_then_watched_again():
    server = listen_tcp(0)
    server.setblocking(False)
    url = socket_url(server.getsockname()[1])

    async def main() -> tuple[list[object], bool, bool]:
        stop = asyncio.Event()
        intake = Intake(poll_s=0.01, busy_rate=10.0)
        task = asyncio.create_task(read_port(url, 115200, intake, stop))
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(server)
        await loop.sock_sendall(conn, _frames("dev0", range(0)))
        sent = 0
        while not intake.polling:  # results until the intake has measured its rate and polls
            await loop.sock_sendall(conn, _results(range(sent, sent + 10)))
            sent += 10
            await asyncio.sleep(0.01)
        polled = intake.polling
        conn.close()  # end of stream, met by a poll
        conn, _ = await loop.sock_accept(server)  # the port's task reconnects
        records = intake.take()
        while intake.polling:  # nothing arrives: the next measured rate is 0
            await asyncio.sleep(0.05)
        await loop.sock_sendall(conn, _frames("dev0", range(sent, sent + 2)))
        while not any(isinstance(r, ResultsRecord) for r in intake.records):
            await asyncio.sleep(0.05)  # read on readiness again
        records += intake.take()
        stop.set()
        await task
        conn.close()
        return records, sent, polled, intake.polling

    try:
        records, sent, polled, polling_at_end = asyncio.run(main())
    finally:
        server.close()
    assert polled and not polling_at_end
    seqs = [r.seq for rec in records if isinstance(rec, ResultsRecord) for r in rec.results]
    assert seqs == [*range(sent), sent, sent + 1]
    states = [(r.connected, r.error) for r in records if isinstance(r, PortState)]
    assert [connected for connected, _ in states] == [True, False, True], states  # ("closed", or reset:
    # the test's server closes with the gateway's HELLO_REQ unread)
