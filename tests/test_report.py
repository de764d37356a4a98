"""`tinyml report` opened in a real headless Chromium: no console errors, nothing fetched, user
text escaped, and every number on the page equal to the JSON artifact it came from.

Two runs: a cnn1d classifier whose class names are hostile HTML, validated on the emulated
Cortex-M4F (QEMU), and a feature autoencoder (anomaly histograms, AUC, threshold).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.browser import chromium, console_errors, outside_loopback, requested_urls, save_screenshot
from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import Dataset

HOSTILE = ["healthy", "<img src=x>", 'outer "race" & </svg>']  # markup if not escaped; tags end early


def _dataset(tmp: Path, names: list[str], seed: int) -> Path:
    from tinyml.data.synth import VibrationOptions, synth_vibration

    ds = synth_vibration(VibrationOptions(per_class=24, window=128, windows_per_recording=4, seed=seed))
    keep = np.isin(ds.y, [0, 1, 4])
    ds = Dataset(ds.x[keep], np.searchsorted([0, 1, 4], ds.y[keep]), names, ds.channels, ds.fs, ds.split[keep],
                 ds.groups[keep], ds.kind, names[0], ds.meta)
    return ds.save(tmp / "data.npz")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cnn1d run with hostile class names, validated on QEMU, and its report."""
    from tinyml.quantize import quantize_run
    from tinyml.train.fit import TrainOptions, train

    tmp = tmp_path_factory.mktemp("report_cls")
    data = _dataset(tmp, HOSTILE, 1)
    from tinyml.data.dataset import load

    train(load(data), "cnn1d", tmp / "run", TrainOptions(epochs=10, quiet=True), dataset_path=data)
    quantize_run(tmp / "run", tolerance=100.0)
    validation = tmp / "validation.json"
    proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", tmp / "run", "--data", data,
                   "--limit", "12", "--report", validation)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("report", tmp / "run", "--validation", validation, "--out", tmp / "report.html")
    assert proc.returncode == 0, proc.stderr
    return {"run": tmp / "run", "validation": validation, "page": tmp / "report.html", "tmp": tmp}


@pytest.fixture(scope="module")
def anomaly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tinyml.data.dataset import load
    from tinyml.quantize import quantize_run
    from tinyml.train.fit import TrainOptions, train

    tmp = tmp_path_factory.mktemp("report_ae")
    data = _dataset(tmp, ["healthy", "imbalance", "bearing_outer"], 2)
    train(load(data), "autoencoder", tmp / "run", TrainOptions(epochs=6, quiet=True), dataset_path=data)
    quantize_run(tmp / "run", tolerance=100.0)
    proc = run_cli("report", tmp / "run", "--out", tmp / "report.html")
    assert proc.returncode == 0, proc.stderr
    return {"run": tmp / "run", "page": tmp / "report.html", "tmp": tmp}


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _open(driver, page: Path) -> dict[str, str]:
    """Load the page; returns data-key -> text of every keyed element."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(page.as_uri())
    return driver.execute_script(
        "const o = {}; for (const e of document.querySelectorAll('[data-key]')) o[e.dataset.key] = e.textContent;"
        " return o;")


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_classifier_report_matches_its_json_and_fetches_nothing(browser, classifier) -> None:
    run = classifier["run"]
    keys = _open(browser, classifier["page"])
    assert console_errors(browser) == []
    urls = requested_urls(browser)
    assert urls and all(u.startswith("file:") for u in urls), urls
    assert outside_loopback(urls) == []
    metrics, quant = _load(run / "metrics.json"), _load(run / "quantization.json")
    validation, history = _load(classifier["validation"]), _load(run / "history.json")
    assert keys["float.accuracy"] == _pct(metrics["accuracy"])
    assert keys["int8_tflm.accuracy"] == _pct(quant["int8_tflm"]["accuracy"])
    assert keys["int8_litert.accuracy"] == _pct(quant["int8_litert"]["accuracy"])
    assert keys["int8_tflm.flash"] == f"{quant['tflite_bytes']:,}"
    assert keys["device0.accuracy"] == _pct(validation["accuracy"])
    assert keys["device0.mismatches"] == "0" == str(validation["mismatches"])
    assert keys["device0.flash"] == f"{validation['flash_bytes']:,}"
    assert keys["device0.ram"] == f"{validation['ram_bytes']:,}"
    assert keys["device0.arena"] == f"{validation['arena_bytes']:,}"
    assert keys["latency"] == f"{validation['instructions_per_inference']:,.0f}"
    assert keys["history.kept_epoch"] == str(history["kept_epoch"])
    for name in HOSTILE:  # hostile names are shown as text, keys and all
        for source, key in ((metrics, "float"), (quant["int8_tflm"], "int8")):
            assert keys[f"{key}.precision.{name}"] == _pct(source["per_class"][name]["precision"])
            assert keys[f"{key}.recall.{name}"] == _pct(source["per_class"][name]["recall"])
    # the confusion matrices, cell by cell, float / int8 / device side by side
    cells = browser.execute_script(
        "const o = {}; for (const c of document.querySelectorAll('[data-matrix]'))"
        " o[c.dataset.matrix] = [...c.querySelectorAll('text.cm-cell')].map(t => Number(t.textContent));"
        " return o;")
    assert cells["float"] == sum(metrics["confusion_matrix"], [])
    assert cells["int8"] == sum(quant["int8_tflm"]["confusion_matrix"], [])
    assert cells["device0"] == sum(validation["confusion_matrix"], [])
    assert sum(cells["device0"]) == validation["inputs"]
    # dataset counts and the model's operators
    from tinyml.data.dataset import load
    from tinyml.model.inspect import describe

    ds = load(classifier["tmp"] / "data.npz")
    assert keys["dataset.test"] == str(int((ds.split == 2).sum()))
    assert keys[f"dataset.train.{HOSTILE[1]}"] == str(int(((ds.split == 0) & (ds.y == 1)).sum()))
    facts = describe((run / "model_int8.tflite").read_bytes(), arena=False, codegen=False)
    assert keys["ops.macs"] == f"{facts['macs']:,}" and keys["ops.params"] == f"{facts['parameters']:,}"
    # escaping: the hostile names are text, never markup; no image was created, no script ran
    assert browser.title.startswith("tinyml report") and browser.find_elements("css selector", "img") == []
    body = browser.find_element("tag name", "body").text
    assert HOSTILE[1] in body and HOSTILE[2] in body
    assert browser.find_elements("css selector", "script") == []
    browser.execute_script("document.getElementById('confusion').scrollIntoView()")
    save_screenshot(browser, "report.png", classifier["tmp"])


def test_report_memory_plan_is_the_code_generator_s(browser, classifier) -> None:
    from tinyml.codegen import generate

    keys = _open(browser, classifier["page"])
    gen = generate((classifier["run"] / "model_int8.tflite").read_bytes(), prefix="model")
    assert keys["plan.arena"] == f"{gen.arena_bytes:,}"
    assert keys["plan.weights"] == f"{int(gen.report['weight_bytes']):,}"


def test_anomaly_report_shows_histograms_threshold_and_auc(browser, anomaly) -> None:
    run = anomaly["run"]
    keys = _open(browser, anomaly["page"])
    assert console_errors(browser) == []
    assert outside_loopback(requested_urls(browser)) == []
    metrics, quant, model = _load(run / "metrics.json"), _load(run / "quantization.json"), _load(run / "model.json")
    assert keys["float.auc"] == f"{metrics['auc']:.4f}"
    assert keys["int8.auc"] == f"{quant['int8_tflm']['auc']:.4f}"
    assert keys["model.threshold"] == f"{model['threshold']:.6f}"
    hist = metrics["score_histogram"]
    assert sum(sum(c) for c in hist["counts"].values()) == metrics["n"]
    section = browser.find_element("id", "anomaly")
    assert section.text.count("threshold") >= 2
    polylines = section.find_elements("css selector", "svg polyline")
    assert len(polylines) == 2 * len(hist["counts"])  # float and int8, one outline per class
    assert "No board validated yet" in browser.find_element("id", "compare").text


def test_report_refuses_a_validation_of_another_model_and_bad_paths(classifier, anomaly, tmp_path) -> None:
    proc = run_cli("report", anomaly["run"], "--validation", classifier["validation"], "--out", tmp_path / "r.html")
    assert_clean_error(proc, "is for model")
    assert not (tmp_path / "r.html").exists()
    assert_clean_error(run_cli("report", tmp_path, "--out", tmp_path / "r.html"), "neither a training run")
    assert_clean_error(run_cli("report", anomaly["run"], "--out", tmp_path), "is a folder")
    assert_clean_error(run_cli("report", anomaly["run"], "--validation", tmp_path / "none.json", "--out",
                               tmp_path / "r.html"), "validation report", "not found")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert_clean_error(run_cli("report", anomaly["run"], "--validation", bad, "--out", tmp_path / "r.html"),
                       "JSON object")
