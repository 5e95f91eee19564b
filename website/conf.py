"""Sphinx settings of the course website.

`make site` (python -m course_tools.website) assembles the pages into _build/site/src (the
student notebooks with the outputs of a fresh execution, the guides) and runs Sphinx on them
with this folder as the configuration folder; `website/README.md` says how it fits together.
"""

import os

from course_tools.config import load_config

_course = load_config()

project = "Attention from Scratch"
author = "the Attention from Scratch authors"
copyright = f"2026, {author}"

extensions = ["myst_nb"]
nb_execution_mode = "off"  # executed before the build (course_tools.executions), never here
nb_merge_streams = True  # a cell's prints read as one block, as in Jupyter
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # the guides link to their own sections by slug
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static", os.environ.get("COURSE_SITE_MATHJAX", "_mathjax")]
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"
# light or dark as the reader's system says (the theme logs an error when no mode is set)
html_context = {"default_mode": "auto"}
# MathJax from the npm package (website/package.json), served with the site: no CDN, so that
# the site works offline and the browser test can check the math is typeset
mathjax_path = "mathjax/tex-svg-full.js"
html_theme_options = {
    "repository_url": _course.repository,
    "repository_branch": _course.revision,
    "path_to_docs": "",  # a lesson's page sits where its notebook sits in the repository
    "use_repository_button": True,
    "use_download_button": True,  # the student notebook, with these outputs
    "show_toc_level": 2,
}
