"""Anomaly mode: stop at the first op whose forward or backward makes a NaN or an infinity.

Inside ``detect_anomaly()`` every op's output is checked after its ``forward`` and every gradient
it returns is checked after its ``backward``. The first non-finite value raises
:class:`AnomalyError`, which names the op, the array (its output, or its gradient for input i),
the shape, how many values are NaN or infinite, and the line of your code that created the op.

    with minigrad.detect_anomaly():
        loss = model.loss(x, t)
        loss.backward()

It works through ``minigrad.function._observers``: outside the block nothing is checked and
nothing is recorded. Inside it every op also looks up its caller's frame, so keep it for
debugging.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import minigrad
from minigrad import function

__all__ = ["AnomalyError", "detect_anomaly"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(minigrad.__file__)) + os.sep


@dataclass(frozen=True)
class _Location:
    filename: str
    lineno: int
    function: str

    def describe(self) -> str:
        source = linecache.getline(self.filename, self.lineno).strip()
        text = f"{self.filename}:{self.lineno} in {self.function}"
        return f"{text}\n    {source}" if source else text


def _user_location() -> _Location | None:
    """The innermost frame of the call stack outside the minigrad package."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return _Location(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


def _count_nonfinite(array: Any) -> tuple[int, int, int] | None:
    """(non-finite, NaN, ±inf) counts of a float array with any non-finite value, else None."""
    if type(array) is not np.ndarray:
        if not isinstance(array, (np.ndarray, np.generic)):
            return None
        array = np.asarray(array)
    if array.dtype.kind not in "fc":
        return None
    finite = np.isfinite(array)
    if finite.all():
        return None
    bad = int(array.size - np.count_nonzero(finite))
    nan = int(np.count_nonzero(np.isnan(array)))
    return bad, nan, bad - nan


def _describe(array: Any, counts: tuple[int, int, int]) -> str:
    """"3 non-finite values (1 NaN, 2 -inf)"."""
    bad, nan, inf = counts
    parts = [f"{nan} NaN"] if nan else []
    if inf:
        negative = int(np.count_nonzero(np.isneginf(np.real(array))))
        if inf - negative:
            parts.append(f"{inf - negative} +inf")
        if negative:
            parts.append(f"{negative} -inf")
    plural = "s" if bad != 1 else ""
    return f"{bad} non-finite value{plural} ({', '.join(parts)})"


class AnomalyError(RuntimeError):
    """A NaN or infinity first appeared in an op's output or gradient (see ``detect_anomaly``).

    Attributes:
        op: the op class name.
        phase: "forward" or "backward".
        where: "output", or "gradient for input i".
        shape: shape of that array.
        count, nan, inf: how many values are non-finite, NaN, infinite.
        location: "file:line in function" of the code that created the op (None if unknown).
        upstream: True when the op's inputs (forward) or incoming gradient (backward) were
            already non-finite, so the cause lies before this op.
    """

    def __init__(self, message: str, *, op: str, phase: str, where: str,
                 shape: tuple[int, ...], counts: tuple[int, int, int],
                 location: _Location | None, upstream: bool) -> None:
        super().__init__(message)
        self.op, self.phase, self.where, self.shape = op, phase, where, shape
        self.count, self.nan, self.inf = counts
        self.location = (None if location is None
                         else f"{location.filename}:{location.lineno} in {location.function}")
        self.upstream = upstream


def _origin(fn: Any, location: _Location | None) -> str:
    if location is None:
        text = ("\nThe op was created outside detect_anomaly(), so its line is unknown: "
                "run the forward pass inside the block too.")
    else:
        text = f"\nThe op was created at {location.describe()}"
    scope = getattr(fn, "scope", ())
    if scope:
        names = [getattr(m, "name", "") or type(m).__name__ for m in scope]
        text += f"\n(inside module {names[-1]}: {type(scope[-1]).__name__})"
    return text


class _AnomalyObserver:
    """Checks every forward output and backward gradient; remembers where each op was made."""

    def __init__(self) -> None:
        self.locations: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def forward(self, fn: Any, inputs: Any, output: Any, seconds: float) -> None:
        if not _state.depth:  # a thread without a detect_anomaly() block
            return
        location = _user_location()
        counts = _count_nonfinite(output)
        if counts is not None:
            op = type(fn).__name__
            shape = np.shape(output)
            bad_inputs = []
            for i, x in enumerate(inputs):
                c = _count_nonfinite(x)
                if c is not None:
                    bad_inputs.append(f"input {i} (shape {np.shape(x)}) has {_describe(x, c)}")
            if bad_inputs:
                message = (f"detect_anomaly: {op} returned {_describe(output, counts)} in its "
                           f"output, shape {shape}, but its inputs already had non-finite values"
                           f" ({'; '.join(bad_inputs)}): they come from before this op, from "
                           f"the data or from code run outside detect_anomaly()")
            else:
                message = (f"detect_anomaly: {op} produced {_describe(output, counts)} in its "
                           f"output, shape {shape}, from finite inputs")
            raise AnomalyError(message + _origin(fn, location), op=op, phase="forward",
                               where="output", shape=shape, counts=counts, location=location,
                               upstream=bool(bad_inputs))
        if fn.output is not None:  # recorded on the tape: its backward may run later
            try:
                self.locations[fn] = location
            except TypeError:
                pass

    def backward(self, fn: Any, dy: Any, grads: Any, seconds: float) -> None:
        if not _state.depth:
            return
        op = type(fn).__name__
        location = self.locations.get(fn)
        counts = _count_nonfinite(dy)
        if counts is not None:
            shape = np.shape(dy)
            message = (f"detect_anomaly: the gradient arriving at the output of {op} "
                       f"(dL/d(output), shape {shape}) already has {_describe(dy, counts)}: "
                       f"it was given to backward() or is the sum of the gradients of several "
                       f"uses of this output")
            raise AnomalyError(message + _origin(fn, location), op=op, phase="backward",
                               where="incoming gradient", shape=shape, counts=counts,
                               location=location, upstream=True)
        for i, g in enumerate(grads):
            counts = _count_nonfinite(g)
            if counts is not None:
                shape = np.shape(g)
                message = (f"detect_anomaly: the backward of {op} produced "
                           f"{_describe(g, counts)} in the gradient for input {i}, shape "
                           f"{shape}, from a finite incoming gradient dL/d(output)")
                raise AnomalyError(message + _origin(fn, location), op=op, phase="backward",
                                   where=f"gradient for input {i}", shape=shape, counts=counts,
                                   location=location, upstream=False)


class _AnomalyState(threading.local):
    """How many detect_anomaly() blocks are open in this thread: anomaly mode is per thread."""

    depth = 0


_observer = _AnomalyObserver()
_state = _AnomalyState()
_threads = 0  # threads with an open block; the observer is registered while there are any
_threads_lock = threading.Lock()


class detect_anomaly:  # noqa: N801  (used like torch.autograd.detect_anomaly)
    """Raise :class:`AnomalyError` at the first op that makes a NaN or an infinity.

    A context manager, or a decorator: ``@detect_anomaly()``. Blocks may be nested. Anomaly
    mode belongs to the thread that opens the block: ops run by other threads are not checked.

    >>> import numpy as np, minigrad
    >>> x = minigrad.Tensor(np.array([1.0, 0.0]), requires_grad=True)
    >>> with detect_anomaly(), np.errstate(divide="ignore"):
    ...     y = x.log()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    minigrad.anomaly.AnomalyError: detect_anomaly: Log produced 1 non-finite value (1 -inf)...
    """

    def __enter__(self) -> detect_anomaly:
        global _threads
        if _state.depth == 0:
            with _threads_lock:
                if _threads == 0:
                    function._observers.append(_observer)
                _threads += 1
        _state.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _threads
        _state.depth -= 1
        if _state.depth == 0:
            with _threads_lock:
                _threads -= 1
                if _threads == 0:
                    function.remove_observer(_observer)

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return func(*args, **kwargs)

        return wrapper


def is_anomaly_enabled() -> bool:
    """True inside a ``detect_anomaly()`` block of this thread."""
    return _state.depth > 0
