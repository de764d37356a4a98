"""The slope guard in C (firmware_templates/common/tinyml_slope.c) against Python's integers
(tinyml/train/slope_guard.py ``Tables``), bit for bit: gcc on the host with UBSan (a signed overflow
aborts), on a synthetic machine log (both fits, a CUSUM crossing h, restarts) and on extreme windows and tables;
and built for the cores without 64-bit division (no libgcc division helper linked in)."""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from tests.cbuild import host_compile
from tinyml.data.features_int import to_samples
from tinyml.data.features_series import stream_slots
from tinyml.data.slope_c import slope_part
from tinyml.paths import template_dir
from tinyml.train.slope_guard import Settings, SlopeGuard, Tables, restarts

SRC = template_dir("common")
HARNESS = r"""
#include "tinyml_slope_config.h"
int64_t z_of(const int16_t *q, uint32_t slot)
{
    return tinyml_slope_z(&tinyml_slope_cfg, q, 1u, slot);
}
/* n windows q[n * T] in order: the CUSUM and its steps above h after each; reset[i]: a new stream first */
void run(const int16_t *q, uint32_t n, const uint32_t *slots, const uint8_t *reset, int64_t *level, uint32_t *over)
{
    tinyml_slope_reset(&tinyml_slope_st);
    for (uint32_t i = 0; i < n; i++) {
        if (reset[i])
            tinyml_slope_reset(&tinyml_slope_st);
        tinyml_slope_step(&tinyml_slope_cfg, &tinyml_slope_st, q + i * tinyml_slope_cfg.window, 1u, slots[i]);
        level[i] = tinyml_slope_st.s;
        over[i] = tinyml_slope_over(&tinyml_slope_cfg, &tinyml_slope_st);
    }
}
"""


def header(t: Tables) -> str:
    return "\n".join(["#include <stdint.h>", *slope_part(t), ""])


class SlopeLib:
    def __init__(self, tmp, t: Tables):
        tmp.mkdir(exist_ok=True)
        (tmp / "tinyml_slope_config.h").write_text(header(t))
        (tmp / "harness.c").write_text(HARNESS)
        lib = host_compile([tmp / "harness.c", SRC / "tinyml_slope.c"], tmp / "libslope.so", includes=[tmp, SRC],
                           shared=True, extra=["-O2", "-fsanitize=undefined", "-fno-sanitize-recover=all"])
        self.lib, self.t = ctypes.CDLL(str(lib)), t
        self.lib.z_of.restype = ctypes.c_int64

    def z(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, np.int16)
        return np.array([self.lib.z_of(q[i].ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(int(slots[i])))
                         for i in range(len(q))], np.int64)

    def run(self, q: np.ndarray, slots: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(q, np.int16)
        slots = np.ascontiguousarray(slots, np.uint32)
        reset = np.ascontiguousarray(reset, np.uint8)
        level, over = np.zeros(len(q), np.int64), np.zeros(len(q), np.uint32)
        self.lib.run(*(a.ctypes.data_as(ctypes.c_void_p) for a in (q,)), ctypes.c_uint32(len(q)),
                     *(a.ctypes.data_as(ctypes.c_void_p) for a in (slots, reset, level, over)))
        return level, over


def synth(seed: int):
    from tinyml.data.synth_series import SeriesOptions, synth_series

    times, values, _ = synth_series(SeriesOptions(days=30.0, quiet_days=22.0, events_per_kind=2, seed=seed))
    idx = np.arange(0, len(values) - 24, 6)
    idx = idx[times[idx + 23] - times[idx] == 23 * 300]
    return np.stack([values[i:i + 24] for i in idx]).astype(np.float32), times[idx]


@pytest.mark.parametrize("seed", [5, 11])
def test_c_is_python_bit_for_bit_on_a_machine_log(tmp_path, seed):
    x, starts = synth(seed)
    g = SlopeGuard.fit(x[:700], starts[:700], fs=1 / 300, hop=6, sample_shift=9, settings=Settings())
    t = g.tables(9)
    q = to_samples(x[:, :, None], [9])[:, :, 0]
    slots = stream_slots(starts, 48)
    reset = np.zeros(len(q), bool)
    reset[[400, 900]] = True  # two new streams (SERIES reset) besides the gaps' slot jumps
    lib = SlopeLib(tmp_path / "c", t)
    assert np.array_equal(lib.z(q, slots), t.z(q, slots))
    level, over = lib.run(q, slots, reset)
    want = t.run(q, slots, reset)
    assert np.array_equal(level, want) and np.array_equal(over, np.minimum(t.over(want), 2**32 - 1))
    x0 = q - q[:, :1]
    assert 0 < np.count_nonzero(t.slopes(q) != x0 @ t.slope) < len(q)  # switch fits and plain fits both taken
    assert np.count_nonzero(over) > 5 and restarts(slots, reset, 48).sum() > 3  # it crosses h; it restarts
    fresh = np.flatnonzero(restarts(slots, reset, 48))
    assert np.all(level[fresh] == np.maximum(0, t.z(q[fresh], slots[fresh]) - t.k))


@pytest.mark.parametrize("window, shift, spread", [(6, 0, 1e-6), (24, 14, 1e3), (256, 3, 0.05), (97, -2, 1e7)])
def test_c_is_python_bit_for_bit_at_the_extremes(tmp_path, window, shift, spread):
    """Full-scale int16 windows (the bounds in the comments), tiny and huge spreads, huge medians."""
    rng = np.random.default_rng(window)
    slots = 48
    g = SlopeGuard(tau_h=float(rng.uniform(0.1, 3.0)), window=window, fs=1 / 300, hop=6,
                   median=rng.choice([-1e9, -3.0, 0.0, 2.5, 1e9], slots), spread=np.full(slots, spread),
                   settings=Settings(k=0.5, h=2.0, f_min=float(rng.choice([0.0, 100.0, 1e12]))))
    t = g.tables(shift)
    n = 300
    q = rng.integers(-32767, 32768, (n, window))
    q[:50] = np.where(np.arange(window) % 2, 32767, -32767)  # the largest |x - x[0]| every other sample
    q[50:100] = np.linspace(-32767, 32767, window).astype(np.int64)  # the steepest straight ramp
    q[100:120] = 1234  # constant: nothing to fit
    q[120:150] = np.where(np.arange(window) > window // 2, 32767, -32767)  # a full-scale step: a switch
    s = rng.integers(0, slots, n)
    s[200:] = (s[199] + 1 + np.arange(n - 200)) % slots  # a run of consecutive slots: S accumulates
    lib = SlopeLib(tmp_path / "c", t)
    assert np.array_equal(lib.z(q, s), t.z(q, s))
    level, over = lib.run(q, s, np.zeros(n, bool))
    assert np.array_equal(level, t.run(q, s, np.zeros(n, bool)))
    assert np.array_equal(over, np.minimum(t.over(level), 2**32 - 1))


@pytest.mark.cross_compiler
@pytest.mark.parametrize("cc, flags", [
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]),
    ("xtensa-lx106-elf-gcc", ["-O2", "-mlongcalls"]),
])
def test_the_c_builds_for_small_cores_without_64_bit_division(tmp_path, cc, flags):
    import shutil

    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    (tmp_path / "fold.c").write_text('#include "tinyml_guard.h"\n'
                                     "uint64_t fold(uint64_t s, uint32_t e, uint64_t t, uint64_t k)\n"
                                     "{\n    return tinyml_guard_sum(s, e, t, k);\n}\n")  # decide()'s fold
    for src in (SRC / "tinyml_slope.c", tmp_path / "fold.c"):
        obj = host_compile([src], tmp_path / f"{src.stem}.o", obj=True, cc=cc, includes=[SRC], extra=flags)
        undefined = subprocess.run([cc.replace("gcc", "nm"), "-u", str(obj)], capture_output=True, text=True,
                                   check=True).stdout
        assert not any(f in undefined for f in ("divdi3", "moddi3", "ldivmod")), undefined
