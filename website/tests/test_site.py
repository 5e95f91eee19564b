"""The built site, read as files: every page there, no solution in it, links that resolve.

Run by `make site-check` after `make site`. The browser's view of the same pages is
test_browser.py.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from course_tools.config import lessons, load_config, repo_root
from course_tools.website import ANSWER_NOTE, NOT_ATTEMPTED, WRITTEN_ANSWER_PROMPT, content_pages, parse

ROOT = repo_root()
LESSONS = lessons(ROOT)
MARKED = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def _normal(text: str) -> str:
    return " ".join(text.split())


def _lesson_page(html: Path, lesson: str) -> Path:
    return html / "notebooks" / lesson / f"{lesson}.html"


def test_every_page_is_built(html):
    expected = [html / name for name in ("index.html", "running.html", "instructors.html",
                                         "data_card.html", "search.html")]
    expected += [_lesson_page(html, lesson) for lesson in LESSONS]
    missing = [str(p.relative_to(html)) for p in expected if not p.is_file()]
    assert not missing, f"pages missing from the site: {missing}"
    home = parse(html / "index.html")
    for lesson in LESSONS:
        assert f"notebooks/{lesson}/{lesson}.html" in home.links, f"the home page does not link {lesson}"


# --------------------------------------------------------------------------------------
# Solutions stay private
# --------------------------------------------------------------------------------------


@cache
def _student_text() -> str:
    """Every cell of every student notebook: what may appear on the site."""
    parts = []
    for lesson in LESSONS:
        nb = nbformat.read(ROOT / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
        parts += [cell.source for cell in nb.cells]
    return _normal("\n".join(parts))


def _secrets(lesson: str, public: str) -> list[str]:
    """Lines only the solution notebook has: solution bodies, hidden tests, model written
    answers (lines of 16 characters or more that no student notebook contains)."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown" and grading.get("solution"):
            lines += cell.source.splitlines()  # a model answer
        else:
            lines += [line for _, block in MARKED.findall(cell.source) for line in block.splitlines()]
    return sorted({_normal(line) for line in lines if len(line.strip()) >= 16} - {""}
                  - {line for line in map(_normal, lines) if line in public})


@cache
def _published_text(html: Path) -> dict[str, str]:
    """Every text the site serves: what each page shows, and the raw text of every other file
    (the notebooks offered for download, the search index)."""
    texts = {}
    for path in html.rglob("*"):
        if not path.is_file() or "_static" in path.parts or path.suffix in (".png", ".svg", ".inv"):
            continue
        rel = str(path.relative_to(html))
        if path.suffix == ".html":
            texts[rel] = parse(path).text
        elif path.name.endswith(".ipynb"):
            nb = json.loads(path.read_text())
            texts[rel] = _normal(json.dumps(nb["cells"], ensure_ascii=False).replace("\\n", "\n"))
        else:
            texts[rel] = _normal(path.read_text(errors="replace"))
    return texts


@pytest.mark.parametrize("lesson", LESSONS)
def test_no_solution_and_no_hidden_test_reaches_the_site(html, lesson):
    public = _student_text()
    secrets = _secrets(lesson, public)
    assert secrets, f"{lesson}: found no solution lines to look for; is solutions/ marked up?"
    published = _published_text(html)
    page = published[f"notebooks/{lesson}/{lesson}.html"]
    assert "raise NotImplementedError()" in page, "the page should show the exercises as prompts"
    leaks = [(line, where) for line in secrets for where, text in published.items() if line in text]
    assert not leaks, f"{lesson}: solution lines on the site: {leaks[:5]}"


def test_the_leak_check_finds_a_leak(html, tmp_path):
    """The check above, shown to catch what it looks for: a page with a solution's line."""
    lesson = LESSONS[0]
    secret = max(_secrets(lesson, _student_text()), key=len)  # a whole line of code or prose
    leaky = tmp_path / "page.html"
    leaky.write_text(f"<html><body><pre><span>{secret[:10]}</span>{secret[10:]}</pre></body></html>")
    assert secret in _published_text(tmp_path)["page.html"]


# --------------------------------------------------------------------------------------
# Exercises as prompts, without the noise of unanswered checks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_unanswered_checks_stay_out_of_the_way(html, lesson):
    page = _lesson_page(html, lesson).read_text()
    text = parse(_lesson_page(html, lesson)).text
    assert NOT_ATTEMPTED not in text, f"{lesson}: the page still shows '{NOT_ATTEMPTED}' lines"
    assert WRITTEN_ANSWER_PROMPT not in text
    student = nbformat.read(ROOT / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    checks = [c for c in student.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]
    folded = page.count('class="cell tag_hide-input')
    assert folded >= len(checks), f"{lesson}: {len(checks)} check cells, only {folded} folded away"
    answers = [c for c in student.cells if c.cell_type == "markdown"
               and c.metadata.get("nbgrader", {}).get("solution")]
    if answers:
        assert text.count(ANSWER_NOTE.splitlines()[1]) == len(answers)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_page_has_its_colab_and_kaggle_badges(html, lesson):
    config = load_config(ROOT)
    path = f"{config.github_path}/blob/{config.revision}/notebooks/{lesson}/{lesson}.ipynb"
    links = parse(_lesson_page(html, lesson)).links
    assert f"https://colab.research.google.com/github/{path}" in links
    assert f"https://kaggle.com/kernels/welcome?src=https://github.com/{path}" in links


# --------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------


def test_no_internal_link_is_broken(html):
    pages = content_pages(html) + [html / "search.html", html / "genindex.html"]
    broken = []
    for page in pages:
        for href in parse(page).links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue  # another site: not ours to check offline
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(html)}: {href} (no such file)")
            elif (parts.fragment and target.suffix == ".html"
                  and unquote(parts.fragment) not in parse(target).ids):
                broken.append(f"{page.relative_to(html)}: {href} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:20])
