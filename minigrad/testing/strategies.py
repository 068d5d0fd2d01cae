"""Hypothesis strategies for testing ops: shapes, arrays away from kinks, conv and pool settings.

Each strategy draws inputs an op can be checked on: finite and bounded floats, values kept away
from an op's kinks (where the numerical gradient is meaningless), arrays without ties (for max
and pooling) and convolution/pooling settings whose output has at least one pixel.

Testing a new op takes a forward check against NumPy and a gradient check in float64:

>>> import numpy as np
>>> from hypothesis import given, settings
>>> from minigrad import Function, Tensor
>>> from minigrad.testing import arrays, gradcheck, shapes
>>> class Abs(Function):
...     '''y = |x|.    dL/dx = dL/dy · sign(x)'''
...     def forward(self, x):
...         self.x = x
...         return np.abs(x)
...     def backward(self, dy):
...         return dy * np.sign(self.x)
>>> @settings(max_examples=10, deadline=None)
... @given(x=arrays(shapes(), avoid=(0.0,), margin=0.01))
... def test_abs(x):
...     np.testing.assert_array_equal(Abs()(Tensor(x)).data, np.abs(x))
...     assert gradcheck(lambda t: Abs()(t), x)
>>> test_abs()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy

__all__ = ["shapes", "broadcastable_shapes", "arrays", "distinct_arrays", "conv_settings",
           "pool_settings"]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1,
           max_side: int = 5) -> SearchStrategy[tuple[int, ...]]:
    """Array shapes, e.g. ``()``, ``(3,)``, ``(1, 4, 2)``.

    Args:
        min_dims, max_dims: the number of axes.
        min_side, max_side: the size of each axis.

    Returns:
        A strategy of shape tuples.

    >>> from hypothesis import find
    >>> find(shapes(min_dims=2, max_dims=3), lambda shape: shape[-1] > 2)
    (1, 3)
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4,
                         min_side: int = 1,
                         max_side: int = 5) -> SearchStrategy[tuple[tuple[int, ...], ...]]:
    """Tuples of shapes that broadcast together, with missing leading axes and size-1 axes.

    Args:
        num_shapes: how many shapes in each tuple.
        min_dims, max_dims, min_side, max_side: as for :func:`shapes`.

    Returns:
        A strategy of ``num_shapes``-tuples of shapes.

    >>> from hypothesis import find
    >>> find(broadcastable_shapes(), lambda s: len(s[0]) == 2 and len(s[1]) == 1)
    ((1, 1), (1,))
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda drawn: drawn.input_shapes)


def _allowed_intervals(low: float, high: float, avoid: Any,
                       margin: float) -> list[tuple[float, float]]:
    """[low, high] minus the open intervals (k − margin, k + margin) around each kink k."""
    intervals = [(float(low), float(high))]
    for k in sorted(float(k) for k in avoid):
        remaining = []
        for a, b in intervals:
            if k + margin <= a or k - margin >= b:
                remaining.append((a, b))
                continue
            if a <= k - margin:
                remaining.append((a, k - margin))
            if k + margin <= b:
                remaining.append((k + margin, b))
        intervals = remaining
    return intervals


def _endpoint(value: float, dtype: np.dtype, towards: float, avoid: tuple[float, ...],
              margin: float) -> float:
    """``value`` as a number of ``dtype``, moved towards ``towards`` (into its interval) until
    it is at least ``margin`` from every kink also after rounding (−1 + 0.2 is 0.1999… from −1).
    """
    v = dtype.type(value)
    step = dtype.type(towards)
    while ((v < value and towards > value) or (v > value and towards < value)
           or any(abs(float(v) - k) < margin for k in avoid)):
        v = np.nextafter(v, step)
    return float(v)


def _floats_between(a: float, b: float, dtype: np.dtype) -> SearchStrategy[float]:
    return st.floats(min_value=a, max_value=b, width=8 * dtype.itemsize,
                     allow_nan=False, allow_infinity=False, allow_subnormal=False)


def arrays(shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]], low: float = -3.0,
           high: float = 3.0, dtype: Any = np.float64, avoid: Any = (),
           margin: float = 0.1) -> SearchStrategy[np.ndarray]:
    """Finite float arrays in [low, high] with every element at least ``margin`` from ``avoid``.

    Elements are drawn from [low, high] with the open intervals (k − margin, k + margin) around
    each kink k taken out, so no array is ever rejected. Use it to keep ReLU inputs off 0, or
    ``abs`` and clipping ops off their corners.

    Args:
        shape: a shape, or a strategy of shapes (e.g. :func:`shapes`).
        low, high: bounds of the values.
        dtype: a float dtype (float64 for gradient checks).
        avoid: points the values must stay away from.
        margin: the smallest allowed distance to each point in ``avoid``.

    Returns:
        A strategy of ndarrays.

    Raises:
        ValueError: when ``avoid`` and ``margin`` leave no value in [low, high].

    >>> from hypothesis import find
    >>> x = find(arrays((2, 3), avoid=(0.0,), margin=0.5), lambda x: x.min() < 0 < x.max())
    >>> x.shape, x.dtype, bool(np.all(np.abs(x) >= 0.5))
    ((2, 3), dtype('float64'), True)
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"arrays: dtype must be a float dtype, got {dtype}")
    if not low <= high:
        raise ValueError(f"arrays: low={low} must not exceed high={high}")
    if margin < 0:
        raise ValueError(f"arrays: margin must be >= 0, got {margin}")
    avoid = tuple(float(k) for k in avoid)
    parts = []
    for a, b in _allowed_intervals(low, high, avoid, margin):
        a = _endpoint(a, dtype, np.inf, avoid, margin)
        b = _endpoint(b, dtype, -np.inf, avoid, margin)
        if a <= b:
            parts.append(_floats_between(a, b, dtype))
    if not parts:
        raise ValueError(f"arrays: no value in [{low}, {high}] is at least {margin} away from "
                         f"every point of avoid={tuple(avoid)}")
    return hnp.arrays(dtype, shape, elements=st.one_of(parts))


def distinct_arrays(shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]], low: float = -3.0,
                    high: float = 3.0, min_gap: float = 0.05,
                    dtype: Any = np.float64) -> SearchStrategy[np.ndarray]:
    """Float arrays in [low, high] with no two elements closer than ``min_gap``.

    For max and pooling, whose gradient is not defined at ties. [low, high] is cut into one slot
    per element; each value sits in its own slot, jittered within it, and the slots are shuffled
    over the array (a drawn permutation), so every ordering of the elements can occur.

    Args:
        shape: a shape, or a strategy of shapes.
        low, high: bounds of the values.
        min_gap: the smallest distance between two elements.
        dtype: a float dtype.

    Returns:
        A strategy of ndarrays.

    Raises:
        ValueError: when [low, high] is too short to hold the elements ``min_gap`` apart.

    >>> from hypothesis import find
    >>> find(distinct_arrays((2, 3), min_gap=0.5), lambda x: True)
    array([[-3., -2., -1.],
           [ 0.,  1.,  2.]])
    """
    if isinstance(shape, SearchStrategy):
        return shape.flatmap(lambda s: distinct_arrays(s, low, high, min_gap, dtype))
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"distinct_arrays: dtype must be a float dtype, got {dtype}")
    shape = tuple(int(n) for n in shape)
    size = int(np.prod(shape))
    # Casting to dtype moves each value by at most half an ulp: keep a few ulps in hand.
    gap = min_gap + 4 * float(np.finfo(dtype).eps) * max(abs(low), abs(high), 1.0)
    slot = (high - low) / max(size, 1)
    if slot < gap:
        raise ValueError(f"distinct_arrays: {size} elements (shape {shape}) do not fit in "
                         f"[{low}, {high}] with min_gap={min_gap}; widen the range or shrink "
                         f"the shape")
    jitter = st.lists(st.floats(0.0, slot - gap, allow_nan=False, allow_subnormal=False),
                      min_size=size, max_size=size)

    def build(drawn: tuple[list[int], list[float]]) -> np.ndarray:
        order, offsets = drawn
        values = low + slot * np.arange(size) + np.asarray(offsets, dtype=np.float64)
        return values[np.asarray(order, dtype=np.intp)].astype(dtype).reshape(shape)

    return st.tuples(st.permutations(range(size)), jitter).map(build)


def _pick_side(draw: Any, low: int, high: int) -> int:
    """An int in [low, high] that is often one of the two ends (the edge cases of a window)."""
    return draw(st.one_of(st.sampled_from(sorted({low, high})), st.integers(low, high)))


@st.composite
def conv_settings(draw: Any, max_batch: int = 3, max_channels: int = 3, max_size: int = 7,
                  max_filters: int = 4, max_kernel: int = 4, max_stride: int = 3,
                  max_padding: int = 2) -> dict[str, int]:
    """Settings of a 2-D convolution whose output has at least one pixel.

    The kernel is drawn first and the input is at least as large as the kernel once padded,
    so ``OH = 1 + (H + 2·PH − FH) // SH ≥ 1`` (and likewise ``OW``). The ends of each range are
    drawn often: batch 1, 1×1 kernels, kernels that cover the whole padded input, strides
    larger than the kernel, and non-square kernels all occur in a few dozen examples.

    Args:
        max_batch, max_channels, max_size, max_filters, max_kernel, max_stride, max_padding:
            upper bounds of N, C, H and W, FN, FH and FW, SH and SW, PH and PW.

    Returns:
        A strategy of dicts with keys N, C, H, W, FN, FH, FW, SH, SW, PH, PW, OH, OW.

    >>> from hypothesis import find
    >>> s = find(conv_settings(), lambda s: s["FH"] == 3 and s["PH"] == 1)
    >>> s["H"], s["FH"], s["PH"], s["SH"], s["OH"]
    (1, 3, 1, 1, 1)
    """
    n = _pick_side(draw, 1, max_batch)
    c = _pick_side(draw, 1, max_channels)
    fn = _pick_side(draw, 1, max_filters)
    settings = {"N": n, "C": c, "FN": fn}
    for size, kernel, stride, pad, out in (("H", "FH", "SH", "PH", "OH"),
                                           ("W", "FW", "SW", "PW", "OW")):
        settings[kernel] = k = _pick_side(draw, 1, max_kernel)
        settings[pad] = p = _pick_side(draw, 0, max_padding)
        # The smallest input makes the kernel cover the padded input exactly.
        settings[size] = h = _pick_side(draw, max(1, k - 2 * p), max(max_size, k - 2 * p, 1))
        settings[stride] = s = _pick_side(draw, 1, max_stride)
        settings[out] = 1 + (h + 2 * p - k) // s
    return {key: settings[key] for key in _CONV_KEYS}


_CONV_KEYS = ("N", "C", "H", "W", "FN", "FH", "FW", "SH", "SW", "PH", "PW", "OH", "OW")
_POOL_KEYS = ("N", "C", "H", "W", "KH", "KW", "SH", "SW", "PH", "PW", "OH", "OW")


@st.composite
def pool_settings(draw: Any, max_batch: int = 3, max_channels: int = 3, max_size: int = 7,
                  max_kernel: int = 4, max_stride: int = 3) -> dict[str, int]:
    """Settings of a 2-D pooling whose output has at least one pixel.

    Padding is at most half the window (``PH ≤ KH // 2``, as PyTorch requires), so every window
    holds at least one input element; ``OH = 1 + (H + 2·PH − KH) // SH ≥ 1``.

    Args:
        max_batch, max_channels, max_size, max_kernel, max_stride: upper bounds of N, C, H and
            W, KH and KW, SH and SW.

    Returns:
        A strategy of dicts with keys N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW.

    >>> from hypothesis import find
    >>> s = find(pool_settings(), lambda s: s["KH"] == 2 and s["PH"] == 1)
    >>> s["H"], s["KH"], s["PH"], s["SH"], s["OH"]
    (1, 2, 1, 1, 2)
    """
    settings = {"N": _pick_side(draw, 1, max_batch), "C": _pick_side(draw, 1, max_channels)}
    for size, kernel, stride, pad, out in (("H", "KH", "SH", "PH", "OH"),
                                           ("W", "KW", "SW", "PW", "OW")):
        settings[kernel] = k = _pick_side(draw, 1, max_kernel)
        settings[pad] = p = _pick_side(draw, 0, k // 2)
        settings[size] = h = _pick_side(draw, max(1, k - 2 * p), max(max_size, k - 2 * p, 1))
        settings[stride] = s = _pick_side(draw, 1, max_stride)
        settings[out] = 1 + (h + 2 * p - k) // s
    return {key: settings[key] for key in _POOL_KEYS}
