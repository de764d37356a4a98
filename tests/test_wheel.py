"""tinyml installed the way Python users install tools: an sdist, a wheel built from it, and that
wheel in a fresh venv without the [train] extra, away from the checkout. The boards and
templates must come from inside the installed package; a firmware renders, builds and
validates on an emulated board from there.

No network: the venv gets no system site packages, the wheel is installed with --no-index, and
the declared runtime dependencies (with their own requirements, nothing else: no TensorFlow)
are linked in from this interpreter's site-packages through a .pth file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.qemu, pytest.mark.cross_compiler]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "tinyml", "boards", "firmware_templates",
           "bearings")


def _run(argv: list, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime_closure() -> list[metadata.Distribution]:
    """The distributions pyproject's [project] dependencies pull in (no extras), as installed here."""
    todo = [_name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        dist = seen[name] = metadata.distribution(name)
        todo += [_name(r) for r in dist.requires or [] if "extra ==" not in r and "extra==" not in r]
    return list(seen.values())


def link_dependencies(dest: Path) -> None:
    """Symlink the top-level files and folders of every runtime distribution into ``dest``."""
    dest.mkdir()
    for dist in runtime_closure():
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top != "__pycache__" and (base / top).exists() and not (dest / top).exists():
                (dest / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    # the sdist carries boards/ and firmware_templates/ ...
    code = "from setuptools import build_meta as b; print(b.build_sdist('../dist'))"
    sdist = work / "dist" / _run([sys.executable, "-c", code], src).stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(work / "unpacked", filter="data")
    assert any(n.endswith("/boards/qemu-mps2-an386.toml") for n in names)
    assert any(n.endswith("/firmware_templates/common/tinyml_proto.c") for n in names)
    assert any(n.endswith("/bearings/6205-2RS.toml") for n in names)
    # ... and a wheel built from the sdist carries them inside the package
    (unpacked,) = (work / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist"],
         unpacked)
    (wheel,) = (work / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        files = z.namelist()
    assert "tinyml/_data/boards/qemu-mps2-an386.toml" in files
    package_data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tinyml").rglob("*")
                    if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert package_data <= set(files), sorted(package_data - set(files))  # kernels, dashboard, ...
    assert "tinyml/_data/firmware_templates/baremetal-common/Makefile.j2" in files
    assert "tinyml/_data/bearings/6205-2RS.toml" in files
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv], work)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], work)
    link_dependencies(work / "deps")
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "tinyml_test_deps.pth").write_text(f"{work / 'deps'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINYML_HOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *[p for p in env["PATH"].split(os.pathsep)
                                                        if not p.startswith(str(Path(sys.prefix)))]])
    home = work / "home"
    home.mkdir()
    return {"venv": venv, "env": env, "home": home, "work": work}


def tinyml(installed: dict, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return _run([installed["venv"] / "bin" / "tinyml", *args], installed["home"], {**installed["env"], **(env or {})})


def test_the_installed_package_has_no_training_stack_and_runs_from_the_venv(installed: dict) -> None:
    python = installed["venv"] / "bin" / "python"
    where = _run([python, "-c", "import tinyml; print(tinyml.__file__)"], installed["home"], installed["env"])
    assert where.stdout.startswith(str(installed["venv"]))
    proc = subprocess.run([python, "-c", "import tensorflow"], env=installed["env"], capture_output=True, text=True)
    assert proc.returncode != 0 and "No module named 'tensorflow'" in proc.stderr
    boards = tinyml(installed, "boards").stdout
    assert "qemu-mps2-an386" in boards and "nucleo-f446re" in boards
    code = "from tinyml.data.bearings import load_bearing; print(round(load_bearing('6205').orders()['bpfi'], 3))"
    assert _run([python, "-c", code], installed["home"], installed["env"]).stdout.strip() == "5.415"


def test_tinyml_home_adds_a_users_own_board(installed: dict) -> None:
    own = installed["work"] / "own"
    (own / "boards").mkdir(parents=True)
    text = (ROOT / "boards" / "qemu-mps2-an386.toml").read_text()
    (own / "boards" / "my-m4.toml").write_text(re.sub(r'^name = ".*"', 'name = "my-m4"', text, flags=re.M))
    boards = tinyml(installed, "boards", env={"TINYML_HOME": str(own)}).stdout
    assert "my-m4" in boards and "qemu-mps2-an386" in boards


def test_firmware_renders_builds_and_validates_from_the_wheel(installed: dict, trained_run) -> None:
    fw = installed["work"] / "fw"
    tinyml(installed, "firmware", "new", "--board", "qemu-mps2-an386", "--model", trained_run.run_dir, "--out", fw)
    assert str(ROOT) not in (fw / "tinyml.json").read_text().replace(str(trained_run.run_dir), "")
    tinyml(installed, "build", fw)
    assert (fw / "build" / "firmware.elf").is_file()
    proc = tinyml(installed, "validate", "--board", "qemu-mps2-an386", "--model", trained_run.run_dir,
                  "--data", trained_run.data, "--limit", "4", "--firmware", installed["work"] / "fw2")
    assert "mismatches: 0 of" in proc.stdout
