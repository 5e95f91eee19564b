"""The setup cell's Colab path, simulated: a fresh kernel in an empty folder, where `utils`
is not importable, a stand-in `google.colab` module, and the repository address pointed at
this checkout. After the setup cell, `utils` is importable (installed from git)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from utils.course.config import CourseConfig
from utils.course.stamp import setup_source

pytestmark = pytest.mark.slow


def _head(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("the checkout has no commit yet to install from")
    return result.stdout.strip()


def _colab_like_python(tmp: Path) -> Path:
    """A fresh venv that sees torch & co. but not the editable `utils` of this environment."""
    venv = tmp / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # A path line adds our site-packages to sys.path without running its .pth files, so the
    # editable install of `utils` stays invisible, as on a fresh Colab machine.
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


def test_setup_cell_installs_the_course_on_colab(tmp_path: Path, root: Path, monkeypatch) -> None:
    python = _colab_like_python(tmp_path)
    probe = subprocess.run([python, "-c", "import torch, utils"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert "No module named 'utils'" in probe.stderr, "the simulated Colab must start without utils"

    stand_in = tmp_path / "stand-in"
    (stand_in / "google" / "colab").mkdir(parents=True)
    (stand_in / "google" / "__init__.py").write_text("")
    (stand_in / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab."""\n')
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab stand-in", "language": "python",
        "env": {"PYTHONPATH": str(stand_in)},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)

    config = CourseConfig(repository=f"file://{root}", revision=_head(root))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(setup_source(config)),
        nbformat.v4.new_code_cell("import google.colab, sys\nprint('UTILS', utils.__file__)\n"
                                  "print('CHECKS', checks.check_close.__name__)"),
    ])
    empty = tmp_path / "content"
    empty.mkdir()
    client = NotebookClient(nb, kernel_name="colab", timeout=300,
                            resources={"metadata": {"path": str(empty)}})
    client.execute()

    printed = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    assert f"UTILS {tmp_path / 'colab-venv'}" in printed, printed
    assert "CHECKS check_close" in printed
    assert "profile:" in printed  # utils.setup() ran
    assert os.listdir(empty) == [], "the setup cell must not leave files in the notebook's folder"
