"""The setup cell's Colab path, simulated under Colab's conditions: a fresh kernel in an empty
folder where the course is not installed, a stand-in `google.colab` module, a preinstalled
torch that the install must leave alone, another top-level package named `utils` first on
sys.path (Colab and Kaggle images carry unrelated ones), and Colab's Python 3.12 where this
machine has one. The repository address points at this checkout's HEAD (installed from git)."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from course_tools.config import CourseConfig
from course_tools.stamp import setup_source

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DISTRIBUTION = "attention-from-scratch"

# Another package named `utils`, imported before the setup cell runs. Its `plots` submodule
# has the name of one of the course's, so a leftover sys.modules entry would be picked up by
# `from utils import plots` after the install.
SHADOW_INIT = '"""An unrelated package called utils."""\nfrom utils import plots\nSHADOW = True\n'
SHADOW_PLOTS = '"""The unrelated package\'s plots."""\nSHADOW = True\n'


def _head(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("the checkout has no commit yet to install from")
    return result.stdout.strip()


def _config(root: Path) -> CourseConfig:
    return CourseConfig(repository=f"file://{root}", revision=_head(root))


def _shadow_utils(folder: Path) -> Path:
    """A site folder holding another top-level `utils` package; returns the folder."""
    (folder / "utils").mkdir(parents=True)
    (folder / "utils" / "__init__.py").write_text(SHADOW_INIT)
    (folder / "utils" / "plots.py").write_text(SHADOW_PLOTS)
    return folder


def _colab_like_python(tmp: Path) -> Path:
    """A fresh venv that sees torch & co. but not the editable `utils` of this environment."""
    venv = tmp / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # A path line adds our site-packages to sys.path without running its .pth files, so the
    # editable install of `utils` stays invisible, as on a fresh Colab machine.
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


def _torch_files() -> dict[str, float]:
    """The preinstalled torch's package folder and metadata, with their modification times."""
    package = Path(torch.__file__).parent
    meta = next(package.parent.glob("torch-*.dist-info"))
    paths = [package, package / "__init__.py", package / "version.py", meta, meta / "RECORD"]
    return {str(p): p.stat().st_mtime_ns for p in paths}


def _pip_log_keeps(log: str, package: str) -> None:
    """pip's log shows it found `package` installed and neither fetched nor installed it."""
    kept = re.search(rf"Requirement already satisfied: {package}\b", log)
    assert kept, f"pip never weighed {package}:\n{log[-3000:]}"
    fetched = re.findall(rf"^.*(?:Collecting {package}\b|Downloading \S*\b{package}-\d"
                         rf"|Installing collected packages:.*\b{package}\b(?!-)).*$", log, re.M)
    assert not fetched, f"pip fetched or installed {package}: {fetched}"


def _pip_log_builds_without_deprecations(log: str) -> None:
    """The course built without a deprecation warning: setuptools dates its deprecations (the
    table form of `project.license`: "By 2027-Feb-18 ... your builds will no longer be
    supported"), so each one is an install that fails for every student from that day on."""
    built = re.search(rf"Building wheel for {DISTRIBUTION}", log)
    assert built, "pip did not build the course (did it take a cached wheel?)"
    deprecated = re.findall(r"^.*Warning: .*\bdeprecated\b.*$", log, re.M)
    assert not deprecated, f"building the course warns of deprecations: {deprecated}"


@pytest.mark.slow
def test_setup_cell_installs_the_course_on_colab(tmp_path: Path, root: Path, monkeypatch) -> None:
    """Preinstalled torch kept as is; another `utils` first on sys.path; the course's `utils` wins."""
    python = _colab_like_python(tmp_path)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([python, "-c", "import torch, utils"], capture_output=True, text=True,
                           cwd=tmp_path, env=clean)
    assert "No module named 'utils'" in probe.stderr, "the simulated Colab must start without utils"

    stand_in = tmp_path / "stand-in"
    (stand_in / "google" / "colab").mkdir(parents=True)
    (stand_in / "google" / "__init__.py").write_text("")
    (stand_in / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab."""\n')
    shadow = _shadow_utils(tmp_path / "image-packages")
    pip_log = tmp_path / "pip.log"
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab stand-in", "language": "python",
        # the other `utils` comes before every site-packages folder, as PYTHONPATH entries do
        # no wheel cache, as on a fresh Colab machine: pip builds the course
        "env": {"PYTHONPATH": os.pathsep.join([str(shadow), str(stand_in)]), "PIP_LOG": str(pip_log),
                "PIP_NO_CACHE_DIR": "1"},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    torch_before = _torch_files()

    report = (
        "import json, sys, torch, google.colab\n"
        "from utils import plots\n"
        "print('REPORT', json.dumps({'utils': utils.__file__, 'checks': checks.__file__,\n"
        "    'plots': plots.__file__, 'other utils loaded': [m for m, mod in sys.modules.items()\n"
        "    if m.split('.')[0] == 'utils' and getattr(mod, 'SHADOW', False)],\n"
        "    'torch': torch.__version__, 'torch file': torch.__file__}))\n"
    )
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import utils\nassert utils.SHADOW  # the image's own `utils` comes first"),
        nbformat.v4.new_code_cell(setup_source(_config(root))),
        nbformat.v4.new_code_cell(report),
        nbformat.v4.new_code_cell(setup_source(_config(root))),  # run again: nothing to install
        nbformat.v4.new_code_cell("import utils\nprint('AGAIN', utils.__file__, hasattr(utils, 'SHADOW'))"),
    ])
    empty = tmp_path / "content"
    empty.mkdir()
    client = NotebookClient(nb, kernel_name="colab", timeout=300,
                            resources={"metadata": {"path": str(empty)}})
    client.execute()

    printed = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    report = json.loads(re.search(r"^REPORT (.*)$", printed, re.M).group(1))
    installed = str(tmp_path / "colab-venv")
    for name in ("utils", "checks", "plots"):
        assert report[name].startswith(installed), f"the setup cell left {name} from elsewhere: {report}"
    assert report["other utils loaded"] == [], "the other `utils` must be gone from sys.modules"
    assert f"AGAIN {report['utils']} False" in printed, "a later `import utils` gets the course's"
    assert "profile:" in printed  # utils.setup() ran
    assert os.listdir(empty) == [], "the setup cell must not leave files in the notebook's folder"

    # The preinstalled torch: same version, same files, untouched, and pip never fetched it.
    assert report["torch"] == torch.__version__ and report["torch file"] == torch.__file__
    assert _torch_files() == torch_before, "the install touched the preinstalled torch"
    assert not list(Path(installed).rglob("torch-*.dist-info")), "pip installed a second torch"
    _pip_log_keeps(pip_log.read_text(), "torch")
    _pip_log_builds_without_deprecations(pip_log.read_text())


# --------------------------------------------------------------------------------------
# Python versions: Colab's 3.12, and the floor pyproject declares
# --------------------------------------------------------------------------------------


def _requires_python(root: Path) -> tuple[int, int]:
    spec = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups()
    return int(major), int(minor)


def _interpreter(version: str) -> str | None:
    """A working `pythonX.Y`: on PATH, or one that pyenv built (this machine's image has several)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    built = sorted(glob.glob(os.path.join(pyenv, "versions", f"{version}.*", "bin", f"python{version}")))
    for python in [shutil.which(f"python{version}"), *reversed(built)]:
        if python is None:
            continue
        probe = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)  # a pyenv shim may not run it
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return python
    return None


def _interpreter_or_skip(version: str) -> str:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine (not on PATH, not under pyenv); Debian 12's "
                    "apt has 3.11 only, and PyPI has no interpreters")
    return python


def test_requires_python_admits_colab_and_the_floor_is_what_the_code_needs(root: Path) -> None:
    assert _requires_python(root) <= (3, 12), "Colab runs Python 3.12"
    assert _requires_python(root) == (3, 10), "the versions tested below assume the floor is 3.10"


@pytest.mark.parametrize("version", ["3.10", "3.12", "3.13"])
def test_the_course_package_compiles_under_python(version: str, root: Path) -> None:
    """Syntax that a newer or older Python rejects (f-strings with nested quotes before 3.12,
    removed constructs after) fails here, without a torch for that interpreter."""
    python = _interpreter_or_skip(version)
    files = sorted(str(p) for p in (root / "utils").rglob("*.py"))
    check = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
    done = subprocess.run([python, "-c", check, *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _stand_in_distribution(site: Path, name: str, version: str) -> Path:
    """Metadata of an installed distribution (no code): what pip sees of Colab's preinstalled
    packages, for an interpreter that has no torch wheel here."""
    meta = site / f"{name}-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (meta / "INSTALLER").write_text("pip\n")
    (meta / "RECORD").write_text("")
    return meta


def _copy_our_pip(site: Path) -> None:
    """This environment's pip (pure Python), as a recent one like Colab's: the pip that
    `ensurepip` of an older interpreter brings (23.x) rejects `name @ git+file:///...`."""
    import pip

    source = Path(pip.__file__).parent
    shutil.copytree(source, site / "pip")
    for meta in source.parent.glob("pip-*.dist-info"):
        shutil.copytree(meta, site / meta.name)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.12", "3.10", "3.13"])
def test_setup_cell_install_and_import_under_python(version: str, tmp_path: Path, root: Path) -> None:
    """The setup cell's install branch, run by Python 3.12 (Colab), 3.10 (the floor) and 3.13,
    with another `utils` first on sys.path and Colab's torch & co. preinstalled. Only their
    metadata is there (torch for these interpreters is a download of several GB from PyPI, not
    on this machine's disk: README's "Supported Python" says what was run with it), so the cell
    stops before `from utils import checks`, which would import torch."""
    python = _interpreter_or_skip(version)
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    venv_python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([venv_python, "-c", purelib], capture_output=True, text=True,
                               check=True).stdout.strip())
    _copy_our_pip(site)
    preinstalled = {"torch": "2.9.0+cu126", "numpy": "2.0.2", "pandas": "2.2.2", "matplotlib": "3.10.0",
                    "tqdm": "4.67.1"}  # versions as on a Colab image
    metas = {name: _stand_in_distribution(site, name, v) for name, v in preinstalled.items()}
    stamps = {name: (m / "METADATA").stat().st_mtime_ns for name, m in metas.items()}

    cell = setup_source(_config(root))
    install_branch = cell[: cell.index("import utils\nfrom utils import checks")]
    report = ("import json, importlib.metadata as md\n"
              "print(json.dumps({'utils': utils.__file__, 'version': utils.__version__,\n"
              "    'shadow': getattr(utils, 'SHADOW', False), 'torch': md.version('torch')}))\n")
    shadow = _shadow_utils(tmp_path / "image-packages")
    pip_log = tmp_path / "pip.log"
    env = {**os.environ, "PYTHONPATH": str(shadow), "PIP_LOG": str(pip_log), "PIP_NO_CACHE_DIR": "1"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([venv_python, "-c", "import utils\n" + install_branch + "import utils\n" + report],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["utils"].startswith(str(site)) and not result["shadow"], result
    assert result["torch"] == preinstalled["torch"]
    assert {name: (m / "METADATA").stat().st_mtime_ns for name, m in metas.items()} == stamps
    log = pip_log.read_text()
    for name in preinstalled:
        _pip_log_keeps(log, name)
    _pip_log_builds_without_deprecations(log)
    # The installed package compiles under this interpreter too (what Colab will import).
    compiled = subprocess.run([venv_python, "-m", "compileall", "-q", str(site / "utils")],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout[-2000:]
