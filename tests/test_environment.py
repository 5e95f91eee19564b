"""environment.yml installs the same packages and ranges as the requirement files."""

from __future__ import annotations

import re
from pathlib import Path


def _requirements(path: Path) -> set[str]:
    found = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found |= _requirements(path.parent / line[3:].strip())
        elif line:
            found.add(re.sub(r"\s+", "", line))
    return found


def _conda_pip_section(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    start = lines.index("  - pip:") + 1
    entries = set()
    for line in lines[start:]:
        match = re.match(r"^\s{6}- (.+)$", line)
        if not match:
            break
        entries.add(re.sub(r"\s+", "", match.group(1)))
    return entries


def test_environment_yml_matches_requirement_files(root: Path) -> None:
    wanted = _requirements(root / "requirements-dev.txt") | {"-e."}
    assert _conda_pip_section(root / "environment.yml") == wanted


def test_instructor_requirements_are_a_subset_of_the_developers(root: Path) -> None:
    instructors = _requirements(root / "requirements-instructors.txt")
    assert instructors <= _requirements(root / "requirements-dev.txt")


def test_requirements_use_ranges_not_pins(root: Path) -> None:
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-instructors.txt"):
        pinned = [r for r in _requirements(root / name) if "==" in r.split(";")[0]]
        assert not pinned, f"{name} pins {pinned}: students need ranges"
