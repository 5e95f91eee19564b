"""utils.checks: the right verdict and a useful message on right, wrong and missing answers."""

from __future__ import annotations

import pytest
import torch

from utils import checks


def _stub():
    raise NotImplementedError()


def test_right_answer_prints_a_pass(capsys) -> None:
    with checks.exercise("softmax"):
        checks.check_close(torch.softmax(torch.ones(3), 0), torch.full((3,), 1 / 3))
    assert "softmax: all checks passed" in capsys.readouterr().out


def test_not_attempted_prints_a_notice_and_goes_on(capsys, monkeypatch) -> None:
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with checks.exercise("softmax"):
        _stub()
    out = capsys.readouterr().out
    assert "softmax: not attempted yet" in out and "raise NotImplementedError()" in out


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_not_attempted_raises_under_nbgrader(monkeypatch, mode: str) -> None:
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    with pytest.raises(checks.NotAttempted, match="softmax: not attempted"), checks.exercise("softmax"):
        _stub()


def test_library_not_implemented_error_is_not_mistaken_for_the_stub(monkeypatch) -> None:
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with pytest.raises(NotImplementedError, match="no MPS kernel"), checks.exercise("x"):
        raise NotImplementedError("no MPS kernel for this op")


def test_wrong_answer_raises_with_the_exercise_name() -> None:
    with pytest.raises(checks.CheckFailed, match=r"^scores: expected scores to have shape"):
        with checks.exercise("scores"):
            checks.check_shape(torch.zeros(2, 3), (3, 2), name="scores")


def test_check_failed_is_an_assertion_error_so_nbgrader_counts_it() -> None:
    assert issubclass(checks.CheckFailed, AssertionError)
    assert issubclass(checks.NotAttempted, AssertionError)


@pytest.mark.parametrize(("actual", "expected", "cause"), [
    ((2, 16, 5), (2, 5, 16), "transpose or permute"),
    ((2, 5), (2, 5, 1), "keepdim=True"),
    ((2, 1, 5), (2, 5), "unsqueeze"),
    ((10, 16), (2, 5, 16), "view/reshape"),
])
def test_shape_mismatch_names_the_likely_cause(actual, expected, cause) -> None:
    with pytest.raises(checks.CheckFailed) as err:
        checks.check_shape(torch.zeros(actual), expected, name="out")
    assert f"expected out to have shape {expected}, got {actual}" in str(err.value)
    assert cause in str(err.value)


def test_unrelated_shape_mismatch_states_both_shapes_without_guessing() -> None:
    with pytest.raises(checks.CheckFailed, match=r"shape \(3, 4\), got \(7,\)$"):
        checks.check_shape(torch.zeros(7), (3, 4), name="out")


def test_close_reports_largest_error_and_where() -> None:
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 2] = 0.5
    with pytest.raises(checks.CheckFailed) as err:
        checks.check_close(actual, expected, name="out")
    message = str(err.value)
    assert "largest error 0.5 at index (1, 2)" in message
    assert "got 0.5, expected 0" in message and "1 of 6 values are off" in message


def test_known_mistake_is_named() -> None:
    x = torch.randn(4, 4)
    with pytest.raises(checks.CheckFailed, match="it looks like a softmax over dim 0"):
        checks.check_close(torch.softmax(x, 0), torch.softmax(x, 1), name="out",
                           mistakes={"a softmax over dim 0": torch.softmax(x, 0)})


def test_non_finite_output_gets_the_hint() -> None:
    actual = torch.tensor([0.5, float("nan")])
    pattern = r"1 non-finite value\(s\) \(first at index \(1,\).*subtract the max"
    with pytest.raises(checks.CheckFailed, match=pattern):
        checks.check_close(actual, torch.tensor([0.5, 0.5]), nonfinite_hint="subtract the max")


def test_close_accepts_equal_tensors_of_other_dtypes() -> None:
    checks.check_close(torch.tensor([1, 0], dtype=torch.bool), torch.tensor([True, False]))
    checks.check_close(torch.ones(3, dtype=torch.float64), torch.ones(3))


@pytest.mark.parametrize(("value", "hint"), [
    ((torch.zeros(2), torch.zeros(2)), "you returned a tuple"),
    (None, "did you forget `return`?"),
    ([1.0, 2.0], "got list"),
])
def test_student_value_of_the_wrong_type_gets_a_clear_message(value, hint) -> None:
    with pytest.raises(checks.CheckFailed, match="out should be a torch.Tensor") as err:
        checks.check_shape(value, (2,), name="out")
    assert hint in str(err.value)


def test_dtype_mismatch_names_both_and_a_hint() -> None:
    with pytest.raises(checks.CheckFailed, match="dtype torch.bool, got torch.float32.*comparison"):
        checks.check_dtype(torch.zeros(2), torch.bool, name="mask")


@pytest.mark.parametrize("call", [
    lambda: checks.check_shape(torch.zeros(2), 2),
    lambda: checks.check_shape(torch.zeros(2), "2"),
    lambda: checks.check_dtype(torch.zeros(2), "float32"),
    lambda: checks.check_true(True, 42),
    lambda: checks.exercise(3).__enter__(),
])
def test_author_calling_a_check_with_the_wrong_type_gets_a_type_error(call) -> None:
    with pytest.raises(TypeError, match="must be|takes"):
        call()


def test_check_true_fails_with_the_message() -> None:
    checks.check_true(True, "fine")
    with pytest.raises(checks.CheckFailed, match="rows must sum to 1"):
        checks.check_true(False, "rows must sum to 1")


def _attention_without_transpose(q, k):
    return torch.softmax(q @ k, dim=-1)  # the classic: k not transposed


def _non_bool_mask(scores, lengths):
    mask = torch.arange(scores.shape[-1])[None, :] < lengths[:, None]
    return scores.masked_fill(mask.long() == 0, float("-inf")).masked_fill(mask.float(), 0.0)


def _one_value():
    return torch.zeros(3)


@pytest.mark.parametrize("student, words", [
    (lambda: _attention_without_transpose(torch.randn(2, 5, 8), torch.randn(2, 6, 8)),
     ["transpose", "q @ k"]),
    (lambda: _non_bool_mask(torch.randn(2, 4), torch.tensor([4, 2])), ["bool"]),
    (lambda: [out for out, weights in [_one_value()]], ["unpack", "return"]),
    (lambda: torch.randn(2, 3).transpose(0, 1).view(6), ["reshape", "contiguous"]),
    (lambda: torch.nn.functional.cross_entropy(torch.randn(2, 5, 7), torch.randint(7, (2, 5))), ["flatten"]),
])
def test_a_classic_exception_in_student_code_becomes_a_hint(student, words) -> None:
    with pytest.raises(checks.CheckFailed) as caught:
        with checks.exercise("f"):
            student()
    message = str(caught.value)
    assert message.startswith("f: your code raised ")
    assert all(w.lower() in message.lower() for w in words), message
    assert caught.value.__cause__ is not None, "the original error stays chained, with its traceback"


def test_the_hint_says_in_which_function_and_line() -> None:
    with pytest.raises(checks.CheckFailed) as caught:
        with checks.exercise("f"):
            _attention_without_transpose(torch.randn(2, 5, 8), torch.randn(2, 6, 8))
    assert "in `_attention_without_transpose` at `return torch.softmax(q @ k, dim=-1)" in str(caught.value)


def test_an_unfamiliar_exception_is_left_as_it_is() -> None:
    with pytest.raises(KeyError):
        with checks.exercise("f"):
            {}["missing"]
