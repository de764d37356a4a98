"""`tinyml init`: a commented tinyml.toml that runs as written and explains every section."""

from __future__ import annotations

import json
from pathlib import Path

from tinyml.errors import InputError
from tinyml.outputs import write_atomic
from tinyml.project.config import PROJECT_FILE, read_project

DEFAULT_BOARD = "qemu-mps2-an386"
SYNTH_CHOICES = {"synth-vibration": "vibration", "synth-temperature": "temperature"}


def _data_section(data: str, base: Path) -> str:
    if data in SYNTH_CHOICES:
        window = 256 if data == "synth-vibration" else 128
        return (f'synth = "{SYNTH_CHOICES[data]}"     # physics-based synthetic data; or import = ["recordings/"]\n'
                f"per_class = 100          # windows per class\n"
                f"window = {window}             # samples per window\n"
                f"seed = 0\n")
    source = Path(data)
    if not source.exists():
        raise InputError(f"--data {data}: no such file or folder",
                         f"pass a CSV/.mat/.npz file or folder, or one of {', '.join(SYNTH_CHOICES)}")
    try:
        shown = source.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        shown = str(source.resolve())
    return (f"import = [{json.dumps(shown)}]   # files, or folders laid out as PATH/<label>/<files>\n"
            "window = 256             # samples per window\n"
            "# columns = [\"x\", \"y\", \"z\"]          # signal columns (default: every numeric column)\n"
            "# label_column = \"label\"             # CSV column holding the class\n"
            "# group_column = \"recording\"         # CSV column naming the recording, for the split\n"
            "# fs = 50.0                          # sampling rate in Hz\n"
            "# kind = \"vibration\"                 # vibration, temperature or generic\n")


def _validate_section(emulated: bool) -> str:
    if not emulated:
        return ("# [validate] runs on emulated boards only; for this board, `tinyml flash` OUT/firmware\n"
                "# and then `tinyml validate --port PORT`.\n")
    return ("[validate]                   # boot the firmware on the emulated board, send test windows\n"
            'split = "test"\n'
            "limit = 50                   # test windows sent to the device\n"
            "tolerance = 0                # output bytes allowed to differ from the TFLM host reference\n")


def project_text(name: str, board: str, data: str, base: Path, emulated: bool = True) -> str:
    """The text of a new project file; ``base`` is the folder it will live in."""
    return f"""# tinyml project: `tinyml run` runs every stage below in order and skips the stages
# whose inputs and settings have not changed since their last success.
# Every key is documented in docs/pipeline.md.

[project]
name = {json.dumps(name)}
out = "run"                  # run directory, relative to this file

[data]
{_data_section(data, base)}
[train]
model = "cnn1d"              # cnn1d (raw windows), mlp (features) or autoencoder (anomaly)
epochs = 30
batch_size = 32
seed = 0
# features = "vibration"     # mlp/autoencoder: a feature preset or a JSON feature spec file

[quantize]
# tolerance = 2.0            # points of accuracy (AUC for anomaly models) int8 may lose; default:
                             # 1 point or 2 test windows, whichever is larger (0.01 AUC)

[codegen]
target = "portable"          # kernel set for OUT/codegen: portable or cortex-m4-dsp

[firmware]
board = {json.dumps(board)}    # see `tinyml boards`
runtime = "native"           # native (generated C) or tflm (ESP-IDF boards)

{_validate_section(emulated)}
# [sign]
# key = "keys/release.key"   # sign OUT/firmware (create with `tinyml keygen --out keys/release.key`)
"""


def write_project(folder: Path, board: str, data: str, force: bool = False) -> Path:
    """Write FOLDER/tinyml.toml and check it reads back; never overwrite without ``force``."""
    from tinyml.firmware.boards import load_board

    board_obj = load_board(board)
    path = folder / PROJECT_FILE
    if path.exists() and not force:
        raise InputError(f"{path} already exists", "edit it, or pass --force to replace it")
    text = project_text(folder.resolve().name or "tinyml", board, data, folder, board_obj.emulated)
    write_atomic(path, text)
    read_project(path)
    return path
