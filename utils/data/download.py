"""Download a file once into the course cache, checked by sha256 and written atomically.

The cache is `$COURSE_CACHE` if set, else `~/.cache/attention-from-scratch`. A download
streams into a temporary file next to its destination and is renamed into place only
once complete and verified, so an interrupted download never leaves a half file behind.
Only the standard library is used (`urllib`), so `file://` URLs work too (tests use them).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

USER_AGENT = "attention-from-scratch/0.1 (course data download)"


class ChecksumError(ValueError):
    """A downloaded file does not have the sha256 it should have."""


def cache_dir() -> Path:
    """Where the course keeps downloads: `$COURSE_CACHE` or ~/.cache/attention-from-scratch."""
    folder = os.environ.get("COURSE_CACHE")
    if folder:
        return Path(folder).expanduser()
    return Path.home() / ".cache" / "attention-from-scratch"


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` (temp file, then rename); raise `ChecksumError` on a mismatch.

    Network failures propagate as `urllib.error.URLError` / `OSError`; callers turn them
    into advice (see `utils.data.tatoeba`).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            for chunk in iter(lambda: r.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256.strip().lower():
            raise ChecksumError(
                f"{url} downloaded, but its sha256 is {actual}, not the expected {sha256}: "
                "the file changed upstream or the download was corrupted. Nothing was saved; "
                "check the URL, or update the expected checksum if the new file is right."
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
