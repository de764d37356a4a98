"""Raw sensor windows over the device protocol: split one into SAMPLES chunks, put chunks back
together. Pure: no I/O.

A device sends a window's chunks in order (docs/protocol.md, SAMPLES), so the assembler only
ever holds one open window per line, and a chunk that does not continue it means the stream
was cut: the open window is dropped and reported, never stored half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyml.device import protocol as p
from tinyml.errors import DeviceError

VALUE_BYTES = 4  # format 0: f32
CHUNK_VALUES = p.MAX_SAMPLE_BYTES // VALUE_BYTES


@dataclass(frozen=True)
class RawWindow:
    """One complete window as the device read it: ``values`` is [samples, channels] float32."""

    boot_id: int
    window: int
    timestamp_ms: int
    fs: float
    sensor: str
    values: np.ndarray

    @property
    def layout(self) -> tuple[float, int, int]:
        """(sampling rate, samples, channels): what must not change within one dataset file."""
        return (self.fs, int(self.values.shape[0]), int(self.values.shape[1]))


def window_chunks(*, boot_id: int, window: int, timestamp_ms: int, fs: float, sensor: str,
                  values: np.ndarray) -> list[p.Samples]:
    """The SAMPLES messages of one window [samples, channels], in order."""
    values = np.asarray(values, np.float32)
    samples, channels = values.shape
    flat = values.reshape(-1).astype("<f4")
    return [p.Samples(boot_id, window, timestamp_ms, fs, samples, channels, p.SAMPLE_F32, start, sensor,
                      flat[start:start + CHUNK_VALUES].tobytes())
            for start in range(0, flat.size, CHUNK_VALUES)]


class CutWindow(DeviceError):
    """A window whose chunks stopped before it was complete."""


class WindowAssembler:
    """Feed SAMPLES in arrival order; get each window once its last chunk arrived.

    ``feed`` raises ``CutWindow`` when a chunk does not continue the open window (the stream
    stopped mid-window, e.g. a reboot or lost bytes) and ``DeviceError`` for a chunk no device
    should send (unknown format, partial values); the assembler is ready for the next window
    either way. ``close`` raises ``CutWindow`` when a window is still open at the end.
    """

    def __init__(self, where: str = "the device"):
        self.where = where
        self._open: p.Samples | None = None  # the first chunk of the open window
        self._parts: list[bytes] = []
        self._have = 0  # values received of the open window

    @property
    def pending(self) -> bool:
        return self._open is not None

    def _cut(self, why: str) -> CutWindow:
        first, have = self._open, self._have
        self._open, self._parts, self._have = None, [], 0
        assert first is not None
        return CutWindow(f"the sample stream from {self.where} stopped mid-window: window {first.window} got "
                         f"{have} of {first.samples * first.channels} values ({why})",
                         hint="check the cable and baud rate; complete windows before it are kept")

    def feed(self, chunk: p.Samples) -> RawWindow | None:
        if chunk.format not in p.SAMPLE_FORMATS:
            raise DeviceError(f"{self.where} sent samples in format {chunk.format}, this tinyml reads format 0 (f32)",
                              hint="update tinyml, or build the firmware with this tinyml version")
        if len(chunk.data) % VALUE_BYTES or chunk.samples == 0 or chunk.channels == 0:
            raise DeviceError(f"{self.where} sent a malformed SAMPLES chunk ({len(chunk.data)} data bytes, "
                              f"{chunk.samples} x {chunk.channels} window)", hint="the firmware is broken: rebuild it")
        first = self._open
        if first is not None and (chunk.boot_id, chunk.window) != (first.boot_id, first.window):
            raise self._cut(f"window {chunk.window} of boot {chunk.boot_id:08x} started")
        if first is not None and (chunk.offset != self._have or (chunk.samples, chunk.channels, chunk.fs)
                                  != (first.samples, first.channels, first.fs)):
            raise self._cut(f"a chunk at value {chunk.offset} followed value {self._have}")
        if first is None:
            if chunk.offset != 0:
                raise CutWindow(f"the sample stream from {self.where} started mid-window: window {chunk.window} "
                                f"began at value {chunk.offset}", hint="the window is skipped; the next one is read")
            self._open = first = chunk
        self._parts.append(chunk.data)
        self._have += len(chunk.data) // VALUE_BYTES
        total = first.samples * first.channels
        if self._have < total:
            return None
        self._open, parts, have = None, self._parts, self._have
        self._parts, self._have = [], 0
        if have > total:
            raise DeviceError(f"{self.where} sent {have} values for a {first.samples} x {first.channels} window",
                              hint="the firmware is broken: rebuild it")
        values = np.frombuffer(b"".join(parts), "<f4").reshape(first.samples, first.channels).astype(np.float32)
        return RawWindow(first.boot_id, first.window, first.timestamp_ms, first.fs, first.sensor, values)

    def close(self) -> None:
        if self._open is not None:
            raise self._cut("no more chunks arrived")
