"""utils.delegation through utils.checks: an exercise that calls what it must write is caught, however
it reaches the call; the check cell's own reference calls are not; the grader reads the verdict."""

from __future__ import annotations

import sys
import threading

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_tools.grading import flags
from utils import checks
from utils.distributed import collectives

SOFTMAX = [torch.softmax, torch.Tensor.softmax, F.softmax]
softmax_alias = torch.softmax


def honest(x: torch.Tensor) -> torch.Tensor:
    exps = (x - x.amax(-1, keepdim=True)).exp()
    return exps / exps.sum(-1, keepdim=True)


def through_an_alias(x: torch.Tensor) -> torch.Tensor:
    return softmax_alias(x, -1)


def through_an_import_inside(x: torch.Tensor) -> torch.Tensor:
    from torch.nn.functional import softmax as mine

    return mine(x, dim=-1)


def through_a_method(x: torch.Tensor) -> torch.Tensor:
    return x.softmax(-1)


def _helper(x: torch.Tensor) -> torch.Tensor:  # another cell's helper, called by the exercise
    return getattr(torch, "soft" + "max")(x, -1)


def through_a_helper(x: torch.Tensor) -> torch.Tensor:
    return _helper(x)


class Reference(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class Subclass(Reference):  # the exercise "written" by inheriting the reference
    pass


class Honest(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


def on_ranks(x: torch.Tensor) -> torch.Tensor:  # lesson 11's simulated ranks are threads
    return collectives.simulate(lambda rank: F.softmax(x, -1), 2)[0]


def smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


@pytest.fixture(autouse=True)
def _not_grading(monkeypatch) -> None:
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("COURSE_DELEGATION", raising=False)


@pytest.mark.parametrize(("name", "called"), [
    ("through_an_alias", "torch.softmax"), ("through_an_import_inside", "F.softmax"),
    ("through_a_method", "Tensor.softmax"), ("through_a_helper", "torch.softmax")])
def test_a_forbidden_call_fails_the_check_however_it_is_reached(name: str, called: str) -> None:
    x = torch.randn(3, 4)
    with pytest.raises(checks.Delegated) as err, checks.exercise(name, forbid=SOFTMAX):
        checks.check_close(globals()[name](x), torch.softmax(x, -1))
    message = str(err.value)
    assert message.startswith(f"{name}: delegated to `{called}`")
    assert "asks you to write it yourself" in message


def test_the_checks_own_reference_calls_do_not_count(capsys) -> None:
    x = torch.randn(3, 4)
    with checks.exercise("honest", forbid=SOFTMAX):
        expected = torch.softmax(x, -1)  # the check's expected value: no student code running
        checks.check_close(honest(x), expected)
        checks.check_close(honest(x), F.softmax(x, -1))
    assert "honest: all checks passed" in capsys.readouterr().out


def test_a_subclass_of_a_forbidden_class_is_caught() -> None:
    with pytest.raises(checks.Delegated, match=r"delegated to `[\w.]*Reference`"):
        with checks.exercise("Subclass", forbid=[Reference]):
            Subclass()(torch.ones(2))
    with checks.exercise("Honest", forbid=[Reference]):
        Honest()(torch.ones(2))
        Reference()(torch.ones(2))  # the check's own use of the reference


def test_calls_in_threads_the_student_code_runs_in_are_caught() -> None:
    with pytest.raises(checks.Delegated, match="F.softmax"), checks.exercise("on_ranks", forbid=SOFTMAX):
        on_ranks(torch.randn(2, 3))


def test_a_forbidden_call_can_depend_on_its_arguments() -> None:
    smoothing = checks.forbidden(F.cross_entropy, name="F.cross_entropy(label_smoothing=...)",
                                 when=lambda call: call["label_smoothing"] > 0)
    logits, targets = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    with checks.exercise("smoothed_loss", forbid=[smoothing]):
        smoothed_loss(logits, targets, 0.0)
    with pytest.raises(checks.Delegated, match=r"`F.cross_entropy\(label_smoothing=...\)`"):
        with checks.exercise("smoothed_loss", forbid=[smoothing]):
            smoothed_loss(logits, targets, 0.1)


def test_everything_is_put_back_after_the_check() -> None:
    before = (through_an_alias, Subclass.__dict__.get("forward"), sys.getprofile(), threading.getprofile())
    with pytest.raises(checks.Delegated), checks.exercise("through_an_alias", forbid=SOFTMAX):
        assert through_an_alias is not before[0]  # wrapped while the check runs
        through_an_alias(torch.ones(2))
    with checks.exercise("Subclass", forbid=[torch.softmax]):
        assert "forward" in Subclass.__dict__
    after = (through_an_alias, Subclass.__dict__.get("forward"), sys.getprofile(), threading.getprofile())
    assert after == before


def test_a_stub_is_still_not_attempted(capsys) -> None:
    def stub():
        raise NotImplementedError()

    with checks.exercise("stub", forbid=SOFTMAX):
        stub()
    assert "stub: not attempted yet" in capsys.readouterr().out


def test_under_grading_zero_fails_and_flag_passes_with_a_note(monkeypatch, capsys) -> None:
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    x = torch.randn(3)
    with pytest.raises(checks.Delegated), checks.exercise("through_a_method", forbid=SOFTMAX):
        checks.check_close(through_a_method(x), torch.softmax(x, -1))
    monkeypatch.setenv("COURSE_DELEGATION", "flag")
    with checks.exercise("through_a_method", forbid=SOFTMAX):
        checks.check_close(through_a_method(x), torch.softmax(x, -1))
    out = capsys.readouterr().out
    assert "through_a_method: delegated to `Tensor.softmax`" in out and "all checks passed" in out


def _check_cell(outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("with checks.exercise(...): ...", outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "x_check", "points": 1}
    return cell


def test_the_grader_reads_the_verdict_from_the_check_cells_outputs() -> None:
    raised = checks.delegation_message("layer_norm", ["F.layer_norm", "torch.layer_norm"])
    printed = f"{checks.FLAG} " + checks.delegation_message("SelfAttention", ["attention.MultiHeadAttention"])
    nb = nbformat.v4.new_notebook(cells=[
        _check_cell([nbformat.v4.new_output("error", ename="Delegated", evalue=raised, traceback=[])]),
        _check_cell([nbformat.v4.new_output("stream", name="stdout", text=printed + "\n")]),
        nbformat.v4.new_code_cell("print('x: delegated to `y`')", outputs=[  # not a check cell: ignored
            nbformat.v4.new_output("stream", name="stdout", text="x: delegated to `y`\n")]),
    ])
    assert flags.delegations(nb) == [
        "delegated: layer_norm -> F.layer_norm, torch.layer_norm",
        "delegated: SelfAttention -> attention.MultiHeadAttention",
    ]
