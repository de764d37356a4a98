"""The Python protocol codec against the golden vectors, and a decoder that never breaks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml.device import protocol as p
from tinyml.errors import InputError

VECTORS = Path(__file__).parent / "vectors" / "protocol"
MESSAGES = json.loads((VECTORS / "messages.json").read_text())
STREAMS = json.loads((VECTORS / "streams.json").read_text())


def events_without_text(events: list) -> list:
    return [{"bad": e.reason} if isinstance(e, p.BadFrame) else p.message_to_dict(e)
            for e in events if not isinstance(e, p.Text)]


def test_crc_check_value() -> None:
    assert p.crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize(("data", "encoded"), [
    (b"", b"\x01"), (b"\x00", b"\x01\x01"), (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (b"\x00" + bytes(range(1, 255)), b"\x01\xff" + bytes(range(1, 255))),
])
def test_cobs_matches_the_published_examples(data: bytes, encoded: bytes) -> None:
    assert p.cobs_encode(data) == encoded
    assert p.cobs_decode(encoded) == data


@pytest.mark.parametrize("size", [0, 1, 252, 253, 254, 255, 508, 509])
def test_cobs_round_trips_on_both_sides_of_a_full_block(size: int) -> None:
    """Frames under 254 bytes take a shorter path through the encoder than longer ones."""
    rnd = random.Random(size)
    for zeros in (0.0, 0.05, 0.5, 1.0):
        data = bytes(0 if rnd.random() < zeros else rnd.randrange(1, 256) for _ in range(size))
        encoded = p.cobs_encode(data)
        assert b"\x00" not in encoded
        assert p.cobs_decode(encoded) == data


@pytest.mark.parametrize("vector", MESSAGES, ids=[v["name"] for v in MESSAGES])
def test_golden_message_encodes_and_decodes(vector: dict) -> None:
    msg = p.message_from_dict(vector["message"])
    assert p.encode(msg).hex() == vector["hex"]
    decoder = p.Decoder()
    assert [p.message_to_dict(e) for e in decoder.feed(bytes.fromhex(vector["hex"]))] == [vector["message"]]
    assert (decoder.frames, decoder.bad_frames) == (1, 0)


def test_every_message_type_has_a_vector() -> None:
    assert {v["message"]["type"] for v in MESSAGES} == set(p.MESSAGE_NAMES)


@pytest.mark.parametrize("vector", STREAMS, ids=[v["name"] for v in STREAMS])
def test_golden_stream_events(vector: dict) -> None:
    decoder = p.Decoder()
    events = decoder.feed(bytes.fromhex(vector["hex"]))
    expect = vector["expect"]
    assert events_without_text(events) == expect["events"]
    assert (decoder.frames, decoder.bad_frames, decoder.text_bytes) == \
        (expect["frames"], expect["bad_frames"], expect["text_bytes"])


def test_text_lines_arrive_before_the_next_delimiter() -> None:
    decoder = p.Decoder()
    assert decoder.feed(b"boot: arena 6648 B\r\nmodel ") == [p.Text("boot: arena 6648 B")]
    assert decoder.feed(b"ok\n") == [p.Text("model ok")]
    assert decoder.feed(p.encode(p.Infer(1))) == [p.Infer(1)]
    assert decoder.text_bytes == len("boot: arena 6648 B\r\nmodel ok\n")


def test_endless_binary_junk_stays_bounded() -> None:
    decoder = p.Decoder()
    for _ in range(100):
        decoder.feed(b"\x80" * 1000)
    assert len(decoder._buf) <= p.MAX_ENCODED
    assert decoder.feed(p.encode(p.Exit(3))) == [p.Exit(3)]
    assert (decoder.frames, decoder.bad_frames, decoder.bad_reasons[p.BAD_TOO_LONG]) == (1, 1, 1)


@pytest.mark.parametrize(("msg", "needle"), [
    (p.Input(0, b""), "INPUT carries 0 bytes"),
    (p.Input(0, bytes(257)), "INPUT carries 257 bytes"),
    (p.Infer(-1), "seq=-1"),
    (p.Infer(2**32), "seq=4294967296"),
    (p.Hello(1, "b" * 256, "", "", bytes(8), 0, 0, 0, 0, 0), "board is 256 bytes"),
    (p.Hello(1, "", "", "", bytes(7), 0, 0, 0, 0, 0), "model_hash must be 8 bytes"),
    (p.Result(0, 0, 0, 0, 0, 0, 0.0, (128,)), "int8"),
    (p.Result(0, 0, 0, 0, 0, 0, 0.0, (5, -129)), "int8"),
    (p.Result(2**32, 0, 0, 0, 0, 0, 0.0, (1,)), "seq=4294967296"),
    (p.Result(0, 0, -1, 0, 0, 0, 0.0, (1,)), "timestamp_ms=-1"),
    (p.Result(0, 0, 0, 0, 0, 256, 0.0, (1,)), "label=256"),
    (p.Result(0, 0, 0, 0, 0, 0, 0.0, (0,) * 485), "at most 484"),
    (p.Output(0, 0, b""), "OUTPUT carries 0 bytes"),
    (p.Output(0, 0, bytes(501)), "OUTPUT carries 501 bytes"),
    (p.OutputReq(0, 2**32), "offset=4294967296"),
    (p.OutputReq(-1, 0), "seq=-1"),
    (p.Hello(1, "a" * 200, "b" * 200, "c" * 200, bytes(8), 0, 0, 0, 0, 0), "payload is"),
    (p.Samples(0, 0, 0, 100.0, 1, 1, 0, 0, "x", b""), "SAMPLES carries 0 bytes"),
    (p.Samples(0, 0, 0, 100.0, 1, 1, 0, 0, "x", bytes(449)), "SAMPLES carries 449 bytes"),
    (p.Samples(0, 0, 0, 100.0, 1, 1, 0, 0, "s" * 33, bytes(4)), "sensor name is 33 bytes"),
    (p.Samples(0, 0, 0, 100.0, 65536, 1, 0, 0, "x", bytes(4)), "samples=65536"),
    (p.Capture(3, 70000), "count=70000"),
])
def test_unencodable_messages_raise_input_error(msg: p.Message, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        p.encode(msg)


def test_message_from_dict_rejects_unknown_and_incomplete() -> None:
    with pytest.raises(InputError, match="unknown message type"):
        p.message_from_dict({"type": "NOPE"})
    with pytest.raises(InputError, match="needs the field 'seq'"):
        p.message_from_dict({"type": "INFER"})


# ---- the decoder never raises and always resynchronises ----

u32 = st.integers(0, 2**32 - 1)
u8 = st.integers(0, 255)
text8 = st.text(max_size=40)
messages = st.one_of(
    st.builds(p.Hello, u8, text8, text8, text8, st.binary(min_size=8, max_size=8), u32, u32, u32, u32, u8),
    st.builds(p.Result, u32, u32, u32, u32, u8, u8, st.floats(width=32, allow_nan=False),
              st.lists(st.integers(-128, 127), max_size=40).map(tuple)),
    st.builds(p.Input, u32, st.binary(min_size=1, max_size=256)),
    st.builds(p.Infer, u32), st.builds(p.Ack, u8, u32), st.builds(p.Error, u8, text8),
    st.builds(p.Heartbeat, u32, u32, u32, u32), st.just(p.HelloReq()), st.builds(p.Exit, u8),
    st.builds(p.OutputReq, u32, u32), st.builds(p.Output, u32, u32, st.binary(min_size=1, max_size=500)),
    st.builds(p.Samples, u32, u32, u32, st.floats(width=32, allow_nan=False), st.integers(0, 65535), u8, u8, u32,
              st.text(max_size=8), st.binary(min_size=1, max_size=448)),
    st.builds(p.Capture, u8, st.integers(0, 65535)),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 64), max_size=20))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    decoder = p.Decoder()
    pos = 0
    for cut in [*cuts, len(data)]:
        for event in decoder.feed(data[pos:pos + cut]):
            assert isinstance(event, (p.Text, p.BadFrame, *p.MESSAGE_TYPES.values()))
        pos += cut
    assert len(decoder._buf) <= p.MAX_ENCODED


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_valid_streams_decode_whatever_the_chunking(msgs: list, rnd: random.Random) -> None:
    stream = b"".join(p.encode(m) for m in msgs)
    decoder = p.Decoder()
    got, pos = [], 0
    while pos < len(stream):
        step = rnd.randint(1, 80)
        got += decoder.feed(stream[pos:pos + step])
        pos += step
    assert [p.encode(e) for e in got] == [p.encode(m) for m in msgs]
    assert (decoder.frames, decoder.bad_frames) == (len(msgs), 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=2, max_size=12), st.randoms(use_true_random=False))
def test_corruption_costs_only_the_frames_it_hits(msgs: list, rnd: random.Random) -> None:
    frames = [bytearray(p.encode(m)) for m in msgs]
    hit = set(rnd.sample(range(len(frames)), rnd.randint(1, len(frames) - 1)))
    for i in hit:  # corrupt the inside of the frame, never its delimiters
        frame = frames[i]
        for _ in range(rnd.randint(1, 3)):
            j = rnd.randrange(1, len(frame) - 1)
            frame[j] = rnd.choice([0x00, frame[j] ^ (1 << rnd.randrange(8)), rnd.randrange(256)])
    stream = b"".join(frames)
    got = [e for e in p.Decoder().feed(stream) if not isinstance(e, (p.Text, p.BadFrame))]
    survivors = [p.encode(msgs[i]) for i in range(len(msgs)) if i not in hit]
    decoded = [p.encode(e) for e in got]
    # every untouched frame is decoded; a corrupted one may only decode as a different valid message
    for frame in survivors:
        assert frame in decoded
    assert len(decoded) >= len(survivors)


# ---- the gateway's raw RESULTs decode exactly as the general decoder's ----

def _frame_of(head: bytes) -> bytes:
    """A frame around any version/type/payload bytes, with a valid CRC (to reach the layout checks)."""
    return b"\x00" + p.cobs_encode(head + p.crc16(head).to_bytes(2, "little")) + b"\x00"


result_payloads = st.builds(  # RESULT payloads whose output length field may lie, or that are cut short
    lambda fields, out, lie, cut: (fields + ((len(out) + lie) % 2**16).to_bytes(2, "little") + out)[:cut],
    st.binary(min_size=22, max_size=22), st.binary(max_size=60), st.sampled_from([0, 0, 1, 2**16 - 1]),
    st.one_of(st.none(), st.integers(0, 30)))
pieces = st.one_of(
    messages.map(p.encode),
    result_payloads.map(lambda payload: _frame_of(bytes([p.VERSION, p.Result.TYPE]) + payload)),
    st.binary(min_size=22, max_size=60).map(lambda b: _frame_of(bytes([2, p.Result.TYPE]) + b)),  # other version
    st.binary(max_size=40),  # junk, half frames, stray delimiters
    st.text(alphabet="abc \n", max_size=20).map(str.encode),  # debug text
)


def _normal(event: object) -> object:
    if type(event) is p.RawResult:
        return p.Result(*event[:7], event.output)
    return event


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=20), st.lists(messages.map(p.encode), max_size=3), st.randoms(use_true_random=False))
def test_raw_results_are_the_general_decoders_results(stream: list, extra: list, rnd: random.Random) -> None:
    """``Decoder(raw_results=True)`` on the same reads gives the same events, RESULTs as ``RawResult`` with
    the same fields and output, and the same counters: valid and lying RESULTs, other versions, corrupted
    frames (CRC, COBS, zeros inside), junk, text and resynchronisation, whatever the cuts."""
    frames = [bytearray(piece) for piece in stream + extra]
    for frame in rnd.sample(frames, len(frames) // 3):  # corrupt some: CRC and COBS errors, cut frames
        if len(frame) > 2:
            frame[rnd.randrange(1, len(frame) - 1)] = rnd.choice([0, rnd.randrange(256)])
    data = b"".join(frames)
    general, raw = p.Decoder(), p.Decoder(raw_results=True)
    got_general, got_raw, pos = [], [], 0
    while pos < len(data):
        step = rnd.randint(1, 120)
        got_general += general.feed(data[pos:pos + step])
        got_raw += raw.feed(data[pos:pos + step])
        pos += step
    assert [_normal(e) for e in got_raw] == got_general
    assert [type(e) for e in got_raw] == [p.RawResult if type(e) is p.Result else type(e) for e in got_general]
    for e in got_raw:
        if type(e) is p.RawResult:
            assert e.raw_output == _normal(e).raw_output and type(e.raw_output) is bytes
    assert raw.stats() == general.stats()
