"""The catalogue of planted mistakes (instructor/course_tools/mistakes): every one is caught by its visible
check, and at least 80 % of each lesson's get a hint that names the mistake. The table of shares
closes the test run (section "reports")."""

from __future__ import annotations

import nbformat
import pytest

from course_tools.config import lessons, solution_path
from course_tools.mistakes import CatalogueError, Mistake
from course_tools.mistakes.run import catalogue, planted_notebook, run_lesson, table

SPECIFIC_SHARE = 0.8
_outcomes: dict[str, list] = {}


def _run(lesson: str) -> list:
    if lesson not in _outcomes:
        _outcomes[lesson] = run_lesson(lesson, timeout_s=300)
    return _outcomes[lesson]


def test_every_lesson_has_a_catalogue_with_three_mistakes_per_exercise():
    for lesson in lessons():
        planted = catalogue(lesson)
        names = {m.exercise for m in planted}
        assert planted, f"{lesson}: no planted mistakes (instructor/course_tools/mistakes/l{lesson[:2]}.py)"
        thin = sorted(n for n in names if sum(m.exercise == n for m in planted) < 3)
        assert not thin, f"{lesson}: fewer than 3 planted mistakes for {thin}"


@pytest.mark.parametrize("lesson", lessons())
def test_planted_mistakes_are_caught_and_most_get_a_specific_hint(lesson):
    outcomes = _run(lesson)
    missed = [o.mistake.what for o in outcomes if not o.caught]
    assert not missed, f"{lesson}: the visible checks pass these planted mistakes: {missed}"
    share = sum(o.specific for o in outcomes) / max(len(outcomes), 1)
    assert share >= SPECIFIC_SHARE, f"{lesson}: {share:.0%} specific hints:\n{table(outcomes)}"


def test_the_share_over_all_lessons_is_reported(record_property):
    outcomes = [o for lesson in lessons() for o in _run(lesson)]  # run above, in this worker (loadfile)
    record_property("report", table(outcomes))
    assert sum(o.specific for o in outcomes) >= SPECIFIC_SHARE * len(outcomes)


def test_an_entry_that_does_not_fit_its_exercise_is_refused():
    nb = nbformat.read(solution_path("05_self_attention"), as_version=4)
    wrong = Mistake("causal_mask", "a typo in the catalogue", old="this text is nowhere", new="", hint=("x",))
    with pytest.raises(CatalogueError, match="occurs 0 times"):
        planted_notebook(nb, [wrong], "05_self_attention")
    unknown = Mistake("no_such_exercise", "a wrong name", old="x", new="y", hint=("x",))
    with pytest.raises(CatalogueError, match="0 check cells"):
        planted_notebook(nb, [unknown], "05_self_attention")
