"""Every page of the built site, opened in headless Chromium as a reader opens it.

Each page must load with no console error and no failed request, show every image (figures
and badges), and have its math typeset by MathJax; search must find a lesson by a word of its
text. A full-page screenshot of each page goes to _build/site/screenshots/ for a person to look
at. The browser is the system's Chromium (Debian: `apt-get install chromium`; elsewhere set
COURSE_CHROMIUM to its path), driven by Playwright, whose own browser download is never used.
"""

from __future__ import annotations

import os
import shutil

import pytest

from course_tools.config import repo_root
from course_tools.website import content_pages, site_dir

HTML = site_dir(repo_root()) / "html"

PAGES = [str(p.relative_to(HTML)) for p in content_pages(HTML)] if HTML.is_dir() else ["index.html"]
SCREENSHOTS = HTML.parent / "screenshots"
# words of a lesson's text, and the lesson search must list for each
SEARCHES = {"perplexity": "13_language_models", "FlashAttention": "10_efficient_attention",
            "bottleneck": "03_seq2seq_rnn"}


def _chromium() -> str:
    path = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: install Debian's package (apt-get install chromium) or set "
                    "COURSE_CHROMIUM to a Chromium or Chrome binary")
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield browser
        browser.close()


class Watched:
    """A page with everything that went wrong while it loaded."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda err: self.problems.append(f"script error: {err}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("response",
                     lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        # MathJax typesets after the load event; its promise settles when it is done
        self.page.evaluate("() => window.MathJax?.startup?.promise ?? null")

    def close(self) -> None:
        self.page.close()


# every image loaded, lazy ones too: (how many images, the sources of those that are empty)
IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return [images.length, images.filter(img => !(img.complete && img.naturalWidth > 0))
                              .map(img => img.currentSrc.slice(0, 120))];
}"""
# (formulas on the page, formulas MathJax typeset, formulas it could not parse)
MATH_JS = """() => [document.querySelectorAll('.math').length,
                    document.querySelectorAll('.math mjx-container').length,
                    document.querySelectorAll('mjx-merror').length]"""


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_clean_with_every_image_and_formula(browser, server, name):
    watched = Watched(browser)
    try:
        watched.open(server + name)
        count, empty = watched.page.evaluate(IMAGES_JS)
        formulas, typeset, errors = watched.page.evaluate(MATH_JS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        screenshot = SCREENSHOTS / (name.replace("/", "__").removesuffix(".html") + ".png")
        watched.page.screenshot(path=screenshot, full_page=True)
    finally:
        watched.close()
    assert screenshot.stat().st_size > 10_000, f"{name}: the screenshot is (nearly) empty"
    assert not watched.problems, f"{name}:\n" + "\n".join(watched.problems)
    assert not empty, f"{name}: {len(empty)} of {count} images did not load: {empty[:5]}"
    assert typeset == formulas and not errors, \
        f"{name}: {typeset} of {formulas} formulas typeset, {errors} MathJax errors"
    if name.startswith("notebooks/"):
        assert count >= 2, f"{name}: a lesson page shows at least its two badges, found {count} images"


def test_lesson_pages_show_figures_and_math(browser, server):
    """Not vacuous: the course's pages do have figures and formulas for the test above to check."""
    watched = Watched(browser)
    try:
        watched.open(server + "notebooks/05_self_attention/05_self_attention.html")
        count, _ = watched.page.evaluate(IMAGES_JS)
        formulas, typeset, _ = watched.page.evaluate(MATH_JS)
    finally:
        watched.close()
    assert count > 2, "lesson 05 should show its figures besides the badges"
    assert formulas > 10 and typeset == formulas


@pytest.mark.parametrize("word, lesson", SEARCHES.items())
def test_search_finds_a_lesson_by_a_word_of_its_text(browser, server, word, lesson):
    watched = Watched(browser)
    try:
        watched.open(f"{server}search.html?q={word}")
        watched.page.wait_for_selector("#search-results ul.search li", timeout=15_000)
        found = watched.page.eval_on_selector_all("#search-results ul.search li a",
                                                  "links => links.map(a => a.getAttribute('href'))")
    finally:
        watched.close()
    assert not watched.problems, "\n".join(watched.problems)
    assert any(f"notebooks/{lesson}/{lesson}.html" in href for href in found), \
        f"searching {word!r} should list lesson {lesson}; it listed {found[:10]}"

