"""`python -m course_tools grade`: a class built from the real lesson notebook, graded end to end.

One class, graded once with the command (two at a time, short cell timeout, 3 GiB memory
limit): each student's notebook is the lesson's solution or student version with cells
edited by nbformat, and each test below reads one outcome from the gradebook.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbgrader.api import Gradebook

from course_tools.__main__ import main as course_main
from course_tools.config import solution_path, student_path
from course_tools.grading import sandbox
from course_tools.grading.course import OutputError
from course_tools.grading.grade import GradingError, Options, grade
from course_tools.grading.intake import IntakeError
from course_tools.grading.report import MANUAL, awaiting_note, exercises, written_answers

pytestmark = pytest.mark.slow
LESSON = "00_course_tour"
CELL_TIMEOUT_S, MEMORY_GIB = 30, 3  # 30 s: room for the memory hog to fill its 3.5 GiB on a loaded machine
GRADED, FAILED = "graded", "could not be graded"
_SOURCE = nbformat.read(solution_path(LESSON), as_version=4)
POINTS = dict(exercises(_SOURCE))  # every graded cell, written answers included
WRITTEN = written_answers(_SOURCE)  # graded by hand: autograding leaves them for the formgrader
FULL = sum(p for grade_id, p in POINTS.items() if grade_id not in WRITTEN)  # every autograded point
ANSWERED = MANUAL if WRITTEN else GRADED  # the status of a submission with its written answers filled in


def _label(grade_id: str) -> str:
    """How the gradebook names a cell: its number in the notebook (from 1) and its grade_id (or tag)."""
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") or ("setup" if "setup" in c.metadata.get("tags", [])
                                                              else None) for c in _SOURCE.cells]
    index = ids.index(grade_id)
    return f"cell {index + 1} ({grade_id})"


PADDING_CHECK = _label("padding_mask_check")
NAIVE_SOFTMAX = "    return x.exp() / x.exp().sum(dim=dim, keepdim=True)  # overflows\n"
CHEAT = '''
import contextlib
import utils.checks

@contextlib.contextmanager
def _always_pass(name, forbid=()):
    try:
        yield
    except Exception:
        pass
    print(f"{name}: all checks passed.")

utils.checks.exercise = _always_pass
for _helper in ("check_shape", "check_dtype", "check_close", "check_true"):
    setattr(utils.checks, _helper, lambda *args, **kwargs: None)

def attention_scores(q, k):
    return torch.zeros(q.shape[0], q.shape[1], k.shape[1])
'''

# Shared memory, filled in pieces: no single allocation fails, and RLIMIT_DATA does not count
# it; only a limit on resident memory stops it.
HOG = """    import mmap
    _shared = mmap.mmap(-1, {size})
    _piece = bytes(2**26)
    for _ in range({size} // 2**26):
        _shared.write(_piece)
    return _shared
"""


# ---------------------------------------------------------------- building a class


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solution() -> nbformat.NotebookNode:
    return nbformat.read(solution_path(LESSON), as_version=4)


def student_version() -> nbformat.NotebookNode:
    return nbformat.read(student_path(LESSON), as_version=4)


def with_body(grade_id: str, body: str) -> nbformat.NotebookNode:
    """The solution notebook with one exercise's solution replaced by `body`."""
    nb = solution()
    cell = _cell(nb, grade_id)
    cell.source = cell.source.split("### BEGIN SOLUTION")[0].rstrip(" ") + body
    return nb


def escaper(targets: list[Path]) -> nbformat.NotebookNode:
    """A correct solution whose first exercise cell also tries to write to each of `targets`."""
    attempt = "\n".join([
        "import os", f"for _target in {[str(t) for t in targets]!r}:", "    try:",
        "        with open(_target, 'a') as _handle:", "            _handle.write('pwned')",
        "        print('wrote', _target)", "    except OSError as _err:", "        print('blocked:', _err)",
        f"print('solutions visible:', os.listdir({str(solution_path(LESSON).parents[1])!r}))", "",
    ])
    nb = solution()
    _cell(nb, "attention_scores").source = attempt + _cell(nb, "attention_scores").source
    return nb


def tamperer() -> nbformat.NotebookNode:
    """A wrong softmax whose check cell is emptied, a deleted (passing) check cell, and a
    deleted exercise with its check cell."""
    nb = with_body("stable_softmax", NAIVE_SOFTMAX)
    for grade_id in ("padding_mask_check", "multihead_scores", "multihead_scores_check"):
        nb.cells.remove(_cell(nb, grade_id))
    _cell(nb, "stable_softmax_check").source = "pass  # nothing to check here"
    return nb


def cheater() -> nbformat.NotebookNode:
    """The student version whose first exercise makes every `checks` helper pass."""
    nb = student_version()
    _cell(nb, "attention_scores").source = CHEAT
    return nb


def write(folder: Path, nb: nbformat.NotebookNode | str, name: str = f"{LESSON}.ipynb") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, str):
        (folder / name).write_text(nb)
    else:
        nbformat.write(nb, folder / name)


def build_class(folder: Path, escape_to: list[Path]) -> None:
    """One folder per student, each a case the gradebook must get right."""
    write(folder / "perfect", solution())
    write(folder / "untouched" / LESSON, student_version())  # nbgrader's submitted/ layout
    write(folder / "wrong", with_body("stable_softmax", NAIVE_SOFTMAX))
    write(folder / "loop", with_body("padding_mask", "    while True:\n        pass\n"))
    write(folder / "exit", with_body("padding_mask", "    import os\n    os._exit(1)\n"))
    bomb = int((MEMORY_GIB + 0.5) * 2**30)  # just above the limit
    write(folder / "bomb", with_body("padding_mask", f"    return bytearray({bomb})\n"))
    write(folder / "hog", with_body("padding_mask", HOG.format(size=bomb)))
    write(folder / "badjson", '{"cells": [')
    write(folder / "renamed", solution(), name=f"{LESSON} (1).ipynb")
    write(folder / "tamperer", tamperer())
    write(folder / "cheater", cheater())
    if escape_to:
        write(folder / "escaper", escaper(escape_to))


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_grade(submissions: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "course_tools", "grade", LESSON, "--submissions", str(submissions),
               "--out", str(out), "--cell-timeout", str(CELL_TIMEOUT_S), "--memory-limit", str(MEMORY_GIB),
               *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@dataclass
class Graded:
    book: pd.DataFrame  # indexed by student
    out: Path
    before: dict[str, str]
    after: dict[str, str]
    escape_to: list[Path]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    base = tmp_path_factory.mktemp("grading")
    submissions, out = base / "submissions", base / "out"
    escape_to = []
    if sandbox.bwrap_works():  # unsandboxed, test_grading_without_sandbox covers it alone
        escape_to = [submissions / "perfect" / f"{LESSON}.ipynb", submissions / "PWNED",
                     Path(f"/escaped-{uuid.uuid4().hex}")]
    build_class(submissions, escape_to)
    before = hashes(submissions)
    run_grade(submissions, out, "--jobs", "2")
    book = pd.read_csv(out / "gradebook.csv", keep_default_na=False, na_values=[""]).set_index("student_id")
    return Graded(book, out, before, hashes(submissions), escape_to)


def _cell_text(graded: Graded, student: str, grade_id: str) -> str:
    nb = nbformat.read(graded.out / "autograded" / student / LESSON / f"{LESSON}.ipynb", as_version=4)
    return "".join(o.get("text", "") + o.get("evalue", "") for o in _cell(nb, grade_id).outputs)


# ---------------------------------------------------------------- each outcome


def test_perfect_submission_scores_full_marks(graded: Graded) -> None:
    row = graded.book.loc["perfect"]
    assert (row.status, row.total, row.max_score) == (ANSWERED, FULL, sum(POINTS.values()))
    assert row["reason"] == "; ".join(awaiting_note(WRITTEN)) if WRITTEN else pd.isna(row["reason"])
    assert pd.isna(row["flags"])


def test_untouched_student_version_scores_zero_and_counts_as_graded(graded: Graded) -> None:
    row = graded.book.loc["untouched"]
    assert (row.status, row.total) == (GRADED, 0.0)


def test_one_wrong_exercise_loses_exactly_its_points(graded: Graded) -> None:
    row = graded.book.loc["wrong"]
    assert (row.status, row.total, row.stable_softmax_check) == (ANSWERED, FULL - 3, 0.0)


def test_infinite_loop_times_out_and_the_other_exercises_are_graded(graded: Graded) -> None:
    row = graded.book.loc["loop"]
    assert row.status == FAILED
    assert row["reason"].startswith(f"timed out: {PADDING_CHECK} ran over {CELL_TIMEOUT_S} s")
    assert (row.padding_mask_check, row.total) == (0.0, FULL - 2)


def test_kernel_killed_with_os_exit_is_not_a_silent_zero(graded: Graded) -> None:
    row = graded.book.loc["exit"]
    assert row.status == FAILED
    assert row["reason"] == f"the kernel died in {PADDING_CHECK} (exit code 1)"
    assert pd.isna(row.total) and pd.isna(row.attention_scores_check)
    assert "uses os._exit" in row["flags"]


def test_memory_bomb_is_stopped_by_the_limit(graded: Graded) -> None:
    row = graded.book.loc["bomb"]
    assert row.status == FAILED
    assert row["reason"].startswith(f"memory limit: {PADDING_CHECK} ran out of memory "
                                 f"(limit {MEMORY_GIB} GiB)")
    assert (row.padding_mask_check, row.total) == (0.0, FULL - 2)


def test_memory_spread_where_no_allocation_fails_is_stopped_by_the_resident_limit(graded: Graded) -> None:
    row = graded.book.loc["hog"]
    assert row.status == FAILED
    assert row["reason"].startswith(f"memory limit: {PADDING_CHECK} used ")
    assert row["reason"].endswith(f"GiB of memory, over the limit of {MEMORY_GIB} GiB, and the kernel was "
                                  "stopped there")
    assert pd.isna(row.total)


def test_a_broken_grading_environment_stops_before_any_student_is_graded(tmp_path: Path) -> None:
    broken = tmp_path / "site" / "torch"  # what a CUDA build of torch under an address-space limit did
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('simulated: libtorch_cuda.so: failed to map')")
    write(tmp_path / "submissions" / "perfect", solution())
    # unsandboxed: bubblewrap would hide tmp_path from the kernel
    command = [sys.executable, "-m", "course_tools", "grade", LESSON, "--sandbox", "none",
               "--submissions", str(tmp_path / "submissions"), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(broken.parent)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("the solution of 00_course_tour does not score full marks in this grading environment, so no "
            f"submission was graded: a cell of the lesson failed: {_label('setup')} raised ImportError: "
            "simulated: libtorch_cuda.so: failed to map") in result.stderr
    assert "[1/1]" not in result.stdout and not (tmp_path / "out" / "gradebook.csv").exists()
    assert (tmp_path / "out" / "logs" / ".canary.log").is_file()


def test_invalid_json_is_reported_as_unreadable(graded: Graded) -> None:
    row = graded.book.loc["badjson"]
    assert row.status == FAILED and row["reason"].startswith("unreadable notebook: NotJSONError")
    assert pd.isna(row.total)


def test_wrongly_named_notebook_is_reported_by_name(graded: Graded) -> None:
    row = graded.book.loc["renamed"]
    assert row.status == FAILED
    assert row["reason"] == f"wrong file: found {LESSON} (1).ipynb, expected {LESSON}.ipynb"


def test_deleted_and_edited_check_cells_are_restored_from_the_source(graded: Graded) -> None:
    row = graded.book.loc["tamperer"]
    assert row.status == ANSWERED
    assert (row.padding_mask_check, row.stable_softmax_check) == (2.0, 0.0)  # both checks ran
    assert (row.multihead_scores_check, row.total) == (0.0, FULL - 6)  # a deleted exercise scores 0
    assert row["flags"].split("; ") == [f"{what} (restored)" for what in (
        "deleted check cell padding_mask_check", "edited check cell stable_softmax_check",
        "deleted exercise cell multihead_scores", "deleted check cell multihead_scores_check")]


def test_redefined_checks_helpers_do_not_beat_the_hidden_tests(graded: Graded) -> None:
    row = graded.book.loc["cheater"]
    assert (row.status, row.total) == (GRADED, 0.0)
    assert "attention_scores: all checks passed." in _cell_text(graded, "cheater", "attention_scores_check")
    assert "reassigns utils.checks.exercise" in row["flags"]


def test_writes_outside_its_folder_are_blocked_by_the_sandbox(graded: Graded) -> None:
    if not graded.escape_to:
        pytest.skip("bubblewrap cannot run here (test_write_outside_is_detected_without_sandbox covers it)")
    row = graded.book.loc["escaper"]
    assert (row.status, row.total) == (ANSWERED, FULL)
    output = _cell_text(graded, "escaper", "attention_scores")
    assert output.count("blocked:") == len(graded.escape_to) and "wrote" not in output
    assert "solutions visible: []" in output
    assert not any(p.exists() for p in graded.escape_to[1:])


def test_original_submissions_are_unchanged(graded: Graded) -> None:
    assert graded.after == graded.before


def test_every_student_is_in_the_gradebook_with_one_column_per_exercise(graded: Graded) -> None:
    students = {p.name for p in graded.out.parent.joinpath("submissions").iterdir() if p.is_dir()}
    assert set(graded.book.index) == students
    assert list(graded.book.columns) == ["status", "total", "max_score", *POINTS, "reason", "flags"]
    assert {"attention_scores_check", "padding_mask_check", "stable_softmax_check",
            "multihead_scores_check"} <= set(POINTS)


def test_summary_gives_mean_and_share_of_full_marks_per_exercise(graded: Graded) -> None:
    summary = pd.read_csv(graded.out / "summary.csv").set_index("exercise")
    scores = graded.book["stable_softmax_check"].dropna()
    assert summary.loc["stable_softmax_check", "mean"] == round(scores.mean(), 2)
    assert summary.loc["stable_softmax_check", "share_full_marks"] == round((scores == 3).mean(), 3)
    assert summary.loc["total", "max_score"] == sum(POINTS.values())


def test_feedback_and_autograded_notebook_for_each_graded_student(graded: Graded) -> None:
    for student in graded.book.index[graded.book["total"].notna()]:
        assert (graded.out / "feedback" / student / LESSON / f"{LESSON}.html").is_file(), student
        assert (graded.out / "autograded" / student / LESSON / f"{LESSON}.ipynb").is_file(), student


def test_output_is_an_nbgrader_course_holding_the_grades(graded: Graded) -> None:
    with Gradebook(f"sqlite:///{graded.out / 'gradebook.db'}") as gb:
        assert gb.find_submission(LESSON, "perfect").score == FULL
        assert gb.find_submission(LESSON, "wrong").score == FULL - 3
    assert (graded.out / "nbgrader_config.py").is_file()
    assert not list(graded.out.glob(".*.tmp")) and not (graded.out / ".work").exists()


# ---------------------------------------------------------------- other runs


def test_write_outside_is_detected_without_sandbox(tmp_path: Path) -> None:
    submissions = tmp_path / "submissions"
    victim = submissions / "late" / "lesson.ipynb"  # another student's original (not gradable: no kernel)
    write(victim.parent, solution(), name=victim.name)
    write(submissions / "escaper", escaper([victim, submissions / "PWNED"]))
    options = Options(LESSON, submissions, tmp_path / "out", jobs=1, cell_timeout=CELL_TIMEOUT_S,
                      memory_gib=MEMORY_GIB, sandbox="none")
    book = grade(options).set_index("student_id")
    assert book.loc["escaper", "status"] == FAILED
    # unsandboxed, the course files are watched too: a colleague's edit may show up as well
    assert book.loc["escaper", "reason"].startswith(f"wrote outside its folder: changed {victim}")
    assert book.loc["late", "reason"].startswith("wrong file: found lesson.ipynb")


def test_grading_twice_gives_the_same_gradebook(tmp_path: Path) -> None:
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(submissions / "perfect", solution())
    write(submissions / "badjson", '{"cells": [')
    write(submissions / "renamed", solution(), name="lesson.ipynb")
    options = Options(LESSON, submissions, out, jobs=1)
    grade(options)
    first = [(out / name).read_bytes() for name in ("gradebook.csv", "summary.csv")]
    grade(options)
    assert [(out / name).read_bytes() for name in ("gradebook.csv", "summary.csv")] == first


def test_unknown_lesson_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=f"unknown lesson 'nope'; the lessons are: .*{LESSON}"):
        grade(Options("nope", tmp_path, tmp_path / "out", jobs=1))


def test_empty_submissions_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IntakeError, match="is empty: expected one folder per student"):
        grade(Options(LESSON, tmp_path / "empty", tmp_path / "out", jobs=1))


def test_loose_files_point_to_zip_collect(tmp_path: Path) -> None:
    write(tmp_path / "export", solution(), name=f"jdoe_1234_{LESSON}.ipynb")
    with pytest.raises(IntakeError, match="zip_collect"):
        grade(Options(LESSON, tmp_path / "export", tmp_path / "out", jobs=1))


def test_output_inside_the_submissions_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "subs" / "perfect", solution())
    with pytest.raises(GradingError, match="inside --submissions"):
        grade(Options(LESSON, tmp_path / "subs", tmp_path / "subs" / "out", jobs=1))


def test_command_without_submissions_folder_fails_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "course_tools", "grade", LESSON, "--submissions",
                             str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert result.returncode == 2 and "no such folder" in result.stderr


def test_output_folder_not_written_by_the_command_is_left_alone(tmp_path: Path) -> None:
    write(tmp_path / "subs" / "perfect", solution())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the instructor's own file")
    with pytest.raises(OutputError, match="not written by this command"):
        grade(Options(LESSON, tmp_path / "subs", tmp_path / "mine", jobs=1))
    assert (tmp_path / "mine" / "notes.txt").is_file()


@pytest.mark.parametrize("option", [["--jobs", "0"], ["--cell-timeout", "-5"], ["--memory-limit", "lots"]])
def test_nonsense_options_are_refused_by_name(option: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        course_main(["grade", LESSON, "--submissions", str(tmp_path), *option])
    assert option[0] in capsys.readouterr().err
