"""max_pool2d with a stride other than the kernel (overlapping windows, as in 3×3 stride-2
pooling): the winners kept by forward and scattered by backward, held to the general path bit
for bit, in either layout and on any number of threads; ties, −∞ and NaN routed as documented."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from split_threads import threads

import minigrad.functional as F
from minigrad import Tensor
from minigrad.ops import pooling
from minigrad.ops.pooling import _offset_slices, _offsets_argmax, _reduce_argmax
from minigrad.testing import pool_settings

# Few values, so that windows tie (−0.0 beside 0.0 too) and some hold nothing but −∞.
TIE_VALUES = [-np.inf, -1.0, -0.0, 0.0, 2.0]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def to_channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@st.composite
def other_stride_cases(draw, values=TIE_VALUES, dtype=np.float64):
    """Settings with a stride other than the kernel, x of few values, and a random dL/dy."""
    s = draw(pool_settings())
    if (s["SH"], s["SW"]) == (s["KH"], s["KW"]):
        s["SW"] = s["KW"] + 1
        s["OW"] = 1 + (s["W"] + 2 * s["PW"] - s["KW"]) // s["SW"]
    x = draw(hnp.arrays(dtype, (s["N"], s["C"], s["H"], s["W"]), elements=st.sampled_from(values)))
    dy = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(
        (s["N"], s["C"], s["OH"], s["OW"])).astype(dtype)
    return s, x, dy


@contextlib.contextmanager
def add_at(fast: bool):
    """The scatter by np.add.at (NumPy 1.25 on) or by np.bincount (the path for older ones)."""
    old = pooling._FAST_ADD_AT
    pooling._FAST_ADD_AT = fast
    try:
        yield
    finally:
        pooling._FAST_ADD_AT = old


def pool(x, s, dy, **options):
    """y, dL/dx and whether the general path ran, for max_pool2d with the settings s."""
    t = Tensor(x, requires_grad=True)
    y = F.max_pool2d(t, (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"]), **options)
    y = y[0] if options.get("return_indices") else y
    general = y.creator.general
    y.backward(dy)
    return y.data, t.grad, general


@pytest.mark.parametrize("fast_add_at", [True, False])
@given(case=other_stride_cases(), channels_last=st.booleans())
def test_other_stride_path_equals_the_general_path_bit_for_bit(fast_add_at, case,
                                                               channels_last):
    # The general path (return_indices) adds dL/dy at its winners by np.bincount in float64,
    # window by window in order (n, c, oh, ow); the other-stride path by np.add.at (or, before
    # NumPy 1.25, np.bincount) in the same order: in float64 the same sums, so the same bits.
    s, x, dy = case
    xl = to_channels_last(x) if channels_last else x
    with add_at(fast_add_at):
        y, dx, general = pool(xl, s, dy)
    y_plain, dx_plain, plain_general = pool(x, s, dy, return_indices=True)
    assert not general and plain_general
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(dx.view(np.uint64), dx_plain.view(np.uint64))


@pytest.mark.parametrize("fast_add_at", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=other_stride_cases(values=[-1.0, 0.0, 0.5, 2.0]))
def test_other_stride_path_gives_the_same_bits_on_channels_last_and_two_threads(
        fast_add_at, dtype, case):
    s, x, dy = case
    x, dy = x.astype(dtype), dy.astype(dtype)
    with add_at(fast_add_at), threads(1):
        y, dx, _ = pool(x, s, dy)
    for n in (1, 2):
        with add_at(fast_add_at), threads(n):
            y_cl, dx_cl, _ = pool(to_channels_last(x), s, to_channels_last(dy))
            y2, dx2, _ = pool(x, s, dy)
        for got in ((y_cl, dx_cl), (y2, dx2)):
            np.testing.assert_array_equal(bits(got[0]), bits(y))
            np.testing.assert_array_equal(bits(got[1]), bits(dx))
    assert dx_cl.transpose(0, 2, 3, 1).flags.c_contiguous and dx.flags.c_contiguous


@given(data=st.data(), channels_last=st.booleans())
def test_offsets_argmax_equals_reduce_argmax_over_the_padded_views(data, channels_last):
    s = data.draw(pool_settings(), label="settings")
    x = data.draw(hnp.arrays(np.float64, (s["N"], s["C"], s["H"], s["W"]),
                             elements=st.sampled_from(TIE_VALUES + [np.inf, np.nan])), label="x")
    kernel, stride, padding = (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])
    xp = np.pad(x, ((0, 0), (0, 0), (s["PH"],) * 2, (s["PW"],) * 2), constant_values=-np.inf)
    views = [xp[index] for index in _offset_slices(kernel, stride, (s["OH"], s["OW"]))]
    want_y, want_index = _reduce_argmax(views)
    if channels_last:
        x = to_channels_last(x)
    y, index = np.empty_like(want_y), np.empty(want_y.shape, np.uint8)
    _offsets_argmax(x, kernel, stride, padding, -np.inf, out=y, index=index)
    np.testing.assert_array_equal(bits(y), bits(want_y))
    np.testing.assert_array_equal(index, want_index)


def test_other_stride_dy_reaches_only_the_winners():
    # Infinite or NaN dL/dy lands on the window's winner alone, as on the tiled path and in
    # PyTorch; every other cell of the window gets an exact 0.
    x = np.arange(49.0).reshape(1, 1, 7, 7)
    dy = np.array([[[[np.inf, 1.0, np.nan], [2.0, -np.inf, 3.0], [4.0, 5.0, 6.0]]]])
    _, dx, _ = pool(x, dict(KH=3, KW=3, SH=2, SW=2, PH=0, PW=0), dy)
    want = np.zeros_like(x)
    want[0, 0, 2::2, 2::2] = dy[0, 0]             # each window's maximum is its last cell
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("padding", [0, 1])
def test_other_stride_nan_window_sends_its_gradient_to_its_last_cell(padding):
    # A window holding NaN pools to NaN; no comparison with NaN holds, so its gradient goes to
    # its last cell, or nowhere when that cell is padding (the window (2, 2) of padding 1).
    x = np.arange(25.0).reshape(1, 1, 5, 5)[:, :, ::-1].copy()    # maxima at the first rows
    x[0, 0, 1, 1] = x[0, 0, 4, 4] = np.nan
    s = dict(KH=3, KW=3, SH=2, SW=2, PH=padding, PW=padding)
    OH = 1 + (5 + 2 * padding - 3) // 2
    dy = np.arange(1.0, OH * OH + 1).reshape(1, 1, OH, OH)
    y, dx, _ = pool(x, s, dy)
    want = np.zeros_like(x)
    for oh in range(OH):
        for ow in range(OH):
            rows = range(oh * 2 - padding, oh * 2 - padding + 3)
            cols = range(ow * 2 - padding, ow * 2 - padding + 3)
            cells = [(h, w) for h in rows for w in cols]
            inside = [(h, w) for h, w in cells if 0 <= h < 5 and 0 <= w < 5]
            if any(np.isnan(x[0, 0][c]) for c in inside):
                assert np.isnan(y[0, 0, oh, ow])
                h, w = cells[-1]
                if (h, w) in inside:
                    want[0, 0, h, w] += dy[0, 0, oh, ow]
            else:
                h, w = max(inside, key=lambda c: (x[0, 0][c], -c[0], -c[1]))
                want[0, 0, h, w] += dy[0, 0, oh, ow]
    np.testing.assert_array_equal(dx, want)
