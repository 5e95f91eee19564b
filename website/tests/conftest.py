"""Fixtures of the website's checks (`make site-check`, after `make site`): the built site, its
pages, and a local server to open them from."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from course_tools.config import repo_root
from course_tools.website import site_dir

HTML = site_dir(repo_root()) / "html"


@pytest.fixture(scope="session")
def html() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built site in {HTML}: run `make site` first (`make site-check` does)")
    return HTML


@pytest.fixture(scope="session")
def server(html: Path):
    """The site over HTTP on a free local port, as a static host serves it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
