"""The two cells every notebook shares: the title cell's badges and the setup cell.

Both are generated from the configuration in pyproject.toml, never typed by hand, so that
changing the repository address or revision is one edit plus `make release`.
"""

from __future__ import annotations

import hashlib

import nbformat

from course_tools.config import CourseConfig

SETUP_TAG = "setup"
BADGE_PREFIX = "[![Open In Colab]"

SETUP_TEMPLATE = '''\
# Setup: the same in every notebook (stamped by `make release`; do not edit).
# On Colab or Kaggle it installs the course package first; then it seeds every RNG and
# picks the device and the size profile the demos run at.
try:
    import utils.checks
except ModuleNotFoundError:  # not installed yet, or another package named `utils` comes first
    import importlib.machinery, importlib.metadata, importlib.util, subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "{pip_spec}"], check=True)
    for name in [m for m in sys.modules if m.split(".")[0] == "utils"]:
        del sys.modules[name]  # forget any other `utils` imported above
    importlib.invalidate_caches()
    site = importlib.metadata.distribution("{distribution}").locate_file("")
    spec = importlib.machinery.PathFinder.find_spec("utils", [str(site)])  # where pip put it
    sys.modules["utils"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["utils"])
import utils
from utils import checks
device, profile = utils.setup(seed=0)'''


def setup_source(config: CourseConfig) -> str:
    distribution = config.pip_spec.split(" @ ")[0]  # the name pip installs it under
    return SETUP_TEMPLATE.format(pip_spec=config.pip_spec, distribution=distribution)


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"  # the badges' images
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"


def badges(config: CourseConfig, lesson: str) -> str:
    blob = f"github/{config.github_path}/blob/{config.revision}/notebooks/{lesson}/{lesson}.ipynb"
    colab = f"https://colab.research.google.com/{blob}"
    kaggle = f"https://kaggle.com/kernels/welcome?src=https://github.com/{blob.removeprefix('github/')}"
    return (
        f"{BADGE_PREFIX}({COLAB_BADGE})]({colab}) [![Open In Kaggle]({KAGGLE_BADGE})]({kaggle})"
    )


def _stamp_title(cell: nbformat.NotebookNode, config: CourseConfig, lesson: str, where: str) -> None:
    lines = cell.source.splitlines()
    if not lines or not lines[0].startswith("# "):
        got = repr(lines[0][:60]) if lines else "an empty cell"
        raise ValueError(f"{where}: the first cell must start with the title line '# NN · Title', got {got}")
    body = [line for line in lines[1:] if not line.startswith(BADGE_PREFIX)]
    while body and not body[0].strip():
        body.pop(0)
    cell.source = "\n".join([lines[0], "", badges(config, lesson), "", *body]).rstrip()


def _stamp_setup(nb: nbformat.NotebookNode, config: CourseConfig) -> None:
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first = code_cells[0] if code_cells else len(nb.cells)
    if code_cells and SETUP_TAG in nb.cells[first].metadata.get("tags", []):
        cell = nb.cells[first]
    else:
        cell = nbformat.v4.new_code_cell()
        nb.cells.insert(1 if first == 0 else first, cell)
    cell.source = setup_source(config)
    cell.metadata = {"tags": [SETUP_TAG], "editable": False, "deletable": False}


def _stable_ids(nb: nbformat.NotebookNode, lesson: str) -> None:
    """Give cells without an id a deterministic one, so that re-releasing changes nothing."""
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cell_id = cell.get("id")
        if not cell_id or cell_id in seen:
            cell_id = hashlib.sha1(f"{lesson}:{index}".encode()).hexdigest()[:12]
        cell["id"] = cell_id
        seen.add(cell_id)


def stamp(nb: nbformat.NotebookNode, config: CourseConfig, lesson: str, where: str) -> None:
    """Stamp the title badges and the setup cell; drop outputs; normalise metadata (in place)."""
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise ValueError(f"{where}: the first cell must be the markdown title cell")
    _stamp_title(nb.cells[0], config, lesson, where)
    _stamp_setup(nb, config)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    _stable_ids(nb, lesson)
