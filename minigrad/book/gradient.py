"""The book's numerical gradient (``common/gradient.py``, chapter 4.3 – 4.4)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numerical_gradient"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-4) -> np.ndarray:
    """∂f/∂x by central differences, (f(x + h) − f(x − h)) / 2h, one element at a time.

    The book's h = 1e-4 (4.3.1): small enough for a good slope, large enough that float
    rounding does not swamp the difference. ``x`` is perturbed in place and restored, so ``f``
    may read it through another name (``TwoLayerNet.numerical_gradient`` passes a parameter
    and ``f`` ignores its argument, as the book's ``lambda W: net.loss(x, t)`` does).

    Args:
        f: maps x to a number.
        x: a float array of any shape, changed in place during the call.
        h: the step.

    Returns:
        An array of x's shape.

    >>> numerical_gradient(lambda x: float(np.sum(x ** 2)), np.array([3.0, 4.0])).round(6)
    array([6., 8.])
    """
    if x.dtype.kind != "f":
        raise TypeError(f"numerical_gradient: x must be a float array (it is moved by "
                        f"h={h}), got dtype {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)            # f(x + h)
        x[idx] = tmp_val - h
        fxh2 = f(x)            # f(x − h)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val       # restore
        it.iternext()
    return grad
