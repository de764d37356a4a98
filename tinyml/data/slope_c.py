"""The slope guard's tables as C (firmware_templates/common/tinyml_slope.c): ``slope_guard.Tables`` baked into
the integer features' config header, with the CUSUM state the device keeps beside the daily_cycle state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyml.data.features_int_c import _int64s, _ints

if TYPE_CHECKING:
    from tinyml.train.slope_guard import Tables


def slope_part(t: Tables) -> list[str]:
    """``#define TINYML_IFEAT_SLOPE``, the tables, ``tinyml_slope_cfg`` and ``tinyml_slope_st``."""
    n, w = len(t.switch), t.window
    return [
        "",
        "#define TINYML_IFEAT_SLOPE 1",
        '#include "tinyml_slope.h"',
        f"static const int32_t tinyml_slope_basis[{3 * w}] = {{ {_ints(t.basis.ravel())} }};",
        f"static const int32_t tinyml_slope_switch[{n * w}] = {{ {_ints(t.switch.ravel())} }};",
        f"static const int32_t tinyml_slope_row[{w}] = {{ {_ints(t.slope)} }};",
        f"static const int32_t tinyml_slope_switch_row[{n * w}] = {{ {_ints(t.switch_slope.ravel())} }};",
        f"static const int64_t tinyml_slope_med[{t.slots}] = {{ {_int64s(t.med)} }};",
        f"static const int32_t tinyml_slope_inv[{t.slots}] = {{ {_ints(t.inv)} }};",
        f"static const uint8_t tinyml_slope_sh[{t.slots}] = {{ {_ints(t.sh)} }};",
        f"static const tinyml_slope_config tinyml_slope_cfg = {{ {w}u, {t.slots}u, {n}u, tinyml_slope_basis, "
        "tinyml_slope_switch, tinyml_slope_row, tinyml_slope_switch_row, tinyml_slope_med, tinyml_slope_inv, "
        f"tinyml_slope_sh, INT64_C({t.k}), INT64_C({t.h}), {t.f_min} }};",
        "static tinyml_slope_state tinyml_slope_st = { 0, 0u, 0u };",
    ]
