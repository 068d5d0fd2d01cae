"""Inverted dropout, drawing its masks from one module-level random generator."""

from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.parallel import empty_like

# Every dropout mask is drawn from this generator unless a call passes its own; seed it with
# ``manual_seed`` for runs that repeat exactly.
_generator = np.random.default_rng()


def manual_seed(seed) -> None:
    """Reseed the generator that dropout masks are drawn from.

    Args:
        seed: anything ``np.random.default_rng`` accepts (an int, a SeedSequence, ...).

    >>> manual_seed(0)
    >>> a = Dropout(0.5)(np.ones(4))
    >>> manual_seed(0)
    >>> b = Dropout(0.5)(np.ones(4))
    >>> bool((a.data == b.data).all())
    True
    """
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator dropout masks are drawn from (the one ``manual_seed`` reseeds)."""
    return _generator


class Dropout(Function):
    """Inverted dropout: zero each element with probability p, scale the kept ones by 1/(1−p).

    Forward (training): y = x ⊙ m / (1 − p), m[k] ~ Bernoulli(1 − p) drawn independently;
    the expected value of y is x, so nothing needs rescaling at test time.
    Backward: dL/dx = dL/dy ⊙ m / (1 − p), with the same mask m.
    Not training: y = x (the same array) and dL/dx = dL/dy.

    Shapes: x (…) → y of the same shape. Linear given m: no kinks.
    Saved: m / (1 − p) as an array of x's dtype (one multiply per pass).

    Layout: m is drawn in the logical (C) order of x's shape, so one seed gives one mask
    whatever x's memory layout; m / (1 − p), y and dL/dx are laid out like x (a channels-last
    x gives channels-last arrays, see ``parallel.empty_like``): the multiplications then run
    over two arrays in one memory order, and only the cast of the boolean mask to floats reads
    across layouts.

    Args (settings):
        p: the drop probability, in [0, 1).
        training: drop (True) or pass x through (False).
        rng: a ``np.random.Generator``; default: the module's, reseeded by ``manual_seed``.
    """

    def __init__(self, p=0.5, training=True, rng=None):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"dropout: p must be a number in [0, 1), got {p!r}")
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got p={p}")
        self.p = float(p)
        self.training = bool(training)
        self.rng = rng

    def forward(self, x):
        x = np.asarray(x)
        if not self.training:
            return x
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        rng = self.rng if self.rng is not None else _generator
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        keep = rng.random(x.shape, dtype=draw_dtype) >= self.p
        self.scaled_mask = np.multiply(keep, dtype.type(1 / (1 - self.p)),
                                       out=empty_like(x, dtype))
        return np.multiply(x, self.scaled_mask,
                           out=empty_like(self.scaled_mask, np.result_type(x, dtype)))

    def backward(self, dy):
        if not self.training:
            return dy
        m = self.scaled_mask
        return np.multiply(dy, m, out=empty_like(m, np.result_type(dy, m)))

    def backward_graph(self, dy):
        if not self.training:
            return dy
        return dy * self.scaled_mask         # the same mask
