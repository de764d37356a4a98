"""Build hook: ship the top-level boards/, firmware_templates/ and bearings/ inside the package.

The folders stay at the top of the repository, where users read and extend them; the wheel
(and so every installed copy) carries them as tinyml/_data/boards,
tinyml/_data/firmware_templates and tinyml/_data/bearings, which ``tinyml.paths`` falls back to away from a checkout.
The sdist carries the top-level folders (MANIFEST.in), so a wheel built from it has them too.
Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("boards", "firmware_templates", "bearings")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        for name in DATA_DIRS:
            dest = Path(self.build_lib) / "tinyml" / "_data" / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(here / name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
