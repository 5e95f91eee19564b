"""A catalogue of planted mistakes: how often the visible checks name the mistake a student made.

Each lesson's file (`l05.py`, ...) lists classic mistakes as edits of an exercise's solution:
`Mistake(exercise, what, old, new, hint)` replaces `old` (found exactly once in the exercise's
solution cell) by `new`. The runner executes the lesson's solution at the grading profile and,
after each check cell, every planted mistake of its exercise: the mutated exercise cell, then the
check cell's visible part. A mistake is *caught* when the check fails, and its hint is *specific*
when the failure message holds every word of `hint`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    exercise: str  # the name given to checks.exercise(...)
    what: str  # the mistake, as a student would make it
    old: str  # text of the solution cell (found exactly once there) ...
    new: str  # ... replaced by this
    hint: tuple[str, ...]  # words a specific hint contains (case-insensitive), chosen beforehand


@dataclass(frozen=True)
class Outcome:
    lesson: str
    mistake: Mistake
    message: str | None  # the check's failure message; None when the check passed (not caught)

    @property
    def caught(self) -> bool:
        return self.message is not None

    @property
    def specific(self) -> bool:
        return self.caught and all(word.lower() in self.message.lower() for word in self.mistake.hint)


class CatalogueError(ValueError):
    """An entry of the catalogue does not fit its lesson's notebook; the message says which and why."""
