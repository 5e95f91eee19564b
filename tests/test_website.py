"""The website's parts that need no build: executions kept by key, a student notebook made into a
page, the home page, and the deploy workflow. The built site itself is checked by `make
site-check` (website/tests), which CI runs after this suite."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml

from course_tools import executions, website
from course_tools.config import lessons, load_config, repo_root
from course_tools.stamp import COLAB_BADGE, KAGGLE_BADGE

ROOT = repo_root()


# --------------------------------------------------------------------------------------
# Executions, stored by key
# --------------------------------------------------------------------------------------


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course of one lesson: notebooks/99_demo/99_demo.ipynb and a package `utils`."""
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "core.py").write_text("X = 1\n")
    notebook = tmp_path / "notebooks" / "99_demo" / "99_demo.ipynb"
    notebook.parent.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · Demo"),
                                         nbformat.v4.new_code_cell("print(1)"),
                                         nbformat.v4.new_code_cell("print(2)")])
    nbformat.write(nb, notebook)
    monkeypatch.setenv(executions.STORE_ENV, str(tmp_path / "store"))
    for name in executions.KEY_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    executions._package_digest.cache_clear()
    return SimpleNamespace(root=tmp_path, notebook=notebook, lesson="99_demo")


def test_the_key_changes_with_the_notebook_the_package_the_profile_and_nothing_else(course, monkeypatch):
    first = executions.key(course.notebook, course.root)
    assert executions.key(course.notebook, course.root) == first
    monkeypatch.setenv("COURSE_PROFILE", "grading")
    assert executions.key(course.notebook, course.root) != first
    monkeypatch.delenv("COURSE_PROFILE")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # not an input of the outputs' key
    assert executions.key(course.notebook, course.root) == first
    (course.root / "utils" / "core.py").write_text("X = 2\n")
    executions._package_digest.cache_clear()
    second = executions.key(course.notebook, course.root)
    assert second != first
    course.notebook.write_text(course.notebook.read_text().replace("print(1)", "print(3)"))
    assert executions.key(course.notebook, course.root) not in (first, second)


def test_stored_finds_an_execution_only_under_the_current_key(course):
    assert executions.stored(course.lesson, course.root) is None
    nb = nbformat.read(course.notebook, as_version=4)
    path = executions.save(nb, course.lesson, course.root)
    assert executions.stored(course.lesson, course.root) == path
    course.notebook.write_text(course.notebook.read_text().replace("print(1)", "print(3)"))
    assert executions.stored(course.lesson, course.root) is None


def test_save_keeps_the_latest_few_executions_of_a_lesson(course):
    nb = nbformat.read(course.notebook, as_version=4)
    for n in range(executions.KEPT_PER_LESSON + 2):
        course.notebook.write_text(course.notebook.read_text().replace(f"print({n})", f"print({n + 1})"))
        executions.save(nb, course.lesson, course.root)
    assert len(list((course.root / "store").glob("99_demo-*.ipynb"))) == executions.KEPT_PER_LESSON


def test_reuse_only_fails_with_what_to_do_when_an_execution_is_missing(course):
    with pytest.raises(executions.ExecutionError, match="make test"):
        executions.ensure([course.lesson], root=course.root, reuse_only=True)


def _nbval_items(course, path: Path | None = None):
    """What nbval hands the recorder: a notebook item and one item per code cell."""
    path = path or course.notebook
    nb = nbformat.read(path, as_version=4)
    parent = SimpleNamespace(fspath=path, nodeid=str(path), nb=nb)
    cells = [SimpleNamespace(parent=parent, cell=cell) for cell in nb.cells if cell.cell_type == "code"]
    return parent, cells


def _run(cell, text: str) -> None:
    cell.test_outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]


def test_the_recorder_stores_a_student_notebook_that_passed_whole(course):
    recorder = executions.NbvalRecorder(course.root)
    parent, cells = _nbval_items(course)
    for n, cell in enumerate(cells):
        _run(cell, f"{n + 1}\n")
        recorder.record(cell, passed=True)
    stored = recorder.finish(parent)
    assert stored == executions.stored(course.lesson, course.root)
    outputs = [c.outputs for c in nbformat.read(stored, as_version=4).cells if c.cell_type == "code"]
    assert [o[0]["text"] for o in outputs] == ["1\n", "2\n"]


def test_the_recorder_stores_nothing_after_a_failure_or_a_partial_run(course):
    recorder = executions.NbvalRecorder(course.root)
    parent, cells = _nbval_items(course)
    _run(cells[0], "1\n")
    recorder.record(cells[0], passed=True)
    assert recorder.finish(parent) is None  # one cell of two: a filtered run
    recorder.record(cells[1], passed=False)
    assert recorder.finish(parent) is None
    assert executions.stored(course.lesson, course.root) is None


def test_the_recorder_ignores_solution_notebooks(course):
    solution = course.root / "solutions" / "99_demo" / "99_demo.ipynb"
    solution.parent.mkdir(parents=True)
    solution.write_text(course.notebook.read_text())
    recorder = executions.NbvalRecorder(course.root)
    parent, cells = _nbval_items(course, solution)
    for cell in cells:
        _run(cell, "x\n")
        recorder.record(cell, passed=True)
    assert recorder.finish(parent) is None
    assert not (course.root / "store").exists()


# --------------------------------------------------------------------------------------
# A student notebook made into a page
# --------------------------------------------------------------------------------------


def _graded(cell, **nbgrader):
    cell.metadata["nbgrader"] = {"grade_id": "x", **nbgrader}
    return cell


def _executed_student_notebook():
    title = nbformat.v4.new_markdown_cell(f"# 99 · Demo\n\n[![Open In Colab]({COLAB_BADGE})](c) "
                                          f"[![Open In Kaggle]({KAGGLE_BADGE})](k)")
    setup = nbformat.v4.new_code_cell("device, profile = utils.setup()", metadata={"tags": ["setup"]})
    exercise = _graded(nbformat.v4.new_code_cell("def f():\n    raise NotImplementedError()"), solution=True)
    check = _graded(nbformat.v4.new_code_cell("with checks.exercise('f'): f()"), grade=True, locked=True)
    notice = f"\N{WHITE HOURGLASS} f: {website.NOT_ATTEMPTED} with your code\n"
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text=notice + "shape ok\n")]
    demo = nbformat.v4.new_code_cell("train()")
    demo.outputs = [nbformat.v4.new_output("display_data", data={website.WIDGET: {}, "text/plain": "0%|"}),
                    nbformat.v4.new_output("stream", name="stdout", text="loss 0.1\n")]
    answer = _graded(nbformat.v4.new_markdown_cell(website.WRITTEN_ANSWER_PROMPT), solution=True, grade=True)
    nb = nbformat.v4.new_notebook(cells=[title, setup, exercise, check, demo, answer])
    nb.metadata["widgets"] = {"state": {}}
    return nb


def test_a_page_folds_the_checks_drops_their_noise_and_keeps_the_rest():
    nb = _executed_student_notebook()
    before = nbformat.writes(nb)
    title, setup, exercise, check, demo, answer = website.as_page(nb, depth=2).cells
    assert nbformat.writes(nb) == before, "the executed notebook itself must not change"
    assert "hide-input" in check.metadata["tags"] and "hide-input" in setup.metadata["tags"]
    assert [o["text"] for o in check.outputs] == ["shape ok\n"]
    assert "hide-input" not in exercise.metadata.get("tags", [])
    assert [o["output_type"] for o in demo.outputs] == ["stream"]  # the progress bar is gone
    assert answer.source == website.ANSWER_NOTE
    assert COLAB_BADGE not in title.source and "../../badges/colab.svg" in title.source
    assert "../../badges/kaggle.svg" in title.source


def test_a_check_cell_that_only_says_not_attempted_shows_no_output():
    nb = _executed_student_notebook()
    nb.cells[3].outputs[0]["text"] = f"\N{WHITE HOURGLASS} f: {website.NOT_ATTEMPTED} with your code\n"
    assert website.as_page(nb, depth=2).cells[3].outputs == []


def test_the_home_page_lists_every_lesson_with_its_badges():
    page = website.home_page(ROOT, load_config(ROOT))
    for lesson in lessons(ROOT):
        assert f"(notebooks/{lesson}/{lesson}.ipynb)" in page  # the course map's link
        assert f"\nnotebooks/{lesson}/{lesson}\n" in page  # the table of contents
    assert "badges/colab.svg" in page and COLAB_BADGE not in page
    for page_name in ("running", "instructors", "data_card"):
        assert f"\n{page_name}\n" in page


# --------------------------------------------------------------------------------------
# The deploy workflow, up to the upload (it cannot run here)
# --------------------------------------------------------------------------------------


def test_the_deploy_workflow_builds_checks_and_publishes_the_built_folder():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "website.yml").read_text())
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = [step.get("run", "") for step in build["steps"]]
    assert any("make site-check" in run for run in runs), "the workflow must build and check the site"
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    built = website.site_dir(ROOT) / "html"
    assert upload["with"]["path"] == built.relative_to(ROOT).as_posix(), "publish what make site builds"
    assert deploy["needs"] == "build"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    # the checks' browser: the workflow names one, and the checks read that variable
    check = next(s for s in build["steps"] if "make site-check" in s.get("run", ""))
    assert check["env"]["COURSE_CHROMIUM"].startswith("/")
    assert "COURSE_CHROMIUM" in (ROOT / "website" / "tests" / "test_browser.py").read_text()
    # every file the build reads is in the repository
    for needed in ("website/conf.py", "website/requirements.txt", "website/package.json",
                   "website/package-lock.json", "website/running.md"):
        assert (ROOT / needed).is_file(), needed
