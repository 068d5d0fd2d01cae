"""The hypothesis strategies keep their promises."""

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from minigrad.testing import (
    arrays,
    broadcastable_shapes,
    conv_settings,
    distinct_arrays,
    pool_settings,
    shapes,
)


@given(data=st.data(), bounds=st.tuples(st.integers(0, 3), st.integers(0, 3),
                                        st.integers(1, 3), st.integers(0, 3)))
def test_shapes_respect_their_bounds(data, bounds):
    min_dims, extra_dims, min_side, extra_side = bounds
    shape = data.draw(shapes(min_dims, min_dims + extra_dims, min_side, min_side + extra_side))
    assert min_dims <= len(shape) <= min_dims + extra_dims
    assert all(min_side <= n <= min_side + extra_side for n in shape)


@given(data=st.data(), num_shapes=st.integers(1, 4))
def test_broadcastable_shapes_broadcast(data, num_shapes):
    drawn = data.draw(broadcastable_shapes(num_shapes=num_shapes, max_dims=3, max_side=4))
    assert len(drawn) == num_shapes
    np.broadcast_shapes(*drawn)  # raises if they do not broadcast
    assert all(len(s) <= 3 and all(1 <= n <= 4 for n in s) for s in drawn)


def test_broadcastable_shapes_include_missing_and_size_1_axes():
    find(broadcastable_shapes(), lambda s: len(s[0]) != len(s[1]))
    find(broadcastable_shapes(), lambda s: any(
        m == 1 < n for a, b in [s, s[::-1]] for m, n in zip(a[::-1], b[::-1])))


AVOID_CASES = [
    ((), 0.1),
    ((0.0,), 0.1),
    ((0.0,), 1.0),
    ((-1.0, 0.0, 1.0), 0.2),
    ((-3.0, 3.0), 0.5),  # kinks at the ends of the range
    ((0.05, -0.05), 0.1),  # overlapping exclusion zones
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("avoid, margin", AVOID_CASES)
@given(data=st.data())
def test_arrays_are_finite_bounded_and_away_from_kinks(data, avoid, margin, dtype):
    shape = data.draw(shapes(max_dims=3))
    x = data.draw(arrays(shape, low=-3.0, high=3.0, dtype=dtype, avoid=avoid, margin=margin))
    assert x.shape == shape and x.dtype == dtype
    assert np.all(np.isfinite(x)) and np.all((-3.0 <= x) & (x <= 3.0))
    for k in avoid:
        assert np.all(np.abs(x.astype(np.float64) - k) >= margin)


@given(x=arrays(shapes(min_dims=2, max_dims=2), low=0.5, high=2.0))
def test_arrays_take_a_shape_strategy(x):
    assert x.ndim == 2 and x.min() >= 0.5 and x.max() <= 2.0


@pytest.mark.parametrize("kwargs, pattern", [
    ({"avoid": (0.0,), "margin": 5.0}, "no value"),
    ({"low": 1.0, "high": 0.0}, "low=1.0 must not exceed high=0.0"),
    ({"dtype": np.int64}, "float dtype"),
    ({"margin": -0.1}, "margin"),
])
def test_arrays_reject_impossible_requests(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        arrays((2,), **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("min_gap", [0.05, 0.2])
@given(data=st.data())
def test_distinct_arrays_keep_the_gap(data, min_gap, dtype):
    shape = data.draw(shapes(max_dims=3, max_side=4))
    # 64 elements at most: 0.2 apart they need a range of 12.8
    x = data.draw(distinct_arrays(shape, low=-7.0, high=7.0, min_gap=min_gap, dtype=dtype))
    assert x.shape == shape and x.dtype == dtype
    assert np.all((-7.0 <= x) & (x <= 7.0))
    if x.size > 1:
        assert np.diff(np.sort(x.astype(np.float64), axis=None)).min() >= min_gap


def test_distinct_arrays_draw_every_order():
    """The permutation is drawn: the largest element can be anywhere."""
    for position in range(4):
        find(distinct_arrays((4,)), lambda x, p=position: int(np.argmax(x)) == p)


def test_distinct_arrays_that_cannot_fit_are_an_error():
    with pytest.raises(ValueError, match=r"do not fit.*min_gap=0.5"):
        distinct_arrays((4, 4), low=0.0, high=1.0, min_gap=0.5)


def out_size(size, kernel, stride, pad):
    return 1 + (size + 2 * pad - kernel) // stride


@given(s=conv_settings())
def test_conv_settings_give_an_output(s):
    assert s["OH"] == out_size(s["H"], s["FH"], s["SH"], s["PH"]) >= 1
    assert s["OW"] == out_size(s["W"], s["FW"], s["SW"], s["PW"]) >= 1
    assert 1 <= s["N"] <= 3 and 1 <= s["C"] <= 3 and 1 <= s["FN"] <= 4
    assert 1 <= s["FH"] <= 4 and 1 <= s["FW"] <= 4 and 1 <= s["SH"] <= 3
    assert 0 <= s["PH"] <= 2 and 0 <= s["PW"] <= 2 and s["H"] <= 7 and s["W"] <= 7
    assert set(s) == {"N", "C", "H", "W", "FN", "FH", "FW", "SH", "SW", "PH", "PW", "OH", "OW"}


@given(s=conv_settings(max_batch=1, max_channels=1, max_size=3, max_filters=1, max_kernel=2,
                       max_stride=1, max_padding=0))
def test_conv_settings_respect_smaller_bounds(s):
    assert (s["N"], s["C"], s["FN"], s["SH"], s["SW"], s["PH"], s["PW"]) == (1, 1, 1, 1, 1, 0, 0)
    assert s["FH"] <= 2 and s["H"] <= 3 and s["OH"] >= 1


@pytest.mark.parametrize("case", [
    lambda s: s["FH"] != s["FW"],                                      # non-square kernel
    lambda s: s["FH"] == s["H"] + 2 * s["PH"] and s["FH"] > 1,         # kernel = padded input
    lambda s: s["FW"] == s["W"] + 2 * s["PW"] and s["PW"] > 0,
    lambda s: s["FH"] == s["FW"] == 1,                                 # 1×1 kernel
    lambda s: s["SH"] > s["FH"] and s["OH"] > 1,                       # stride > kernel
    lambda s: s["N"] == 1,                                             # batch 1
    lambda s: s["N"] == 3 and s["C"] == 3 and s["FN"] == 4,            # the upper bounds
])
def test_conv_settings_reach_the_edge_cases(case):
    find(conv_settings(), case)


@given(s=pool_settings())
def test_pool_settings_give_an_output_and_windows_over_the_input(s):
    for size, kernel, stride, pad, out in (("H", "KH", "SH", "PH", "OH"),
                                           ("W", "KW", "SW", "PW", "OW")):
        assert 0 <= s[pad] <= s[kernel] // 2
        assert s[out] == out_size(s[size], s[kernel], s[stride], s[pad]) >= 1
        # each window holds at least one element of the input, not only padding
        last_start = (s[out] - 1) * s[stride] - s[pad]
        assert last_start <= s[size] - 1 and s[kernel] - s[pad] >= 1
    assert set(s) == {"N", "C", "H", "W", "KH", "KW", "SH", "SW", "PH", "PW", "OH", "OW"}


@pytest.mark.parametrize("case", [
    lambda s: s["KH"] != s["KW"],
    lambda s: s["KH"] == s["H"] + 2 * s["PH"],
    lambda s: s["SH"] > s["KH"] and s["OH"] > 1,
    lambda s: s["PH"] == s["KH"] // 2 > 0,
    lambda s: s["SH"] == s["KH"] == 2,   # the textbook's 2×2, stride 2
])
def test_pool_settings_reach_the_edge_cases(case):
    find(pool_settings(), case)
