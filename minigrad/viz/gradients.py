"""The gradients that flowed along each edge of a graph during backward, for ``draw_graph``."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

__all__ = ["GradRecord", "record_grads"]


class GradRecord:
    """Norms of the gradients that flowed along each edge of the graph during backward.

    Use it as a context manager around ``backward()`` and pass it to ``draw_graph`` as
    ``show_grads=record``: every edge is then coloured by the gradient that actually flowed along
    it, including edges between intermediate tensors, whose gradients backward does not keep.
    Only norms (and whether any value was NaN/inf) are kept, per op instance, with weak
    references: the record does not keep graphs alive. It records the backward passes run by
    the thread that opened it.

    >>> import minigrad
    >>> x = minigrad.Tensor([3.0, 4.0], requires_grad=True)
    >>> y = (x * 2).sum()
    >>> with record_grads() as record:
    ...     y.backward()
    >>> record.output_grad(y.creator)
    (1.0, False)
    """

    def __init__(self) -> None:
        self._records: Any = weakref.WeakKeyDictionary()
        self._active = False
        self._thread = 0  # the thread whose backward passes are recorded

    def __enter__(self) -> GradRecord:
        from minigrad import function

        if self._active:
            raise RuntimeError("record_grads: this record is already active")
        self._active = True
        self._thread = threading.get_ident()
        function._observers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        from minigrad import function

        function.remove_observer(self)
        self._active = False

    def forward(self, fn: Any, inputs: Any, output: Any, seconds: float) -> None:
        pass

    def backward(self, fn: Any, dy: Any, grads: Any, seconds: float) -> None:
        if threading.get_ident() != self._thread:  # another thread's backward pass
            return
        try:
            self._records[fn] = (_norm(dy), tuple(None if g is None else _norm(g) for g in grads))
        except TypeError:  # an op without weak references: not recorded
            pass

    def output_grad(self, fn: Any) -> tuple[float, bool] | None:
        """(‖dL/d(output)‖, has NaN/inf) of op ``fn``, or None if its backward was not seen."""
        record = self._records.get(fn)
        return None if record is None else record[0]

    def input_grad(self, fn: Any, i: int) -> tuple[float, bool] | None:
        """(‖gradient ``fn`` sent to input i‖, has NaN/inf), or None (no gradient, or unseen)."""
        record = self._records.get(fn)
        return None if record is None else record[1][i]

    def __contains__(self, fn: Any) -> bool:
        return fn in self._records


def record_grads() -> GradRecord:
    """A :class:`GradRecord` to use around ``backward()`` (``with record_grads() as rec:``)."""
    return GradRecord()


def _norm(array: Any) -> tuple[float, bool]:
    """(Euclidean norm computed in float64, whether any value is NaN or infinite)."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc":
        a = a.astype(np.float64)
    bad = not bool(np.isfinite(a).all())
    if bad:
        finite = a[np.isfinite(a)]
        value = float(np.linalg.norm(finite.astype(np.float64, copy=False))) if finite.size else 0.0
    else:
        value = float(np.linalg.norm(a.ravel().astype(np.float64, copy=False)))
    return value, bad
