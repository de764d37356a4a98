"""`tinyml data import --rpm/--rpm-column/--rpm-range --bearing`: the shaft speed and the bearing
recorded in the dataset (from a column, per recording, or estimated), in tinyml.toml too, and clean errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import load
from tinyml.data.importer import ImportOptions, import_data
from tinyml.errors import InputError

FS = 1000.0


def recording(path: Path, rpm: float, n: int = 4000, *, with_speed: bool = False, seed: int = 0,
              fs: float = FS) -> Path:
    """A CSV of x, y with the shaft's 1x (and a stronger 2x) in noise; with_speed adds an rpm column
    that ramps by +-1 % around ``rpm``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    f = rpm / 60
    x = np.cos(2 * math.pi * f * t) + 1.3 * np.cos(4 * math.pi * f * t + 1) + rng.normal(0, 1, n)
    y = 0.5 * np.sin(2 * math.pi * f * t) + rng.normal(0, 1, n)
    speed = rpm * (1 + 0.01 * np.linspace(-1, 1, n))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x", "y", *(["rpm"] if with_speed else [])])
        for i in range(n):
            w.writerow([f"{x[i]:.6f}", f"{y[i]:.6f}", *([f"{speed[i]:.3f}"] if with_speed else [])])
    return path


def options(**kw) -> ImportOptions:
    return ImportOptions(fs=FS, window=256, label="run", normal_class="run", val=0, test=0, **kw)


def test_rpm_column_leaves_the_channels_and_gives_each_window_its_mean(tmp_path) -> None:
    src = recording(tmp_path / "a.csv", 1500, with_speed=True)
    ds = import_data([src], options(rpm_column="rpm", bearing="6205"))
    assert ds.channels == ["x", "y"] and ds.x.shape[2] == 2
    want = np.array([1500 * (1 + 0.01 * np.linspace(-1, 1, 4000))[i * 256:(i + 1) * 256].mean() for i in range(ds.n)])
    assert np.allclose(ds.rpm, want, rtol=1e-6)
    assert ds.meta["bearing"]["name"] == "6205-2RS" and ds.meta["bearing"]["orders"]["bpfo"] > 3.58
    with pytest.raises(InputError, match="no column 'speed'"):
        import_data([src], options(rpm_column="speed"))


def test_one_speed_per_recording_by_file_name(tmp_path, monkeypatch) -> None:
    a, b = recording(tmp_path / "a.csv", 1000), recording(tmp_path / "b.csv", 2000, seed=1)
    ds = import_data([a, b], options(rpm={"a": 1000.0, "b.csv": 2000.0}, split="random"))
    assert set(np.unique(ds.rpm)) == {1000.0, 2000.0}
    assert np.all(ds.rpm[np.char.endswith(ds.groups.astype(str), "a.csv")] == 1000.0)
    assert np.all(import_data([a], options(rpm=1797.0)).rpm == 1797.0)
    with pytest.raises(InputError, match="no speed for recording 'b.csv'") as err:
        import_data([a, b], options(rpm={"a": 1000.0}, split="random"))
    assert "b=RPM" in err.value.hint


def test_estimated_speed_within_its_stated_accuracy(tmp_path) -> None:
    srcs = [recording(tmp_path / f"r{rpm}.csv", rpm, seed=rpm) for rpm in (780, 1210, 1777)]
    ds = import_data(srcs, options(rpm="estimate", rpm_range=[600.0, 2400.0], split="random"))
    for src, rpm in zip(srcs, (780, 1210, 1777), strict=True):
        got = ds.rpm[ds.groups == str(src)]
        assert np.all(np.abs(got - rpm) / rpm < 0.003), (rpm, got[0])   # the 2x is stronger: still the 1x
    assert ds.meta["rpm_range"] == [600.0, 2400.0] and len(ds.meta["rpm_estimated"]) == 3


def test_cli_records_speed_and_bearing_and_refuses_bad_options(tmp_path) -> None:
    src = recording(tmp_path / "a.csv", 1500, with_speed=True)
    out = tmp_path / "d.npz"
    proc = run_cli("data", "import", src, "--out", out, "--fs", "1000", "--label", "run", "--normal-class", "run",
                   "--val", "0", "--test", "0", "--rpm-column", "rpm", "--rpm-range", "1200:1800",
                   "--bearing", "6203")
    assert proc.returncode == 0, proc.stderr
    ds = load(out)
    assert ds.rpm is not None and ds.meta["rpm_range"] == [1200.0, 1800.0] and ds.meta["bearing"]["name"] == "6203-2RS"
    info = run_cli("data", "info", out).stdout
    assert "operating range: 1200..1800 rpm" in info and "bearing: 6203-2RS (FTF 0.3816, BPFO 3.053, BPFI 4.947" in info
    base = ["data", "import", src, "--out", tmp_path / "e.npz", "--fs", "1000", "--label", "run",
            "--normal-class", "run"]
    for extra, words in [(["--rpm", "estimate"], "needs the range"), (["--rpm", "fast"], "not a number"),
                         (["--rpm", "1500", "--rpm-column", "rpm"], "given twice"),
                         (["--rpm-range", "1800:1200", "--rpm", "estimate"], "LOW:HIGH"),
                         (["--bearing", "7205-BECBP"], "unknown bearing"), (["--rpm", "-3"], "positive")]:
        assert_clean_error(run_cli(*base, *extra), words)
    assert not (tmp_path / "e.npz").exists()


def test_the_same_keys_in_tinyml_toml(tmp_path) -> None:
    from tinyml.project.config import read_project

    recording(tmp_path / "a.csv", 1500)
    (tmp_path / "mine.toml").write_text("rolling_elements = 9\nball_diameter_mm = 7.94\npitch_diameter_mm = 39.04\n")
    text = ('[project]\nname = "p"\n[data]\nimport = ["a.csv"]\nfs = 1000\nlabel = "run"\nnormal_class = "run"\n'
            'rpm = { a = 1500 }\nrpm_range = [1200, 1800]\nbearing = "mine.toml"\n[train]\nmodel = "mlp"\n'
            'features = "bearing"\n')
    (tmp_path / "tinyml.toml").write_text(text)
    project = read_project(tmp_path / "tinyml.toml")
    assert project.data.rpm == {"a": 1500} and project.data.rpm_range == [1200.0, 1800.0]
    assert project.data.bearing == str(tmp_path / "mine.toml")
    assert project.features[0]["name"] == "bearing"
    (tmp_path / "tinyml.toml").write_text(text.replace("rpm_range = [1200, 1800]", 'rpm_range = ["slow"]'))
    with pytest.raises(InputError, match="rpm_range must be a list of numbers"):
        read_project(tmp_path / "tinyml.toml")


@pytest.mark.slow
def test_tinyml_run_carries_the_speed_keys_into_the_bearing_features(tmp_path) -> None:
    """The [data] speed keys through a whole `tinyml run` up to training: the bearing file named relative to the
    project and the machine's speed range reach the trained model's bearing features."""
    from tinyml.project.config import read_project
    from tinyml.project.runner import run_project

    for name, rpm, seed in (("a", 1500, 0), ("b", 1200, 1)):
        recording(tmp_path / f"{name}.csv", rpm, n=24000, with_speed=True, seed=seed, fs=8000)
    (tmp_path / "mine.toml").write_text("rolling_elements = 9\nball_diameter_mm = 7.94\npitch_diameter_mm = 39.04\n")
    (tmp_path / "tinyml.toml").write_text(
        '[project]\nname = "p"\n[data]\nimport = ["a.csv", "b.csv"]\nfs = 8000\nwindow = 1024\nlabel = "run"\n'
        'normal_class = "run"\nsplit = "random"\nrpm_column = "rpm"\nrpm_range = [1000, 1800]\nbearing = "mine.toml"\n'
        '[train]\nmodel = "autoencoder"\nepochs = 1\nfeatures = "bearing"\n')
    result = run_project(read_project(tmp_path / "tinyml.toml"), until="train")
    assert [r.status for r in result][:2] == ["ran", "ran"]
    ds = load(tmp_path / "run" / "dataset.npz")
    assert set(np.round(np.unique(ds.rpm), -2)) == {1200.0, 1500.0} and ds.meta["bearing"]["name"] == "mine"
    spec = json.loads((tmp_path / "run" / "model" / "preprocess.json").read_text())["feature_spec"][0]
    assert spec["name"] == "bearing" and spec["bearing"] == "mine" and spec["rpm_range"] == [1000.0, 1800.0]
    assert spec["orders"]["bpfo"] == pytest.approx(ds.meta["bearing"]["orders"]["bpfo"])
