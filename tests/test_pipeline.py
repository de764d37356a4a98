"""`tinyml run`: every stage from one tinyml.toml, really run (TensorFlow, gcc, QEMU), and skipped
when nothing it depends on changed. The module's tests share one tiny project and run in order:
each one changes a setting and checks exactly the dependent stages ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.project.config import read_project
from tinyml.project.runner import run_project
from tinyml.project.state import STATE_FILE

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]

TINY: dict[str, dict] = {
    "project": {"name": "tiny", "out": "out"},
    "data": {"synth": "vibration", "per_class": 12, "windows_per_recording": 4, "window": 128, "seed": 1},
    "train": {"epochs": 1},
    "quantize": {"tolerance": 100.0},   # one epoch: the int8 loss is noise; quantize is tested elsewhere
    "firmware": {"board": "qemu-mps2-an386"},
    "validate": {"limit": 4},
}
ALL = ["data", "train", "quantize", "codegen", "firmware", "validate", "report"]


def toml_text(sections: dict[str, dict]) -> str:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def write(folder: Path, sections: dict[str, dict]) -> Path:
    path = folder / "tinyml.toml"
    path.write_text(toml_text(sections))
    return path


def statuses(path: Path, **options) -> dict[str, str]:
    return {r.name: r.status for r in run_project(read_project(path), **options)}


def ran(result: dict[str, str]) -> list[str]:
    return [name for name, status in result.items() if status == "ran"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny project after its first run through the CLI (all seven stages)."""
    folder = tmp_path_factory.mktemp("pipeline")
    sections = json.loads(json.dumps(TINY))
    path = write(folder, sections)
    proc = run_cli("run", "--project", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"path": path, "sections": sections, "first": proc.stdout}


def test_first_run_runs_every_stage_and_validates_with_zero_mismatches(project: dict) -> None:
    rows = {line.split()[0]: line.split()[1] for line in project["first"].splitlines()[2:-1]}
    assert rows == {name: "ran" for name in ALL}, project["first"]
    out = project["path"].parent / "out"
    report = json.loads((out / "validation.json").read_text())
    assert report["board"] == "qemu-mps2-an386" and report["inputs"] == 4
    assert report["mismatches"] == 0
    assert (out / "codegen" / "model.c").is_file() and (out / "firmware" / "build" / "firmware.elf").is_file()
    state = json.loads((out / STATE_FILE).read_text())
    assert set(state["stages"]) == set(ALL)
    assert "0 mismatches on 4 inputs" in project["first"]
    page = (out / "report.html").read_text()  # the last stage: the run as one page (tests/test_report.py)
    assert "qemu-mps2-an386" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_second_run_skips_everything(project: dict) -> None:
    proc = run_cli("run", "--project", project["path"])
    assert proc.returncode == 0, proc.stderr
    assert "0 ran, 7 skipped" in proc.stdout
    assert all(line.split()[1] == "skip" for line in proc.stdout.splitlines()[2:-1]), proc.stdout
    assert "0 mismatches" in proc.stdout  # the figures of the last real run are shown for skipped stages


def test_changing_validate_limit_reruns_only_validate(project: dict) -> None:
    project["sections"]["validate"]["limit"] = 3
    write(project["path"].parent, project["sections"])
    assert ran(statuses(project["path"])) == ["validate", "report"]


def test_changing_codegen_target_reruns_codegen_and_the_firmware_built_with_it(project: dict) -> None:
    project["sections"]["codegen"] = {"target": "cortex-m4-dsp"}
    write(project["path"].parent, project["sections"])
    assert ran(statuses(project["path"])) == ["codegen", "firmware", "validate", "report"]
    report = json.loads((project["path"].parent / "out/codegen/model.codegen.json").read_text())
    assert report["target"] == "cortex-m4-dsp"
    manifest = json.loads((project["path"].parent / "out/firmware/tinyml.json").read_text())
    assert manifest["codegen_target"] == "cortex-m4-dsp"
    assert json.loads((project["path"].parent / "out/validation.json").read_text())["mismatches"] == 0


def test_dry_run_after_changing_epochs_plans_train_onwards_and_runs_nothing(project: dict) -> None:
    project["sections"]["train"]["epochs"] = 2
    write(project["path"].parent, project["sections"])
    state = (project["path"].parent / "out" / STATE_FILE).read_text()
    proc = run_cli("run", "--project", project["path"], "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "6 stage(s) would run, 1 unchanged" in proc.stdout
    assert (project["path"].parent / "out" / STATE_FILE).read_text() == state


def test_until_then_from_after_changing_epochs(project: dict) -> None:
    """Epochs changed (previous test): data is kept, train and everything after it run again."""
    first = statuses(project["path"], until="quantize")
    assert first == {"data": "skip", "train": "ran", "quantize": "ran", "codegen": "-", "firmware": "-",
                     "validate": "-", "report": "-"}
    assert json.loads((project["path"].parent / "out/model/model.json").read_text())["epochs_run"] == 2
    rest = statuses(project["path"], start="codegen")
    assert rest == {"data": "-", "train": "-", "quantize": "-", "codegen": "ran", "firmware": "ran",
                    "validate": "ran", "report": "ran"}
    assert json.loads((project["path"].parent / "out/validation.json").read_text())["mismatches"] == 0
    assert ran(statuses(project["path"])) == []


def test_force_reruns_the_chosen_stages(project: dict) -> None:
    assert ran(statuses(project["path"], start="firmware", force=True)) == ["firmware", "validate", "report"]
    assert ran(statuses(project["path"], start="firmware", until="firmware", force=True)) == ["firmware"]
    # the rebuilt ELF is byte-identical, so validate (which reads it) stays skipped
    assert ran(statuses(project["path"])) == []


def test_sign_stage_signs_the_firmware_and_verifies(project: dict, tmp_path: Path) -> None:
    from tinyml.signing import keygen, verify_folder

    key = tmp_path / "release.key"
    keygen(key)
    project["sections"]["sign"] = {"key": str(key)}
    write(project["path"].parent, project["sections"])
    assert ran(statuses(project["path"])) == ["sign"]
    firmware = project["path"].parent / "out" / "firmware"
    verified = verify_folder(firmware, [key.with_name("release.key.pub")])
    assert "build/firmware.elf" in verified.manifest["files"] and verified.manifest["board"] == "qemu-mps2-an386"
    assert ran(statuses(project["path"])) == []
    del project["sections"]["sign"]
    write(project["path"].parent, project["sections"])


def test_firmware_mode_run_builds_the_run_mode_firmware(project: dict, tmp_path: Path) -> None:
    """`[firmware] mode = "run"` (without [validate]) rebuilds the firmware, and only it of the
    model's stages, as `make MODE=run`; a second run skips it."""
    import shutil

    folder = shutil.copytree(project["path"].parent, tmp_path / "copy")
    sections = {k: v for k, v in json.loads(json.dumps(project["sections"])).items() if k != "validate"}
    sections["firmware"]["mode"] = "run"
    path = write(folder, sections)
    result = statuses(path)
    assert result["firmware"] == "ran" and "validate" not in result
    assert {result[s] for s in ("data", "train", "quantize", "codegen")} == {"skip"}
    assert b"run mode reads the sensor" in (folder / "out" / "firmware" / "build" / "firmware.elf").read_bytes()
    assert ran(statuses(path)) == []


def test_demo_refuses_a_project_without_run_mode_firmware_before_any_step(tmp_path: Path) -> None:
    import subprocess
    import sys

    vibration = Path(__file__).resolve().parent.parent / "examples" / "vibration"
    proc = subprocess.run([sys.executable, "-m", "tinyml.demo", vibration, vibration, tmp_path / "demo"],
                          capture_output=True, text=True, timeout=120)
    assert_clean_error(proc, "no run-mode sensor firmware", 'mode = "run"')
    assert not (tmp_path / "demo").exists()
    proc = subprocess.run([sys.executable, "-m", "tinyml.demo", "one"], capture_output=True, text=True, timeout=120)
    assert_clean_error(proc, "expected VIBRATION_PROJECT TMP105_PROJECT")


# ---- a failing stage is retried ----------------------------------------------------------------------

def _recordings_csv(path: Path, rows_per_group: int = 200) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["x,y,label,rec"]
    for label, freq in (("calm", 3.0), ("shaky", 11.0)):
        for rec in range(5):
            t = np.arange(rows_per_group) / 50.0
            x = np.sin(2 * np.pi * freq * t) + 0.1 * rng.standard_normal(t.size)
            lines += [f"{a:.4f},{b:.4f},{label},{label}-{rec}" for a, b in zip(x, rng.standard_normal(t.size), strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_a_failed_stage_leaves_no_record_and_runs_again(tmp_path: Path) -> None:
    csv = tmp_path / "recordings.csv"
    _recordings_csv(csv)
    good = csv.read_text()
    path = write(tmp_path, {"project": {"name": "csv"},
                            "data": {"import": ["recordings.csv"], "columns": ["x", "y"], "label_column": "label",
                                     "group_column": "rec", "fs": 50.0, "window": 50},
                            "train": {"epochs": 1}})
    assert statuses(path, until="data")["data"] == "ran"
    csv.write_text(good.replace("0.", "zero.", 40))
    proc = run_cli("run", "--project", path, "--until", "data")
    assert_clean_error(proc, "recordings.csv")
    assert "data      FAILED" in proc.stdout
    assert "data" not in json.loads((tmp_path / "run" / STATE_FILE).read_text())["stages"]
    csv.write_text(good)  # back to the content of the successful run: it still runs again
    assert statuses(path, until="data")["data"] == "ran"
    assert statuses(path, until="data")["data"] == "skip"


# ---- project files ----------------------------------------------------------------------------------

def test_init_writes_a_project_that_reads_back(tmp_path: Path) -> None:
    proc = run_cli("init", tmp_path / "vib")
    assert proc.returncode == 0, proc.stderr
    p = read_project(tmp_path / "vib" / "tinyml.toml")
    assert (p.synth, p.board.name, p.validate["split"], p.out) == ("vibration", "qemu-mps2-an386", "test",
                                                                   tmp_path / "vib" / "run")
    proc = run_cli("init", tmp_path / "vib")
    assert_clean_error(proc, "already exists", "--force")
    proc = run_cli("run", "--project", tmp_path / "vib", "--dry-run")
    assert proc.returncode == 0 and "7 stage(s) would run" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_init_project_runs_as_written(tmp_path: Path) -> None:
    """`tinyml init p && tinyml run --project p`: every stage passes with the written defaults
    (the default quantize tolerance fits a 92-window test split)."""
    assert run_cli("init", tmp_path / "p").returncode == 0
    proc = run_cli("run", "--project", tmp_path / "p")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("data", "train", "quantize", "codegen", "firmware", "validate"):
        assert f"\n{stage}" in proc.stdout and "FAILED" not in proc.stdout
    report = json.loads(next((tmp_path / "p").rglob("quantization.json")).read_text())
    assert report["passed"] and "default" in report["tolerance_rule"]


def test_init_for_temperature_on_a_real_board_and_for_imported_data(tmp_path: Path) -> None:
    from tinyml.project.template import write_project

    p = read_project(write_project(tmp_path / "temp", "nucleo-f446re", "synth-temperature"))
    assert p.synth == "temperature" and p.board.name == "nucleo-f446re" and p.validate is None
    _recordings_csv(tmp_path / "rec.csv")
    p = read_project(write_project(tmp_path, "qemu-riscv32", str(tmp_path / "rec.csv")))
    assert p.import_paths == (tmp_path / "rec.csv",) and p.synth is None


@pytest.mark.parametrize("args, needles", [
    (("--board", "no-such-board"), ("unknown board", "no-such-board")),
    (("--data", "missing.csv"), ("missing.csv",)),
])
def test_init_bad_options_are_clean_errors(tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    assert_clean_error(run_cli("init", tmp_path, *args), *needles)
    assert not (tmp_path / "tinyml.toml").exists()


BAD_PROJECTS = [
    ({"train": {"epoch": 3}}, ("tinyml.toml:", "unknown key 'epoch' in [train]", "did you mean 'epochs'")),
    ({"train": {"epochs": "2"}}, ("[train] epochs must be an integer", "'2'")),
    ({"train": {"epochs": 0}}, ("epochs must be at least 1",)),
    ({"firmware": {"board": "no-such-board"}}, ("unknown board 'no-such-board'",)),
    ({"firmware": {"board": "nucleo-f446re"}}, ("not emulated",)),
    ({"firmware": {"board": "qemu-mps2-an386", "runtime": "tflm"}}, ("runtime 'tflm' needs an esp-idf board",)),
    ({"data": {"synth": "noise"}}, ("[data] synth 'noise' is not one of",)),
    ({"data": {"synth": "vibration", "import": ["x.csv"]}}, ("exactly one of",)),
    ({"data": {"import": ["nowhere/"]}}, ("no such file or folder",)),
    ({"codegen": {"target": "gpu"}}, ("[codegen] target 'gpu'",)),
    ({"validate": {"split": "holdout"}}, ("split 'holdout'",)),
    ({"sign": {"key": "missing.key"}}, ("missing.key", "not found")),
    ({"deploy": {"to": "cloud"}}, ("unknown section [deploy]",)),
    ({"project": {"name": "tiny", "out": "tinyml.toml"}}, ("is a file, not a folder",)),
    ({"firmware": {"board": "qemu-mps2-an386", "mode": "sleep"}}, ("[firmware] mode 'sleep' is not one of",)),
    ({"firmware": {"board": "qemu-mps2-an386", "mode": "run"}}, ("[validate] needs the validation firmware",)),
    ({"firmware": {"board": "esp32-c3-devkitm-1", "mode": "run"}}, ("run mode only for make-built boards",)),
]


@pytest.mark.parametrize("change, needles", BAD_PROJECTS)
def test_bad_project_files_are_refused_before_anything_runs(tmp_path: Path, change: dict,
                                                            needles: tuple[str, ...]) -> None:
    from tinyml.errors import InputError

    sections = {**json.loads(json.dumps(TINY)), **change}
    path = write(tmp_path, sections)
    with pytest.raises(InputError) as exc:
        read_project(path)
    for needle in needles:
        assert needle.lower() in exc.value.one_line().lower(), exc.value.one_line()
    assert not (tmp_path / "out").exists()


def test_errors_name_the_line_of_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**TINY, "train": {"epochs": 1, "optimizer": "adam"}})
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("optimizer"))
    proc = run_cli("run", "--project", path)
    assert_clean_error(proc, f"tinyml.toml:{line}:", "optimizer", "known keys")


@pytest.mark.parametrize("text, needles", [
    ("[project]\nname = 'x'\n[train]\nepochs = 1\n", ("missing section [data]",)),
    ("[project\nname = 'x'\n", ("not valid toml",)),
])
def test_broken_project_files_are_clean_errors(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    (tmp_path / "tinyml.toml").write_text(text)
    assert_clean_error(run_cli("run", "--project", tmp_path), *needles)


def test_run_options_are_checked(tmp_path: Path) -> None:
    assert_clean_error(run_cli("run", "--project", tmp_path / "none.toml"), "project file not found", "tinyml init")
    path = write(tmp_path, {k: v for k, v in TINY.items() if k != "validate"})
    assert_clean_error(run_cli("run", "--project", path, "--from", "validate"), "not configured", "[validate]")
    assert_clean_error(run_cli("run", "--project", path, "--from", "quantize", "--until", "train"), "comes after")
    proc = run_cli("run", "--project", path, "--from", "train")
    assert_clean_error(proc, "dataset.npz is missing", "drop --from")


def test_a_second_run_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    from tinyml.project.state import exclusive

    path = write(tmp_path, TINY)
    with exclusive(tmp_path / "out"):
        assert_clean_error(run_cli("run", "--project", path), "another `tinyml run` is working in")
        assert run_cli("run", "--project", path, "--dry-run").returncode == 0  # a plan only reads
    assert not (tmp_path / "out" / STATE_FILE).exists()


def test_examples_read_back(shared: Path) -> None:
    root = Path(__file__).resolve().parent.parent / "examples"
    vib = read_project(root / "vibration" / "tinyml.toml")
    assert vib.board.name == "qemu-mps2-an386" and vib.validate is not None
    tmp105 = read_project(root / "tmp105" / "tinyml.toml")
    assert tmp105.mode == "run" and tmp105.sensor == "tmp105" and tmp105.validate is None
    fan = read_project(root / "fan" / "tinyml.toml")
    assert fan.import_paths[0].resolve() == (shared / "datasets/fan-imbalance/accelerometer.csv").resolve()


def test_fan_example_imports_the_real_dataset(shared: Path, tmp_path: Path) -> None:
    import dataclasses

    fan = read_project(Path(__file__).resolve().parent.parent / "examples" / "fan" / "tinyml.toml")
    result = run_project(dataclasses.replace(fan, out=tmp_path), until="data")
    assert result[0].status == "ran" and result[0].figures["classes"] == 3
    assert result[0].figures["windows"] > 1000
