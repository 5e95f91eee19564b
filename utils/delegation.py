"""Catch an exercise that hands its whole job to a reference: what the student's code calls as it runs.

A check cell declares what its exercise must not call (`checks.exercise(name, forbid=[...])`):
the course's own reference in `utils`, and the PyTorch functions that do the whole job.
`Watch` records the forbidden calls made *while the student's function or class runs*:

- the student's object (found by name in the check cell's namespace) is wrapped for the
  duration of the check, so the watch knows when the student's code is running, in any
  thread (lesson 11's simulated ranks are threads);
- a profile hook (`sys.setprofile`, and `threading.setprofile` for threads started meanwhile)
  sees every Python function entered and every C function called, however it was reached:
  through an alias, an import inside the function, a helper in another cell, a subclass of
  the reference, or `getattr` with a computed name.

The check cell's own calls of the reference (the expected values) do not count: no student
code is running then.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# short names a notebook uses for PyTorch's modules
_PREFIXES = (("torch.nn.functional.", "F."), ("torch._C._nn.", "F."),
             ("torch._C._special.special_", "torch.special."), ("torch._C._VariableFunctions.", "torch."),
             ("torch.nn.modules.", "nn."))
_KEEP_DUNDERS = {"__init__", "__call__", "__iter__", "__next__"}  # a student's class's dunders worth watching
_MODULE = "torch.nn.modules.module.Module"  # nn.Module's own methods are not the student's


@dataclass(frozen=True)
class Forbidden:
    """One thing an exercise must not call; `when` (Python functions only) tests the call's arguments."""

    target: Any
    name: str = ""
    when: Callable[[Mapping[str, Any]], bool] | None = None


def forbidden(target: Any, *, name: str = "",
              when: Callable[[Mapping[str, Any]], bool] | None = None) -> Forbidden:
    """`target` (a function, builtin, method or class), named `name` in messages; only the calls
    whose arguments (a dict, for Python functions) pass `when`, if given."""
    return Forbidden(target, name or display_name(target), when)


def display_name(obj: Any) -> str:
    """How a notebook writes `obj`: `F.layer_norm`, `torch.softmax`, `Tensor.softmax`, `nn.LayerNorm`, ..."""
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    objclass = getattr(obj, "__objclass__", None)
    if objclass is not None and objclass.__name__ == "TensorBase":
        return f"Tensor.{obj.__name__}"
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    if qualname.startswith("_VariableFunctionsClass."):  # torch.softmax and friends
        return f"torch.{obj.__name__}"
    dotted = f"{module}.{qualname}" if module else qualname
    for long, short in _PREFIXES:
        if dotted.startswith(long):
            tail = dotted[len(long):]
            if short == "nn.":  # nn.modules.normalization.LayerNorm -> nn.LayerNorm
                tail = tail.split(".", 1)[1] if "." in tail else tail
            return short + tail
    return dotted


def _functions(target: Any) -> Iterable[Any]:
    """The Python functions and builtins that calling `target` runs first."""
    if isinstance(target, type):
        for value in vars(target).values():
            if isinstance(value, (staticmethod, classmethod)):
                yield value.__func__
            elif isinstance(value, property):
                yield from (f for f in (value.fget, value.fset) if f is not None)
            elif callable(value) and not isinstance(value, type):
                yield value
        return
    yield getattr(target, "__func__", target)  # a bound method: its function


def _unwrap(fn: Any) -> Any:
    try:
        return inspect.unwrap(fn)  # past decorators such as torch.no_grad()
    except ValueError:
        return fn


class Watch:
    """Records the forbidden calls made while the student's object runs (see the module's doc)."""

    def __init__(self, forbid: Iterable[Any]):
        self._codes: dict[types.CodeType, Forbidden] = {}
        self._builtins: dict[str, list[tuple[Any, Forbidden]]] = {}  # by __name__
        for item in forbid:
            entry = item if isinstance(item, Forbidden) else forbidden(item)
            for fn in _functions(entry.target):
                self._add(_unwrap(fn), entry)
        self.found: dict[str, None] = {}  # names of the forbidden calls seen, in order
        self._depth = 0  # how many calls of the student's code are running, in all threads
        self._open: set[types.FrameType] = set()  # forbidden functions running now
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []
        self._previous: tuple[Any, Any] = (None, None)

    def _add(self, fn: Any, entry: Forbidden) -> None:
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            self._codes[code] = entry
        elif callable(fn) and getattr(fn, "__name__", None):
            self._builtins.setdefault(fn.__name__, []).append((fn, entry))

    # ------------------------------------------------------------ the profile hook

    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if not self._depth:
            return
        if event == "call":
            entry = self._codes.get(frame.f_code)
            if entry is not None and (entry.when is None or self._holds(entry, frame)):
                if not self._open:  # what a forbidden function calls in turn is its business
                    self.found.setdefault(entry.name)
                self._open.add(frame)
        elif event == "return":
            if self._open:
                self._open.discard(frame)
        elif event == "c_call" and not self._open:
            for fn, entry in self._builtins.get(getattr(arg, "__name__", ""), ()):
                if _same_builtin(arg, fn):
                    self.found.setdefault(entry.name)

    @staticmethod
    def _holds(entry: Forbidden, frame: types.FrameType) -> bool:
        try:
            return bool(entry.when(dict(frame.f_locals)))
        except Exception:  # noqa: BLE001 - a test that cannot be applied does not hold
            return False

    # ------------------------------------------------------------ the student's code

    def _enter(self) -> None:
        with self._lock:
            self._depth += 1

    def _leave(self) -> None:
        with self._lock:
            self._depth -= 1

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def student(*args: Any, **kwargs: Any) -> Any:
            self._enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._leave()

        return student

    def _watch_class(self, cls: type) -> None:
        seen: dict[str, Any] = {}
        for klass in cls.__mro__:
            if klass is object or f"{klass.__module__}.{klass.__qualname__}" == _MODULE:
                continue
            for attr, value in vars(klass).items():
                seen.setdefault(attr, value)
        for attr, value in seen.items():
            if attr.startswith("__") and attr not in _KEEP_DUNDERS:
                continue
            if isinstance(value, staticmethod):
                new: Any = staticmethod(self._wrap(value.__func__))
            elif isinstance(value, classmethod):
                new = classmethod(self._wrap(value.__func__))
            elif isinstance(value, types.FunctionType):
                new = self._wrap(value)
            else:
                continue
            original = cls.__dict__.get(attr, _MISSING)
            setattr(cls, attr, new)
            self._restore.append(functools.partial(_put_back, cls, attr, original))

    def _watch_name(self, namespace: dict[str, Any], name: str) -> None:
        obj = namespace.get(name, _MISSING)
        if obj is _MISSING:
            return
        if isinstance(obj, type):
            self._watch_class(obj)
        elif callable(obj):
            namespace[name] = self._wrap(obj)
            self._restore.append(functools.partial(namespace.__setitem__, name, obj))

    # ------------------------------------------------------------ start and stop

    def start(self, namespace: dict[str, Any], name: str) -> None:
        """Watch `namespace[name]` (the student's function or class) until `stop()`."""
        self._watch_name(namespace, name)
        self._previous = (sys.getprofile(), threading.getprofile())
        sys.setprofile(self._hook)
        threading.setprofile(self._hook)

    def stop(self) -> list[str]:
        """Put everything back; return the names of the forbidden calls seen."""
        sys.setprofile(self._previous[0])
        threading.setprofile(self._previous[1])
        while self._restore:
            self._restore.pop()()
        return list(self.found)


_MISSING = object()


def _put_back(cls: type, attr: str, original: Any) -> None:
    if original is _MISSING:
        delattr(cls, attr)
    else:
        setattr(cls, attr, original)


def _same_builtin(called: Any, forbidden_fn: Any) -> bool:
    """Whether the C function `called` (as the profiler reports it) is `forbidden_fn`."""
    if called is forbidden_fn:
        return True
    objclass = getattr(forbidden_fn, "__objclass__", None)
    if objclass is not None:  # a method such as Tensor.softmax, reported bound to its tensor
        return isinstance(getattr(called, "__self__", None), objclass)
    return (getattr(called, "__module__", None), getattr(called, "__qualname__", None)) == (
        getattr(forbidden_fn, "__module__", None), getattr(forbidden_fn, "__qualname__", None))
