"""`tinyml data import`: CSV, .mat and .npz sources, contiguous windows, leak-free splits, clean errors."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import Dataset, load
from tinyml.data.importer import ImportOptions, import_data, resample
from tinyml.errors import InputError

FAN = "datasets/fan-imbalance/accelerometer.csv"


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def interleaved_csv(path: Path, runs: list[tuple[str, str, int]]) -> Path:
    """Runs of (label, group, length); column rec = run index, n = sample counter inside the run."""
    rows = [[label, group, i, n] for i, (label, group, length) in enumerate(runs) for n in range(length)]
    return write_csv(path, ["label", "grp", "rec", "n"], rows)


def assert_windows_contiguous(ds: Dataset) -> None:
    """Each window comes from one run (one rec value) and consecutive samples (n steps by 1)."""
    rec, n = ds.x[:, :, 0], ds.x[:, :, 1]
    assert np.all(rec == rec[:, :1])
    assert np.all(np.diff(n, axis=1) == 1)


def assert_groups_disjoint(ds: Dataset) -> None:
    sides = [set(ds.groups[ds.split == s]) for s in range(3)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def test_csv_runs_never_mix_in_a_window(tmp_path):
    runs = [("a", "g1", 70), ("b", "g1", 50), ("a", "g2", 64), ("a", "g1", 33), ("b", "g3", 90),
            ("b", "g2", 40), ("a", "g3", 45)]
    path = interleaved_csv(tmp_path / "d.csv", runs)
    ds = import_data([path], ImportOptions(columns=["rec", "n"], label_column="label", group_column="grp",
                                           fs=10.0, window=16, hop=8, val=0.0, test_groups=["g3"]))
    assert_windows_contiguous(ds)
    assert ds.n == sum((length - 16) // 8 + 1 for _, _, length in runs)
    assert ds.classes == ["a", "b"] and ds.fs == 10.0 and ds.channels == ["rec", "n"]
    assert set(ds.groups[ds.split == 2]) == {"g3"} and "g3" not in set(ds.groups[ds.split == 0])
    assert_groups_disjoint(ds)


def test_single_csv_defaults_to_a_time_split_within_each_recording(tmp_path):
    path = interleaved_csv(tmp_path / "d.csv", [("a", "", 400), ("b", "", 400)])
    ds = import_data([path], ImportOptions(columns=["rec", "n"], label_column="label", fs=1.0, window=20))
    assert ds.meta["options"]["split"] == "time"
    assert_windows_contiguous(ds)
    for rec in (0, 1):
        mine = ds.x[:, 0, 0] == rec
        starts = {s: ds.x[mine & (ds.split == s), 0, 1] for s in range(3)}
        assert all(len(v) for v in starts.values())
        assert starts[0].max() < starts[1].min() and starts[1].max() < starts[2].min()  # train, val, test in time
        assert starts[0].max() + 20 <= starts[1].min()  # no window straddles the cut


def test_random_split_is_stratified(tmp_path):
    path = interleaved_csv(tmp_path / "d.csv", [("a", "", 400), ("b", "", 400)])
    ds = import_data([path], ImportOptions(columns=["rec", "n"], label_column="label", fs=1.0, window=20,
                                           split="random", seed=3))
    for s in range(3):
        assert set(ds.y[ds.split == s]) == {0, 1}


def test_folder_layout_labels_by_folder(tmp_path):
    for ci, label in enumerate(("healthy", "fault")):
        (tmp_path / "raw" / label).mkdir(parents=True)
        for i in range(3):
            signal = np.full((300, 2), 10.0 * ci + i)  # the class and file are readable from the samples
            np.savez(tmp_path / "raw" / label / f"r{i}.npz", signal=signal, fs=np.float64(100))
    ds = import_data([tmp_path / "raw"], ImportOptions(window=50))
    assert ds.fs == 100.0 and ds.x.shape == (6 * 6, 50, 2)  # fs read from inside the .npz
    assert ds.classes == ["fault", "healthy"] and ds.meta["options"]["split"] == "group"
    assert np.all((ds.x[:, 0, 0] >= 10) == (ds.y == ds.classes.index("fault")))
    assert len(set(ds.groups)) == 6
    assert_groups_disjoint(ds)


def test_mat_variable_patterns(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("normal", "inner"):
        (tmp_path / label).mkdir()
        for i in range(3):
            scipy.io.savemat(tmp_path / label / f"{label}{i}.mat",
                             {f"X{i:03d}_DE_time": rng.normal(size=(1200, 1)),
                              f"X{i:03d}_FE_time": rng.normal(size=(1000, 1)) + 5, f"X{i:03d}RPM": 1797.0})
    one = import_data([tmp_path], ImportOptions(variable="DE_time", fs=12000.0, window=100))
    assert one.classes == ["inner", "normal"] and one.x.shape == (6 * 12, 100, 1)
    assert one.meta["options"]["split"] == "group"
    assert_groups_disjoint(one)
    assert abs(one.x.mean()) < 0.2  # the DE array (mean 0), not FE (mean 5)
    largest = import_data([tmp_path], ImportOptions(fs=12000.0, window=100))
    assert largest.x.shape[0] == 6 * 12  # default: the largest array (DE, 1200 samples)
    with pytest.raises(InputError, match="different lengths"):
        import_data([tmp_path], ImportOptions(variable="*_time", fs=12000.0, window=100))


def test_resampling_to_a_common_rate_keeps_frequencies(tmp_path):
    def tone_csv(name: str, fs: float, label: str) -> Path:
        t = np.arange(int(20 * fs)) / fs
        rows = [[f"{ti:.6f}", f"{np.sin(2 * np.pi * 5 * ti):.6f}", label] for ti in t]
        return write_csv(tmp_path / name, ["time", "v", "label"], rows)
    files = [tone_csv("a.csv", 100.0, "a"), tone_csv("b.csv", 250.0, "b"), tone_csv("c.csv", 100.0, "a"),
             tone_csv("d.csv", 250.0, "b"), tone_csv("e.csv", 100.0, "a"), tone_csv("f.csv", 250.0, "b")]
    with pytest.raises(InputError, match="different sampling rates"):
        import_data(files, ImportOptions(columns=["v"], time_column="time", label_column="label", window=100))
    ds = import_data(files, ImportOptions(columns=["v"], time_column="time", label_column="label", fs=50.0,
                                          window=100))
    assert ds.fs == 50.0 and ds.n == 6 * 10  # 20 s at 50 Hz = 1000 samples = 10 windows per file
    spec = np.abs(np.fft.rfft(ds.x[:, :, 0], axis=1))
    assert np.all(np.argmax(spec, axis=1) == 10)  # 5 Hz in 100-sample windows at 50 Hz
    assert sorted(ds.meta["source_fs"]) == pytest.approx([100.0, 250.0])


def test_time_gaps_and_resets_start_new_recordings(tmp_path):
    t = np.concatenate([np.arange(100), 500 + np.arange(100), np.arange(100)]) * 0.1  # gap, then back to 0
    rows = [[f"{ti:.1f}", i, "a" if i < 150 else "b"] for i, ti in enumerate(t)]
    path = write_csv(tmp_path / "t.csv", ["time", "i", "label"], rows)
    opts = ImportOptions(columns=["i"], time_column="time", label_column="label", window=20, hop=10,
                         split="random", val=0.1, test=0.1)
    with pytest.raises(InputError, match=r"1 clock fault\(s\): backwards at line 202 \(59.9 s back\)"):
        import_data([path], opts)  # a clock reset is refused by default
    ds = import_data([path], replace(opts, on_backwards="split"))
    assert ds.fs == pytest.approx(10.0)
    assert np.all(np.diff(ds.x[:, :, 0], axis=1) == 1)  # no window spans the gap or the reset
    assert ds.n == 9 + 4 + 4 + 9  # runs of 100, 50 (label a->b), 50 and 100 rows


def test_resample_is_identity_at_the_same_rate_and_scales_length():
    x = np.random.default_rng(0).normal(size=(99, 2))
    assert resample(x, 50.0, 50.0) is x
    assert resample(x, 50.0, 100.0).shape == (198, 2)


def test_fill_options(tmp_path):
    rows = [["a" if i < 60 else "b", str(i) if i not in (5, 70) else "nan", i] for i in range(120)]
    path = write_csv(tmp_path / "gaps.csv", ["label", "v", "n"], rows)
    proc = run_cli("data", "import", path, "--out", tmp_path / "o.npz", "--label-column", "label", "--fs", "1",
                   "--window", "10")
    assert_clean_error(proc, "line 7", "'v'", "--fill")
    ds = import_data([path], ImportOptions(label_column="label", fs=1.0, window=10, fill="linear"))
    assert np.array_equal(ds.x[:, :, 0], ds.x[:, :, 1])  # v == n after linear filling
    ds = import_data([path], ImportOptions(label_column="label", fs=1.0, window=10, fill="previous"))
    assert 4.0 in ds.x[:, 5, 0]


def test_cli_import_writes_a_dataset(tmp_path):
    path = interleaved_csv(tmp_path / "d.csv", [("a", "1", 100), ("b", "1", 100), ("a", "2", 100),
                                               ("b", "2", 100), ("a", "3", 100), ("b", "3", 100)])
    out = tmp_path / "o.npz"
    proc = run_cli("data", "import", path, "--out", out, "--columns", "rec,n", "--label-column", "label",
                   "--group-column", "grp", "--fs", "10", "--window", "25", "--test-groups", "3",
                   "--val-groups", "2", "--kind", "vibration")
    assert proc.returncode == 0, proc.stderr
    ds = load(out)
    assert ds.kind == "vibration" and ds.n == 24
    assert set(ds.groups[ds.split == 2]) == {"3"} and set(ds.groups[ds.split == 1]) == {"2"}


# ---------------------------------------------------------------- bad input, through the CLI


@pytest.fixture
def good_csv(tmp_path):
    return interleaved_csv(tmp_path / "good.csv", [("a", "1", 100), ("b", "2", 100), ("a", "3", 100)])


def _import(tmp_path, *args):
    return run_cli("data", "import", *args, "--out", tmp_path / "out.npz")


@pytest.mark.parametrize("extra,needle", [
    (["--columns", "rec,nope"], "unknown column 'nope'"),
    (["--label-column", "Label"], "unknown column 'Label'"),
    (["--group-column", "speed"], "unknown column 'speed'"),
    (["--columns", "label", "--label-column", "grp"], "non-numeric"),
    (["--window", "500"], "longer than the longest recording"),
    (["--hop", "0"], "--hop must be at least 1"),
    (["--window", "1"], "--window must be at least 2"),
    (["--window", "60", "--split", "group", "--group-column", "grp"], "too few"),
    (["--split", "random", "--window", "50", "--hop", "50", "--label-column", "label"], "too few"),
    (["--label-column", "label", "--group-column", "grp", "--test-groups", "9"], "unknown group"),
    (["--label-column", "label", "--split", "time", "--test-groups", "1"], "need --split group"),
    (["--label-column", "label", "--val", "0.7", "--test", "0.5"], "fractions"),
    (["--label-column", "label", "--class-names", "a=x,c=y"], "unknown label(s) c"),
    (["--label-column", "label", "--class-names", "a=x,b=x"], "same name"),
    (["--label-column", "label", "--class-names", "a"], "OLD=NEW"),
    (["--label-column", "grp", "--variable", "x"], None),
])
def test_bad_csv_options(tmp_path, good_csv, extra, needle):
    args = [good_csv, "--fs", "10", "--window", "20", *extra]
    if "--label-column" not in extra:
        args += ["--label-column", "label"]
    proc = _import(tmp_path, *args)
    if needle is None:  # --variable is for .mat/.npz only: harmless on CSV, so this must work
        assert proc.returncode == 0, proc.stderr
        return
    assert_clean_error(proc, needle)
    assert not (tmp_path / "out.npz").exists()


def test_single_class_is_rejected(tmp_path):
    path = interleaved_csv(tmp_path / "one.csv", [("a", "1", 300)])
    assert_clean_error(_import(tmp_path, path, "--label-column", "label", "--fs", "1", "--window", "20"),
                       "only one class", "--normal-class")
    ok = _import(tmp_path, path, "--label-column", "label", "--fs", "1", "--window", "20", "--normal-class", "a")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("content,needle", [
    (b"label,v\na,1\na,2\na", "line 4 has 1 fields"),
    (b"label,v\na,1\na,2\na,", "missing, nan or infinite value at line 4"),
    (b"label,v\na,1\n\na,2\n", "empty line 3"),
    (b"label,v\n", "no data rows"),
    (b"", "no data rows"),
    (b"\xff\xfe\x00\x01binary\x00\x00", "not a text csv"),
    (b"label,v\na,1\na,inf\nb,2\n", "line 3"),
    (b"label,v\na,1\na,1e400\nb,2\n", "line 3"),
    (b"label,v\na,1\na,oops\nb,2\n", "non-numeric value 'oops' at line 3"),
])
def test_broken_csv_files(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert_clean_error(_import(tmp_path, path, "--label-column", "label", "--columns", "v", "--fs", "1",
                               "--window", "2"), needle)


def test_missing_paths_and_empty_folders(tmp_path):
    assert_clean_error(_import(tmp_path, tmp_path / "nope.csv", "--fs", "1"), "no such file")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("hi")
    assert_clean_error(_import(tmp_path, tmp_path / "empty", "--fs", "1"), "no data files")
    assert_clean_error(_import(tmp_path, tmp_path / "empty" / "a" / "notes.txt", "--fs", "1"), "unsupported file type")


def test_broken_mat_and_npz(tmp_path):
    (tmp_path / "a").mkdir()
    good = tmp_path / "a" / "good.mat"
    scipy.io.savemat(good, {"X1_DE_time": np.zeros((500, 1))})
    cut = tmp_path / "a" / "cut.mat"
    cut.write_bytes(good.read_bytes()[:200])
    assert_clean_error(_import(tmp_path, cut, "--fs", "1", "--label", "a"), "cannot read")
    assert_clean_error(_import(tmp_path, good, "--fs", "1", "--label", "a", "--variable", "FE_time"),
                       "no array matches", "X1_DE_time")
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM" + bytes(512))
    assert_clean_error(_import(tmp_path, v73, "--fs", "1", "--label", "a"), "v7.3")
    npz = tmp_path / "raw.npz"
    np.savez(npz, signal=np.zeros((500, 2)))
    cut_npz = tmp_path / "cut.npz"
    cut_npz.write_bytes(npz.read_bytes()[:100])
    assert_clean_error(_import(tmp_path, cut_npz, "--fs", "1", "--label", "a"), "cannot read")
    nan = tmp_path / "nan.npz"
    sig = np.zeros((500, 2))
    sig[123, 1] = np.nan
    np.savez(nan, signal=sig)
    assert_clean_error(_import(tmp_path, nan, "--fs", "1", "--label", "a"), "sample 123")
    text = tmp_path / "words.npz"
    np.savez(text, names=np.array(["a", "b"]))
    assert_clean_error(_import(tmp_path, text, "--fs", "1", "--label", "a"), "no numeric array")
    ds_file = tmp_path / "ds.npz"
    assert run_cli("data", "synth", "temperature", "--out", ds_file, "--per-class", "30").returncode == 0
    assert_clean_error(_import(tmp_path, ds_file, "--fs", "1", "--label", "a"), "already a tinyml dataset")


def test_missing_labels_rate_and_channel_mismatch(tmp_path):
    np.savez(tmp_path / "two.npz", signal=np.zeros((500, 2)))
    np.savez(tmp_path / "three.npz", signal=np.zeros((500, 3)))
    assert_clean_error(_import(tmp_path, tmp_path / "two.npz", "--fs", "1"), "no label", "--label")
    assert_clean_error(_import(tmp_path, tmp_path / "two.npz", "--label", "a"), "sampling rate unknown", "--fs")
    assert_clean_error(_import(tmp_path, tmp_path / "two.npz", tmp_path / "three.npz", "--label", "a",
                               "--fs", "1"), "different channel counts")
    assert_clean_error(_import(tmp_path, tmp_path / "two.npz", "--label", "a", "--fs", "-3"), "positive")


# ---------------------------------------------------------------- the real fan dataset


def test_fan_csv_imports_with_held_out_speeds(shared, tmp_path):
    out = tmp_path / "fan.npz"
    proc = run_cli("data", "import", shared / FAN, "--out", out, "--columns", "x,y,z",
                   "--label-column", "Sensor Configuration", "--group-column", "Rotation Speed Percentage",
                   "--test-groups", "25,45,65,85", "--fs", "50", "--window", "256", "--hop", "128",
                   "--kind", "vibration", "--class-names", "1=balanced,2=perpendicular,3=opposite")
    assert proc.returncode == 0, proc.stderr
    ds = load(out)
    assert ds.classes == ["balanced", "perpendicular", "opposite"] and ds.channels == ["x", "y", "z"] and ds.fs == 50.0
    per_recording = (3000 - 256) // 128 + 1  # 3000 rows per (configuration, speed)
    assert ds.n == 3 * 17 * per_recording
    assert np.bincount(ds.y).tolist() == [17 * per_recording] * 3
    assert set(ds.groups[ds.split == 2]) == {"25", "45", "65", "85"}
    assert np.count_nonzero(ds.split == 2) == 4 * 3 * per_recording
    assert_groups_disjoint(ds)
    assert np.count_nonzero(ds.split == 1) > 0 and set(ds.y[ds.split == 1]) == {0, 1, 2}
    first = np.loadtxt(shared / FAN, delimiter=",", skiprows=1, max_rows=256)
    np.testing.assert_allclose(ds.x[(ds.groups == "20") & (ds.y == 0)][0], first[:, 2:5], rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(runs=st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["g1", "g2", "g3", "g4"]),
                               st.integers(1, 60)), min_size=1, max_size=12),
       window=st.integers(2, 12), hop=st.integers(1, 12))
def test_any_run_layout_gives_contiguous_windows_and_whole_groups(tmp_path_factory, runs, window, hop):
    merged: list[list] = []  # consecutive rows with the same (label, group) form one recording
    for label, group, length in runs:
        if merged and merged[-1][:2] == [label, group]:
            merged[-1][2] += length
        else:
            merged.append([label, group, length])
    rows = [[label, group, rid] for rid, (label, group, length) in enumerate(merged) for _ in range(length)]
    path = write_csv(tmp_path_factory.mktemp("runs") / "d.csv", ["label", "grp", "rid", "row"],
                     [r + [i] for i, r in enumerate(rows)])
    expected = sum((n - window) // hop + 1 for _, _, n in merged if n >= window)
    opts = ImportOptions(columns=["rid", "row"], label_column="label", group_column="grp", fs=1.0,
                         window=window, hop=hop, val=0.25, test=0.25)
    try:
        ds = import_data([path], opts)
    except InputError as exc:  # too little data or one class is a clean error, never a crash
        assert any(why in exc.message for why in ("too few", "longer than", "only one class")), exc.message
        return
    assert ds.n == expected
    assert np.all(ds.x[:, :, 0] == ds.x[:, :1, 0])  # one recording per window
    assert np.all(np.diff(ds.x[:, :, 1], axis=1) == 1)  # consecutive rows
    assert_groups_disjoint(ds)
