"""`make site`: the course as a static website, built from a fresh execution of every lesson.

The pages are the **student** notebooks (never the solutions), each with the outputs of an
execution whose key matches the notebook as it is now (`course_tools.executions`: the test
suite's own run where there is one, else a run made here), and the guides: a home page with
the course map, how to run the course, the instructor's guide and the data card. Before Sphinx
renders them, each notebook is made readable as a page:

- a check cell's code is folded away, and its "not attempted yet" line dropped: on the site
  every exercise is unattempted, and forty identical lines would bury the lesson;
- the setup cell is folded away too (it is the same in every notebook);
- a written answer's "YOUR ANSWER HERE" becomes a short note saying where the answer goes;
- progress bars are dropped: a static page can only show them at 0 % (a widget's first
  state), and their widgets would load scripts from a CDN;
- the Colab and Kaggle badges point at the course's own badge images, so that a page loads
  nothing from another site (the browser test checks every image).

The built site is in _build/site/html (`python -m http.server -d _build/site/html` serves it);
website/README.md describes the pieces and the deploy workflow.

    python -m course_tools.website [--jobs N] [--reuse-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from course_tools import executions
from course_tools.config import CourseConfig, lessons, load_config, repo_root
from course_tools.release import course_map
from course_tools.stamp import COLAB_BADGE, KAGGLE_BADGE

# what utils.checks prints for an unattempted exercise (the lessons' text quotes its first words)
NOT_ATTEMPTED = "not attempted yet. Replace `raise NotImplementedError()`"
WRITTEN_ANSWER_PROMPT = "YOUR ANSWER HERE"
ANSWER_NOTE = ("```{admonition} Your answer\n"
               "A written answer goes here, in the notebook; your instructor grades it.\n"
               "```")
GUIDES = {  # page in the site: file in the repository
    "instructors.md": "INSTRUCTORS.md",
    "data_card.md": "utils/data/DATA_CARD.md",
}


def site_dir(root: Path) -> Path:
    return root / "_build" / "site"


# --------------------------------------------------------------------------------------
# A student notebook, made into a page
# --------------------------------------------------------------------------------------


def _is_check_cell(cell) -> bool:
    grading = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and grading.get("grade", False) and not grading.get("solution", False)


def _is_written_answer(cell) -> bool:
    grading = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "markdown" and grading.get("solution", False)


def _fold(cell) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if "hide-input" not in tags:
        tags.append("hide-input")


WIDGET = "application/vnd.jupyter.widget-view+json"  # how tqdm's progress bars show in Jupyter


def _without_progress_bars(outputs: list) -> list:
    return [output for output in outputs if WIDGET not in output.get("data", {})]


def _drop_not_attempted(outputs: list) -> list:
    """Outputs without the lines that say an exercise is not attempted yet."""
    kept = []
    for output in outputs:
        if output.get("output_type") == "stream":
            text = "".join(output.get("text", ""))
            lines = [line for line in text.splitlines(keepends=True) if NOT_ATTEMPTED not in line]
            if not "".join(lines).strip():
                continue
            output = nbformat.from_dict({**output, "text": "".join(lines)})
        kept.append(output)
    return kept


def _local_badges(source: str, depth: int) -> str:
    """The badge images of the title cell, served with the site instead of fetched."""
    up = "../" * depth
    for remote, local in ((COLAB_BADGE, "colab.svg"), (KAGGLE_BADGE, "kaggle.svg")):
        source = source.replace(remote, f"{up}badges/{local}")
    return source


def as_page(nb: nbformat.NotebookNode, depth: int) -> nbformat.NotebookNode:
    """A copy of an executed student notebook, ready to render (`depth`: its folders below
    the site's root, for the badge paths)."""
    page = nbformat.from_dict(nb)
    page.metadata.pop("widgets", None)
    for cell in page.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code":
            cell.outputs = _without_progress_bars(cell.outputs)
        if _is_check_cell(cell):
            _fold(cell)
            cell.outputs = _drop_not_attempted(cell.get("outputs", []))
        elif cell.cell_type == "code" and "setup" in tags:
            _fold(cell)
        elif _is_written_answer(cell) and cell.source.strip() == WRITTEN_ANSWER_PROMPT:
            cell.source = ANSWER_NOTE
    if page.cells and page.cells[0].cell_type == "markdown":
        page.cells[0].source = _local_badges(page.cells[0].source, depth)
    return page


# --------------------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------------------


def home_page(root: Path, config: CourseConfig) -> str:
    """The README's opening paragraph, the course map with its badges, and the table of contents."""
    readme = (root / "README.md").read_text()
    intro = readme.split("\n\n")[1].strip()  # the paragraph under the title
    table = _local_badges(course_map(root, config), depth=0)
    toctree = "\n".join(f"notebooks/{lesson}/{lesson}" for lesson in lessons(root))
    return f"""# Attention from Scratch

{intro}

Each page below is a lesson's student notebook as a fresh run on a CPU left it: the text, every
demo's figures and tables, and the exercises as you will meet them. Open a lesson in Colab or
Kaggle with its badges to write the exercises; [How to run the course](running.md) covers your
own machine and a GPU.

## The lessons

{table}

```{{toctree}}
:hidden:
:caption: Lessons

{toctree}
```

```{{toctree}}
:hidden:
:caption: Using the course

running
instructors
data_card
```
"""


def assemble(root: Path, executed: dict[str, Path], src: Path) -> list[Path]:
    """Write the site's sources into `src` (emptied first); returns the pages written."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    website = root / "website"
    shutil.copytree(website / "badges", src / "badges")
    pages = [src / "index.md", src / "running.md"]
    pages[0].write_text(home_page(root, load_config(root)))
    shutil.copy(website / "running.md", pages[1])
    for page, original in GUIDES.items():
        (src / page).write_text((root / original).read_text())
        pages.append(src / page)
    for lesson, path in executed.items():
        out = src / "notebooks" / lesson / f"{lesson}.ipynb"
        out.parent.mkdir(parents=True)
        nbformat.write(as_page(nbformat.read(path, as_version=4), depth=2), out)
        pages.append(out)
    return pages


def mathjax_dir(root: Path) -> Path:
    """MathJax from npm (website/package.json), installed on first use with `npm ci`."""
    website = root / "website"
    es5 = website / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-svg-full.js").is_file():
        if shutil.which("npm") is None:
            raise SystemExit("error: the site serves MathJax from npm's package, and npm is not "
                             "installed: install Node.js (npm comes with it), then run make site again")
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=website, check=True)
    return es5


def sphinx(root: Path, src: Path, html: Path) -> None:
    """Render `src` into `html`; any warning (a broken reference, a bad page) fails the build."""
    staged = src.parent / "mathjax-static"  # Sphinx copies this folder's contents into _static/
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(mathjax_dir(root), staged / "mathjax")
    env = {**os.environ, "COURSE_SITE_MATHJAX": str(staged)}
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
               "-c", str(root / "website"), "-d", str(src.parent / "doctrees"), str(src), str(html)]
    subprocess.run(command, env=env, check=True)


def build(root: Path | None = None, workers: int = 2, log=print, reuse_only: bool = False) -> Path:
    root = root or repo_root()
    start = time.perf_counter()
    done = executions.ensure(workers=workers, root=root, log=log, reuse_only=reuse_only)
    reused = sum(e.seconds == 0 for e in done)
    log(f"executions: {reused} reused, {len(done) - reused} run now ({time.perf_counter() - start:.0f} s)")
    out = site_dir(root)
    pages = assemble(root, {e.lesson: e.path for e in done}, out / "src")
    sphinx(root, out / "src", out / "html")
    log(f"{len(pages)} pages in {out / 'html'} ({time.perf_counter() - start:.0f} s in all)")
    return out / "html"


# --------------------------------------------------------------------------------------
# Reading the built site (its checks: website/tests)
# --------------------------------------------------------------------------------------


class PageText(HTMLParser):
    """What a reader of a page reads (script and style left out), and every id it defines."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


@cache
def parse(page: Path) -> PageText:
    parser = PageText()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def content_pages(html: Path) -> list[Path]:
    """Every page a reader reaches from the table of contents (not Sphinx's search and index)."""
    return sorted(p for p in html.rglob("*.html")
                  if p.name not in ("search.html", "genindex.html") and "_static" not in p.parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.website", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default: 2)")
    parser.add_argument("--reuse-only", action="store_true",
                        help="execute nothing: fail unless the test suite's executions match every "
                        "notebook (CI, right after make test)")
    args = parser.parse_args(argv)
    try:
        build(workers=args.jobs, reuse_only=args.reuse_only)
    except executions.ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: {err.cmd[2]} failed (exit {err.returncode}); its messages are above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
