"""Feedback for exercises: every check cell in the course goes through these helpers.

A check cell looks like this::

    with checks.exercise("stable_softmax", forbid=[torch.softmax, F.softmax, torch.Tensor.softmax]):
        out = stable_softmax(x)
        checks.check_shape(out, x.shape, name="stable_softmax(x)")
        checks.check_close(out, torch.softmax(x, -1), name="stable_softmax(x)",
                           mistakes={"the softmax ran over dim 0": torch.softmax(x, 0)})

- An exercise whose body still raises the stub's bare `NotImplementedError` is *not
  attempted*: students see a notice and the notebook goes on; under nbgrader
  (`NBGRADER_EXECUTION` set) it raises, so the exercise scores zero.
- A wrong answer raises `CheckFailed` (an `AssertionError`, so nbgrader counts it) with
  the expected and the actual value and, where one is known, the likely mistake.
- An exception raised inside the student's code that is a classic (a shape mismatch in a
  matrix product, a mask that is not bool, the wrong number of returned values, ...) becomes a
  `CheckFailed` that says where it was raised and what probably went wrong, with the original
  error chained above it (`diagnose_exception`).
- A right answer prints a one-line pass.
- An exercise whose code calls what it `forbid`s (its reference, or the PyTorch function that
  does the whole job) fails with a kind message that names the call (`utils.delegation`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from utils import delegation
from utils.delegation import forbidden  # noqa: F401 - for check cells: checks.forbidden(fn, when=...)

PASS = "\N{WHITE HEAVY CHECK MARK}"
TODO = "\N{WHITE HOURGLASS}"
FLAG = "\N{WARNING SIGN}"


class CheckFailed(AssertionError):
    """A student's answer is wrong; the message says how and, if known, why."""


class NotAttempted(AssertionError):
    """Raised under nbgrader for an exercise whose stub was never replaced."""


class Delegated(CheckFailed):
    """The student's code called what the exercise asks them to write (see `exercise(forbid=...)`)."""


def _grading() -> bool:
    return bool(os.environ.get("NBGRADER_EXECUTION"))


class Exercise:
    """The context manager `exercise()` returns (see its docstring)."""

    def __init__(self, name: str, forbid: Iterable[Any] = ()):
        if not isinstance(name, str) or not name:
            raise TypeError(f"exercise() takes the exercise's name as a non-empty str, got {name!r}")
        self.name = name
        self._watch = delegation.Watch(forbid) if forbid else None

    def __enter__(self) -> None:
        if self._watch is not None:  # the student's object lives where the check cell runs
            self._watch.start(sys._getframe(1).f_globals, self.name)

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> bool:
        called = self._watch.stop() if self._watch is not None else []
        name = self.name
        if err is not None and not isinstance(err, Exception):  # KeyboardInterrupt and the like
            return False
        if isinstance(err, NotImplementedError) and not err.args:
            # the stub's bare NotImplementedError; a library's own carries a message
            if _grading():
                raise NotAttempted(
                    f"{name}: not attempted (its body still raises NotImplementedError)") from None
            print(f"{TODO} {name}: not attempted yet. Replace `raise NotImplementedError()` "
                  "with your code, then run this cell again.")
            return True
        if called:
            message = delegation_message(name, called)
            if not _grading() or delegation_mode() == "zero":
                raise Delegated(message) from None
            print(f"{FLAG} {message} Flagged for your instructor.")
        if isinstance(err, CheckFailed):
            raise CheckFailed(f"{name}: {err}") from None
        hint = diagnose_exception(err) if err is not None else None
        if hint is not None:
            raise CheckFailed(f"{name}: {explained(err, hint)}") from err
        if err is None:
            print(f"{PASS} {name}: all checks passed.")
        return False


def exercise(name: str, forbid: Iterable[Any] = ()) -> Exercise:
    """Run one exercise's checks: pass, "not attempted yet", or a failure with a hint.

    `forbid` lists what the exercise must not call: its reference in `utils`, and the PyTorch
    functions that do its whole job (functions, methods, classes, or `delegation.forbidden(fn,
    when=...)` for a call with certain arguments). A call of one of them *from the student's
    code* (the function or class named `name` in the check cell's namespace, and whatever it
    calls) fails the check with a kind message; under grading, `COURSE_DELEGATION=flag` lets it
    pass with a note that the grader turns into a flag. The check cell's own calls of the
    reference, for its expected values, do not count.
    """
    return Exercise(name, forbid)


def delegation_mode() -> str:
    """Under grading, what a forbidden call costs: "zero" (the check fails; the default) or "flag"."""
    mode = os.environ.get("COURSE_DELEGATION", "zero")
    return mode if mode in ("zero", "flag") else "zero"


def delegation_message(name: str, called: Sequence[str]) -> str:
    """What a student reads when `name` calls the references `called` (the grader parses its start)."""
    names = ", ".join(f"`{c}`" for c in called)
    one = len(called) == 1
    return (f"{name}: delegated to {names}: this exercise asks you to write it yourself; "
            f"{names} {'is' if one else 'are'} what your work gets compared against, so your code "
            f"may not call {'it' if one else 'them'}.")


# ---------------------------------------------------------------- exceptions in the student's code

# (pattern in the error message, what probably went wrong); the first match wins
_CLASSIC_ERRORS: tuple[tuple[str, str], ...] = (
    (r"mat1 and mat2 shapes cannot be multiplied|Expected size for first two dimensions of batch2"
     r"|size mismatch|does not broadcast with previously seen size",
     "a matrix product whose inner sizes do not match. In q @ kᵀ the keys must be transposed "
     "(`k.transpose(-2, -1)`, not `k.T` on a batch); a Linear layer takes inputs whose last dim is "
     "its in_features. Print both shapes just before the product."),
    (r"must match the size of tensor b .* at non-singleton dimension",
     "two tensors whose shapes do not broadcast: a missing dim (a reduction without keepdim=True, "
     "or add it with `[:, None]` / `unsqueeze`), a transposed operand, or a mask of the wrong shape "
     "(a key-padding mask is (B, 1, Lk), a causal mask (Lq, Lk))."),
    (r"only supports boolean masks|expected mask dtype to be Bool|mask.* must be .*bool",
     "a mask that is not a bool tensor: build it from a comparison (`positions < lengths[:, None]`) "
     "or convert it with `.bool()`; True means the key may be attended to."),
    (r"tensors used as indices must be long",
     "indexing with a float tensor: indices and token ids must be integers (`.long()`)."),
    (r"shape '\[.*\]' is invalid for input of size",
     "a view or reshape into sizes whose product is not the tensor's number of elements: "
     "splitting d_model into heads gives (B, L, H, d_model // H), and merging back (B, L, d_model)."),
    (r"view size is not compatible with input tensor's size and stride",
     "`.view` after a transpose or permute, whose result is not contiguous in memory: use "
     "`.reshape(...)`, or `.contiguous().view(...)`."),
    (r"Dimension out of range",
     "a dim the tensor does not have: it has fewer dims than you think (a reduction without "
     "keepdim=True? a missing batch dim?). Negative dims (-1, -2) count from the end whatever the rank."),
    (r"number of dimensions in the tensor input does not match the length of the desired ordering",
     "`permute` needs one index per dim of the tensor."),
    (r"Expected target size|Expected input batch_size .* to match target batch_size",
     "cross_entropy wants logits (N, C) and targets (N,): flatten (B, L, V) to (B*L, V) and "
     "(B, L) to (B*L,), or move the classes to dim 1."),
    (r"expected target dtype to be Long|expected scalar type Long",
     "class targets of cross_entropy must be integer ids (`.long()`)."),
    (r"same dtype|expected scalar type|dtype.* but got|found dtype",
     "tensors of different dtypes in one operation: tensors made with torch.arange or "
     "torch.tensor from integers are int64; use `.float()`, `dtype=x.dtype` or `.to(x)`."),
    (r"index out of range in self",
     "an embedding lookup with an id outside [0, num_embeddings): check the vocabulary size, and "
     "that padding and special tokens are counted in it."),
    (r"does not require grad and does not have a grad_fn",
     "backward() on a value without a graph: was it computed under torch.no_grad(), detached, or "
     "turned into a number with .item() before backward?"),
    (r"backward through the graph a second time",
     "backward() twice through the same graph: compute a fresh loss from a fresh forward each step."),
    (r"Sizes of tensors must match except in dimension",
     "torch.cat or torch.stack of tensors whose other dims differ: check the shapes and the dim."),
    (r"Expected all tensors to be on the same device",
     "tensors on different devices: create new tensors with `device=x.device` (or `.to(x)`)."),
    (r"too many values to unpack|not enough values to unpack",
     "a function returned a different number of values than the code that calls it unpacks "
     "(`a, b = f(...)` needs exactly two): check what your function returns, and in what order."),
    (r"cannot unpack non-iterable NoneType|'NoneType' object",
     "something is None: a function that ends without `return`?"),
    (r"cannot unpack non-iterable Tensor|iteration over a 0-d tensor",
     "one tensor where a pair was expected: return a tuple, e.g. `return output, weights`."),
    (r"unsupported operand type\(s\) for .*'tuple'|'tuple' and 'Tensor'|'Tensor' and 'tuple'",
     "a tuple used as a tensor: attention returns (output, weights); unpack it, "
     "`out, _ = attn(...)`, before adding or projecting."),
    (r"torch\.return_types\.(max|min)",
     "`max`/`min` with a dim return a pair (values, indices): use `.values`, or `amax`/`amin`."),
    (r"expected sequence of length \d+ at dim",
     "torch.tensor of lists of different lengths: pad them to the longest first."),
    (r"Tensors must have same number of dimensions",
     "torch.cat of tensors with different numbers of dims: a (B,) tensor needs a dim, (B, 1) "
     "(`x[:, None]`), to join a (B, t) one."),
    (r"expanded size of the tensor .* must match the existing size",
     "a tensor (often a bias or a mask) whose size does not fit the one it is broadcast to."),
    (r"can't multiply sequence by non-int|slice indices must be integers|must be integers",
     "a float where an int is needed: `/` gives a float, `//` an int."),
    (r"could not infer output dtype|with a bool tensor is not supported",
     "arithmetic on a bool tensor: convert it first, `.float()` (or use `~mask` to invert it)."),
    (r"builtin_function_or_method|'method' object",
     "a method used without calling it: add the parentheses, e.g. `x.element_size()`."),
    (r"'tuple' object has no attribute",
     "a tuple where a tensor was expected: a function returns (output, weights) and only one of "
     "them was wanted, or the other way round."),
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else ""


def diagnose_exception(err: BaseException) -> str | None:
    """What probably went wrong, for a classic exception raised inside a student's code; else None."""
    if not isinstance(err, (RuntimeError, ValueError, TypeError, IndexError, AttributeError)):
        return None
    message = str(err)
    for pattern, hint in _CLASSIC_ERRORS:
        if re.search(pattern, message):
            return hint
    return None


# where library code lives: frames there are not the student's
_LIBRARY_DIRS = tuple({*(sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")),
                       str(Path(torch.__file__).parent), str(Path(__file__).parent)})


def explained(err: BaseException, hint: str, who: str = "your code") -> str:
    """The message for an exception raised inside a student's code: what, where, and `hint` (what
    probably went wrong). Check cells and utils.expected raise `CheckFailed(explained(...)) from err`."""
    where = _where(err.__traceback__)
    return f"{who} raised {type(err).__name__}: {_first_line(err)}{where}.\nProbably {hint}"


# a lesson's own classics: (exception type or types, pattern in its message, what probably went wrong)
Slip = tuple[type[BaseException] | tuple[type[BaseException], ...], str, str]


@contextlib.contextmanager
def known_slips(slips: Sequence[Slip], who: str = "your code") -> Iterator[None]:
    """Inside a check: an exception raised by one of a lesson's own classic slips (the first of
    `slips` whose type and pattern match) becomes a CheckFailed with its hint; any other exception,
    the stub's NotImplementedError included, goes on to `exercise`, which knows the general ones."""
    try:
        yield
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised unless it is a known slip
        for kind, pattern, hint in slips:
            if isinstance(err, kind) and re.search(pattern, str(err)):
                raise CheckFailed(explained(err, hint, who)) from err
        raise


def _where(tb: Any) -> str:
    """`, in `f` at `<line>`` for the innermost frame of the student's own code, if any."""
    own = [frame for frame in traceback.extract_tb(tb) if not frame.filename.startswith(_LIBRARY_DIRS)]
    if not own or own[-1].name == "<module>":
        return ""
    frame = own[-1]
    return f", in `{frame.name}`" + (f" at `{frame.line.strip()}`" if frame.line else "")


# ---------------------------------------------------------------- argument checking


def _require_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    hint = ""
    if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
        hint = " (you returned a tuple: return only the tensor asked for)"
    elif value is None:
        hint = " (did you forget `return`?)"
    elif hasattr(value, "__array__"):
        hint = " (convert with torch.as_tensor, or stay in torch throughout)"
    raise CheckFailed(f"{name} should be a torch.Tensor, got {type(value).__name__}{hint}")


def _as_shape(expected: Any, caller: str) -> tuple[int, ...]:
    if isinstance(expected, torch.Size) or (
        isinstance(expected, Sequence)
        and not isinstance(expected, str)
        and all(isinstance(d, int) for d in expected)
    ):
        return tuple(expected)
    raise TypeError(
        f"{caller}: `expected` must be a shape such as (2, 5, 16) or a torch.Size, "
        f"got {type(expected).__name__} {expected!r}"
    )


# ---------------------------------------------------------------- shapes and dtypes


def diagnose_shape(actual: tuple[int, ...], expected: tuple[int, ...]) -> str | None:
    """The usual cause of getting `actual` where `expected` was wanted, if it is a classic."""
    if actual == expected:
        return None
    if len(actual) == len(expected) and sorted(actual) == sorted(expected):
        swapped = [i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e]
        return (f"the same sizes in another order (dims {swapped} differ): "
                "did you transpose or permute the wrong dims?")
    if len(actual) == len(expected) - 1 and any(
        actual == expected[:i] + expected[i + 1 :] for i in range(len(expected))
    ):
        return "one dim is missing: did you reduce over it without keepdim=True, or squeeze it?"
    if len(actual) == len(expected) + 1 and any(
        expected == actual[:i] + actual[i + 1 :] for i in range(len(actual))
    ):
        return "one dim too many: an unsqueeze, or a reduction over the wrong dim?"
    if math.prod(actual) == math.prod(expected):
        return "the same number of elements: a view/reshape into the wrong layout?"
    return None


def check_shape(value: Any, expected: Any, name: str = "output") -> None:
    """Fail with both shapes and the likely cause unless `value.shape == expected`."""
    expected = _as_shape(expected, "check_shape")
    tensor = _require_tensor(value, name)
    actual = tuple(tensor.shape)
    if actual != expected:
        cause = diagnose_shape(actual, expected)
        raise CheckFailed(
            f"expected {name} to have shape {expected}, got {actual}" + (f": {cause}" if cause else "")
        )


def check_dtype(value: Any, expected: torch.dtype, name: str = "output") -> None:
    """Fail unless `value` is a tensor of dtype `expected`."""
    if not isinstance(expected, torch.dtype):
        raise TypeError(f"check_dtype: `expected` must be a torch.dtype, got {expected!r}")
    tensor = _require_tensor(value, name)
    if tensor.dtype != expected:
        hint = ""
        if tensor.dtype == torch.int64 and expected.is_floating_point:
            hint = ": integer division or torch.arange without dtype? use .float() or dtype=..."
        elif tensor.dtype.is_floating_point and expected.is_floating_point:
            hint = ": a tensor created without dtype=... picks torch's default; follow the input's dtype"
        elif expected == torch.bool:
            hint = ": a comparison (==, <) gives a bool tensor; multiplying or casting loses that"
        raise CheckFailed(f"expected {name} to have dtype {expected}, got {tensor.dtype}{hint}")


def check_true(condition: bool, message: str) -> None:
    """Fail with `message` unless `condition` holds (for properties not covered above)."""
    if not isinstance(message, str):
        raise TypeError(f"check_true: `message` must be a str, got {type(message).__name__}")
    if not bool(condition):
        raise CheckFailed(message)


# ---------------------------------------------------------------- values


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True)


def check_close(
    actual: Any,
    expected: Any,
    name: str = "output",
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    mistakes: Mapping[str, Any] | None = None,
    nonfinite_hint: str = "",
) -> None:
    """Fail unless `actual` matches `expected`; report the largest error and where it is.

    `mistakes` maps a description of a classic mistake to the output that mistake gives;
    when the student's output matches one, the message names it.
    """
    expected_t = torch.as_tensor(expected)
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        actual = torch.as_tensor(actual, dtype=expected_t.dtype)
    actual_t = _require_tensor(actual, name)
    check_shape(actual_t, tuple(expected_t.shape), name)
    a = actual_t.detach().to("cpu", torch.float64)
    e = expected_t.detach().to("cpu", torch.float64)

    bad = ~torch.isfinite(a) & torch.isfinite(e)
    if bad.any():
        where = _first_index(bad)
        raise CheckFailed(
            f"{name} has {int(bad.sum())} non-finite value(s) (first at index {where}: "
            f"{a[where].item()}) where finite values were expected"
            + (f": {nonfinite_hint}" if nonfinite_hint else "")
        )
    if _close(a, e, atol, rtol):
        return

    for description, wrong in (mistakes or {}).items():
        wrong_t = torch.as_tensor(wrong).detach().to("cpu", torch.float64)
        if _close(a, wrong_t, atol, rtol):
            raise CheckFailed(f"{name} is not what was expected: it looks like {description}.")

    error = (a - e).abs().nan_to_num(nan=float("inf"))
    where = _first_index(error == error.max())
    raise CheckFailed(
        f"{name} differs from the reference: largest error {error.max().item():.3g} at index "
        f"{where} (got {a[where].item():.6g}, expected {e[where].item():.6g}); "
        f"{int((error > atol + rtol * e.abs()).sum())} of {e.numel()} values are off "
        f"(atol={atol:g}, rtol={rtol:g})"
    )
