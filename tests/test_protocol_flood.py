"""The decoder stays linear on text floods (issue 16): the printable-run scan is counted, not timed,
and the events are the same whether the flood comes in one feed or byte by byte."""

from __future__ import annotations

from tinyml.device import protocol


class CountingRun:
    """Stands in for the printable-run regex and counts the bytes it is asked to scan."""

    def __init__(self) -> None:
        self.scanned = 0

    def match(self, buf):  # noqa: ANN001, ANN201 - same shape as re.Pattern.match
        self.scanned += len(buf)
        return _REAL.match(buf)


_REAL = protocol._PRINTABLE_RUN


def test_a_text_flood_is_scanned_a_bounded_number_of_times(monkeypatch) -> None:
    counter = CountingRun()
    monkeypatch.setattr(protocol, "_PRINTABLE_RUN", counter)
    flood = b"A\n" * 32_768  # 64 KB, no delimiter: the audit's 2.4 s feed
    events = protocol.Decoder().feed(flood)
    assert len(events) == 32_768 and all(e == protocol.Text("A") for e in events)
    assert counter.scanned <= 2 * len(flood)  # was ~len(flood)**2 / 4: a re-scan at every cut


def test_flood_events_do_not_depend_on_how_the_bytes_are_split() -> None:
    frame = protocol.encode(protocol.Heartbeat(5, 1, 2, 0))
    stream = b"A\n" * 500 + b"B" * 700 + b"\n" + frame + b"x\ny" * 300 + frame
    whole = protocol.Decoder().feed(stream)
    dec = protocol.Decoder()
    split = [e for i in range(0, len(stream), 7) for e in dec.feed(stream[i:i + 7])]
    assert whole == split and whole.count(protocol.Heartbeat(5, 1, 2, 0)) == 2
