"""Rendering with hostile input (issue 16, part 4): labels, ids and names reach C escaped and the
build still succeeds; board files cannot pick templates outside the templates folder nor run code
through Jinja; re-rendering never writes through symlinks; [project] out stays inside the project."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import host_compile
from tinyml.errors import InputError
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import jinja_env, render_project
from tinyml.project.config import read_project
from tinyml.rundir import Labels, int8_model

HOSTILE = ["imbalance */ #error x", 'quote " here', "back\\slash\\", "new\nline #error y", "tri??/", "/* nest",
           "é ünïcode\x00\x1b[2J"]


def _classifier(shared: Path):
    return dataclasses.replace(int8_model(shared / "models" / "vib_cnn_int8.tflite"),
                               labels=Labels(task="classifier", classes=tuple(HOSTILE)), origin="run */ #error z\n\\")


@pytest.mark.cross_compiler
def test_hostile_labels_and_ids_are_escaped_and_the_build_succeeds(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    render_project(load_board("qemu-mps2-an386"), _classifier(shared), out, device_id='dev"\\\n#error q')
    build = subprocess.run(["make", "-s"], cwd=out, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert build.returncode == 0, build.stderr
    config = (out / "src" / "tinyml_config.h").read_text()
    assert '#define TINYML_DEVICE_ID "dev\\"\\\\\\012#error q"' in config
    assert "imbalance *_/ #error x" in config and "#error" not in config.replace("/* Task", "").split("*/")[-1]
    # the id reaches the device byte for byte: a C program prints the macro back
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stdio.h>\n#include "tinyml_config.h"\n'
                     'int main(void){fwrite(TINYML_DEVICE_ID,1,sizeof TINYML_DEVICE_ID-1,stdout);return 0;}\n')
    host_compile([probe], tmp_path / "probe", includes=[out / "src", out / "model"], flags=("-std=c11",))
    assert subprocess.run([str(tmp_path / "probe")], capture_output=True).stdout == b'dev"\\\n#error q'


def test_board_template_cannot_leave_the_templates_folder(shared: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "Makefile.j2").write_text("{{ cycler.__init__.__globals__.os.popen('touch %s') }}" % (tmp_path / "pwned"))
    board = load_board("qemu-mps2-an386")
    for template in ("../" * 12 + str(evil).lstrip("/"), str(evil), "common/../../x"):
        with pytest.raises(InputError, match="not a folder name"):
            render_project(dataclasses.replace(board, template=template),
                           int8_model(shared / "models" / "feat_ae_int8.tflite"), tmp_path / "fw")
    assert not (tmp_path / "pwned").exists()


def test_templates_render_in_a_sandbox(tmp_path: Path) -> None:
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        jinja_env().from_string("{{ cycler.__init__.__globals__.os.popen('touch %s') }}"
                                % (tmp_path / "pwned")).render()
    assert not (tmp_path / "pwned").exists()


def test_rerender_does_not_follow_symlinks_out_of_the_project(shared: Path, tmp_path: Path) -> None:
    model, board, out = int8_model(shared / "models" / "feat_ae_int8.tflite"), load_board("qemu-mps2-an386"), \
        tmp_path / "fw"
    render_project(board, model, out)
    victim, victim_dir = tmp_path / "victim.txt", tmp_path / "victim_dir"
    victim.write_text("keep me")
    victim_dir.mkdir()
    (victim_dir / "keep.c").write_text("keep")
    (out / "Makefile").unlink()
    (out / "Makefile").symlink_to(victim)
    (out / "tinyml.json").rename(tmp_path / "manifest.json")
    (out / "tinyml.json").symlink_to(tmp_path / "manifest.json")
    import shutil
    shutil.rmtree(out / "src")
    (out / "src").symlink_to(victim_dir)
    render_project(board, model, out)
    assert victim.read_text() == "keep me" and sorted(p.name for p in victim_dir.iterdir()) == ["keep.c"]
    assert not (out / "Makefile").is_symlink() and "firmware" in (out / "Makefile").read_text()
    assert not (out / "src").is_symlink() and (out / "src" / "tinyml_config.h").is_file()


PROJECT = """[project]
name = "p"
out = {out!r}

[data]
synth = "vibration"

[train]
model = "cnn1d"
"""


@pytest.mark.parametrize("out", ["../elsewhere", "/tmp/elsewhere", "~/elsewhere", "run/../../x"])
def test_project_out_must_stay_inside_the_project(out: str, tmp_path: Path) -> None:
    (tmp_path / "tinyml.toml").write_text(PROJECT.format(out=out))
    with pytest.raises(InputError, match="inside the project"):
        read_project(tmp_path)


def test_project_out_symlinked_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "run").symlink_to(tmp_path)
    (tmp_path / "proj" / "tinyml.toml").write_text(PROJECT.format(out="run/x"))
    with pytest.raises(InputError, match="outside the project"):
        read_project(tmp_path / "proj")
    (tmp_path / "proj" / "tinyml.toml").write_text(PROJECT.format(out="run2"))
    assert read_project(tmp_path / "proj").out == (tmp_path / "proj" / "run2").resolve()
