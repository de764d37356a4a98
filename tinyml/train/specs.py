"""The --features option: a preset name or a JSON spec file, validated by the data package."""

from __future__ import annotations

import json
from pathlib import Path

from tinyml.errors import InputError

PRESETS = ("vibration", "temperature", "bearing", "temperature-series")


def feature_spec_option(value: str | None) -> list[dict] | None:
    """None (the model's default), a preset's spec, or the spec in a JSON file."""
    if value is None:
        return None
    from tinyml.data import features

    if value in PRESETS:
        return features.validate_spec({"vibration": features.DEFAULT_VIBRATION_SPEC, "bearing": features.BEARING_SPEC,
                                       "temperature": features.DEFAULT_TEMPERATURE_SPEC,
                                       "temperature-series": features.TEMPERATURE_SERIES_SPEC}[value])
    path = Path(value)
    if not path.is_file():
        raise InputError(f"--features {value!r} is neither a preset nor a file",
                         f"use one of {', '.join(PRESETS)} or a JSON feature spec file")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"feature spec {path} is not valid JSON ({exc})", "fix the file") from exc
    return features.validate_spec(spec)
