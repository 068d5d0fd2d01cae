"""max_pool2d and avg_pool2d: loop reference, gradcheck, ties, padding, PyTorch and errors."""

import functools
import re

import numpy as np
import pytest
import reference as ref
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from split_threads import threads

import minigrad
import minigrad.functional as F
from minigrad import Tensor
from minigrad.ops import pooling
from minigrad.ops.pooling import _tiled_winner, _window_max, _window_max_plain
from minigrad.parallel import channels_last
from minigrad.testing import arrays, check_op, distinct_arrays, pool_settings

POOLS = {
    "max": (F.max_pool2d, ref.max_pool2d),
    "avg": (F.avg_pool2d, ref.avg_pool2d),
}


def draw_pool(data, distinct, **limits):
    """(x, kernel, stride, padding); x without ties (no two elements within 0.01) if asked."""
    s = data.draw(pool_settings(**limits), label="settings")
    shape = (s["N"], s["C"], s["H"], s["W"])
    x = data.draw(distinct_arrays(shape, -10.0, 10.0, min_gap=0.01) if distinct
                  else arrays(shape), label="x")
    return x, (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_matches_loops_and_gradcheck(kind, data):
    fn, reference = POOLS[kind]
    x, kernel, stride, padding = draw_pool(data, distinct=kind == "max")
    assert check_op(lambda t: fn(t, kernel, stride, padding),
                    lambda a: reference(a, kernel, stride, padding), x, rtol=1e-12)


@given(data=st.data())
def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(data):
    # Few distinct values: most windows hold ties.
    s = data.draw(pool_settings(), label="settings")
    x = data.draw(hnp.arrays(np.float64, (s["N"], s["C"], s["H"], s["W"]),
                             elements=st.sampled_from([-1.0, 0.0, 2.0])), label="x")
    kernel, stride, padding = (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel, stride, padding)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(y.data, ref.max_pool2d(x, kernel, stride, padding))
    np.testing.assert_allclose(tx.grad, ref.max_pool2d_backward(x, dy, kernel, stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_max_pool_tie_in_one_window():
    x = Tensor(np.array([[[[1.0, 3.0], [3.0, 3.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).backward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(x.grad[0, 0], [[0.0, 5.0], [0.0, 0.0]])


def test_max_pool_padding_never_wins():
    # All inputs negative: padded cells would win if they were zeros (the textbook's crash
    # aside); with −∞ padding every output is a real input element.
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, 3, stride=2, padding=1)
    np.testing.assert_array_equal(y.data[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])
    y.sum().backward()
    assert tx.grad.sum() == 4 and set(np.unique(tx.grad)) == {0.0, 1.0}


def test_avg_pool_counts_padding_in_the_divisor():
    x = np.ones((1, 1, 2, 2))
    y = F.avg_pool2d(x, 2, stride=1, padding=1)
    np.testing.assert_allclose(y.data[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5],
                                              [0.25, 0.5, 0.25]])


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, 0)])
def test_pool_float32_stays_float32(kind, kernel, stride, padding):
    fn, _ = POOLS[kind]
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(np.float32),
               requires_grad=True)
    y = fn(x, kernel, stride, padding)
    assert y.dtype == np.float32
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


@pytest.mark.parametrize("kind", POOLS)
def test_pool_settings_are_kept_on_the_op(kind):
    fn, _ = POOLS[kind]
    y = fn(Tensor(np.ones((1, 1, 6, 6)), requires_grad=True), 3, padding=1)
    assert type(y.creator).__name__ == {"max": "MaxPool2d", "avg": "AvgPool2d"}[kind]
    assert y.creator.settings() == {"kernel_size": (3, 3), "stride": (3, 3), "padding": (1, 1)}


def test_max_pool_works_on_integer_images():
    x = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    y = F.max_pool2d(x, 2, padding=1)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y.data[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]])


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros((3, 8, 8)), 2), {}, ValueError,
     "{op}: input must be 4-D (N, C, H, W), got x.shape=(3, 8, 8)"),
    ((np.zeros((1, 1, 3, 3)), 4), {}, ValueError,
     "{op}: kernel_size (KH, KW)=(4, 4) is larger than the padded input (H + 2·PH, W + 2·PW)="
     "(3, 3); x.shape=(1, 1, 3, 3), padding=(0, 0)"),
    ((np.zeros((1, 1, 8, 8)), 2), {"stride": 0}, ValueError,
     "{op}: stride must be positive, got 0"),
    ((np.zeros((1, 1, 8, 8)), (2, 0)), {}, ValueError,
     "{op}: kernel_size must be positive, got (2, 0)"),
    ((np.zeros((1, 1, 8, 8)), 2), {"padding": -1}, ValueError,
     "{op}: padding must be non-negative, got -1"),
    ((np.zeros((1, 1, 8, 8)), 2), {"padding": 2}, ValueError,
     "{op}: padding (PH, PW)=(2, 2) must be smaller than kernel_size (KH, KW)=(2, 2)"),
    ((np.zeros((1, 1, 8, 8)), 2.0), {}, TypeError,
     "{op}: kernel_size must be an int or an (h, w) pair of ints, got 2.0"),
])
def test_pool_bad_input_names_the_op_and_shapes(kind, args, kwargs, error, message):
    fn, _ = POOLS[kind]
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert str(info.value) == message.format(op=f"{kind}_pool2d")


def test_avg_pool_rejects_integer_input():
    with pytest.raises(TypeError, match=r"avg_pool2d: input must be floating point, got dtype "
                                        r"int64 \(x.shape=\(1, 1, 2, 2\)\)"):
        F.avg_pool2d(np.zeros((1, 1, 2, 2), dtype=np.int64), 2)


# ---------------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_matches_torch(kind, data):
    torch = pytest.importorskip("torch")
    torch_fn = {"max": torch.nn.functional.max_pool2d,
                "avg": torch.nn.functional.avg_pool2d}[kind]
    fn, _ = POOLS[kind]
    x, kernel, stride, padding = draw_pool(data, distinct=kind == "max", max_size=9,
                                           max_kernel=5, max_stride=4)
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = fn(tx, kernel, stride, padding)
    py = torch_fn(px, kernel, stride, padding)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_max_pool_ties_match_torch(data):
    torch = pytest.importorskip("torch")
    x, kernel, stride, padding = draw_pool(data, distinct=False)
    x = (x > 0).astype(np.float64)          # only 0s and 1s: ties everywhere
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel, stride, padding)
    py = torch.nn.functional.max_pool2d(px, kernel, stride, padding)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    # Equal up to the order in which overlapping windows add up their shares.
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------ dilation, ceil_mode and the rest

@st.composite
def option_settings(draw, kind):
    """Pooling settings with the options; padding ≤ half the window (PyTorch's rule) and
    every window holding at least one input cell."""
    s = {"N": draw(st.integers(1, 2)), "C": draw(st.integers(1, 2)),
         "ceil_mode": draw(st.booleans())}
    for axis in "HW":
        K = draw(st.integers(1, 3))
        D = draw(st.integers(1, 3)) if kind == "max" else 1
        S = draw(st.integers(1, 3))
        P = draw(st.integers(0, K // 2))
        span = D * (K - 1) + 1
        size = draw(st.integers(max(1, span - 2 * P), max(1, span - 2 * P) + 4))
        s.update({"K" + axis: K, "D" + axis: D, "S" + axis: S, "P" + axis: P, axis: size})
    assume(all(ref.pool_windows_hold_input(s[a], s["K" + a], s["S" + a], s["P" + a],
                                           s["D" + a], s["ceil_mode"]) for a in "HW"))
    if kind == "avg":
        s["count_include_pad"] = draw(st.booleans())
        s["divisor_override"] = draw(st.none() | st.sampled_from([1, 3, -2]))
    return s


def option_kwargs(s, kind):
    kwargs = {"kernel_size": (s["KH"], s["KW"]), "stride": (s["SH"], s["SW"]),
              "padding": (s["PH"], s["PW"]), "ceil_mode": s["ceil_mode"]}
    if kind == "max":
        kwargs["dilation"] = (s["DH"], s["DW"])
    else:
        kwargs["count_include_pad"] = s["count_include_pad"]
        kwargs["divisor_override"] = s["divisor_override"]
    return kwargs


def draw_options(data, kind):
    s = data.draw(option_settings(kind), label="settings")
    shape = (s["N"], s["C"], s["H"], s["W"])
    x = data.draw(distinct_arrays(shape, -10.0, 10.0, min_gap=0.01) if kind == "max"
                  else arrays(shape), label="x")
    return x, option_kwargs(s, kind)


def reference_options(kind, x, kwargs):
    args = (x, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"])
    if kind == "max":
        return ref.max_pool2d_options(*args, kwargs["dilation"], kwargs["ceil_mode"])[0]
    return ref.avg_pool2d_options(*args, kwargs["ceil_mode"], kwargs["count_include_pad"],
                                  kwargs["divisor_override"])


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_options_match_loops_and_gradcheck(kind, data):
    fn, _ = POOLS[kind]
    x, kwargs = draw_options(data, kind)
    assert check_op(lambda t: fn(t, **kwargs), lambda a: reference_options(kind, a, kwargs), x,
                    rtol=1e-12)


@given(data=st.data())
def test_max_pool_indices_and_gradient_go_to_the_first_maximum(data):
    # Few distinct values: ties in most windows, with every option drawn.
    s = data.draw(option_settings("max"), label="settings")
    kwargs = option_kwargs(s, "max")
    x = data.draw(hnp.arrays(np.float64, (s["N"], s["C"], s["H"], s["W"]),
                             elements=st.sampled_from([-np.inf, -1.0, 0.0, 2.0])), label="x")
    tx = Tensor(x, requires_grad=True)
    y, indices = F.max_pool2d(tx, **kwargs, return_indices=True)
    expected_y, expected_indices, backward = ref.max_pool2d_options(
        x, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"], kwargs["dilation"],
        kwargs["ceil_mode"])
    dy = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(y.data, expected_y)
    np.testing.assert_array_equal(indices, expected_indices)
    assert indices.dtype == np.int64
    np.testing.assert_allclose(tx.grad, backward(dy), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_fast_paths_equal_the_general_path(kind, data):
    # return_indices (max) and divisor_override = KH·KW (avg) change nothing but the path.
    fn, _ = POOLS[kind]
    x, kernel, stride, padding = draw_pool(data, distinct=kind == "max")
    option = {"max": {"return_indices": True},
              "avg": {"divisor_override": kernel[0] * kernel[1]}}[kind]
    fast, plain = Tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    y_fast = fn(fast, kernel, stride, padding)
    y_plain = fn(plain, kernel, stride, padding, **option)
    y_plain = y_plain[0] if kind == "max" else y_plain
    assert not y_fast.creator.general and y_plain.creator.general
    dy = np.random.default_rng(8).standard_normal(y_fast.shape)
    y_fast.backward(dy)
    y_plain.backward(dy)
    np.testing.assert_allclose(y_fast.data, y_plain.data, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fast.grad, plain.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind, kwargs, general", [
    ("max", {}, False),
    ("max", {"ceil_mode": True}, False),           # 8 = 2·4: ceil_mode changes nothing
    ("max", {"kernel_size": 3, "ceil_mode": True}, True),
    ("max", {"dilation": 2}, True),
    ("avg", {"ceil_mode": True}, False),
    ("avg", {"count_include_pad": False}, False),  # no padding: nothing to leave out
    ("avg", {"padding": 1, "count_include_pad": False}, True),
    ("avg", {"kernel_size": 3, "ceil_mode": True}, True),
])
def test_pool_takes_the_general_path_only_when_an_option_matters(kind, kwargs, general):
    fn, _ = POOLS[kind]
    x = Tensor(np.ones((1, 1, 8, 8)), requires_grad=True)
    y = fn(x, **{"kernel_size": 2, **kwargs})
    assert y.creator.general is general
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_pool_options_are_kept_on_the_op_only_when_given():
    x = Tensor(np.ones((1, 1, 6, 6)), requires_grad=True)
    y, _ = F.max_pool2d(x, 2, dilation=2, ceil_mode=True, return_indices=True)
    assert y.creator.settings() == {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0),
                                    "dilation": (2, 2), "ceil_mode": True,
                                    "return_indices": True}
    y = F.avg_pool2d(x, 2, count_include_pad=False, divisor_override=3)
    assert y.creator.settings() == {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0),
                                    "count_include_pad": False, "divisor_override": 3}


@given(data=st.data())
def test_adaptive_avg_pool_matches_loops_and_gradcheck(data):
    shape = data.draw(hnp.array_shapes(min_dims=4, max_dims=4, max_side=7), label="shape")
    size = data.draw(st.tuples(st.integers(1, 8), st.integers(1, 8)), label="output_size")
    x = data.draw(arrays(shape), label="x")
    assert check_op(lambda t: F.adaptive_avg_pool2d(t, size),
                    lambda a: ref.adaptive_avg_pool2d(a, size), x, rtol=1e-12)


@pytest.mark.parametrize("output_size, expected", [
    (1, (1, 1)), ((2, None), (2, 5)), ((None, 3), (4, 3)), ((4, 5), (4, 5))])
def test_adaptive_avg_pool_output_sizes(output_size, expected):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = F.adaptive_avg_pool2d(x, output_size)
    assert y.shape == (2, 3) + expected
    if expected == (1, 1):   # global average pooling
        np.testing.assert_allclose(y.data[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-14)
    if expected == (4, 5):   # the input's own size: the identity
        np.testing.assert_array_equal(y.data, x)


# ------------------------------------------------- regressions: wrapping, crashes, −∞ windows


@pytest.mark.parametrize("kernel, width", [(3, 195), (3, 258), (4, 200), (5, 255), (3, 129)])
def test_max_pool_gradient_is_right_on_wide_inputs(kernel, width):
    # The first maximum's offset within a window, row·OW·KW + column, exceeds 255 here: it
    # once wrapped in 8 bits under NumPy 1.x's value-based casting and sent gradients to the
    # wrong cells.
    shape = (2, 1, 2 * kernel, width)
    x = np.random.default_rng(kernel).permutation(np.prod(shape)).reshape(shape) / 7.0
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(y.data, ref.max_pool2d(x, (kernel,) * 2, (kernel,) * 2))
    np.testing.assert_array_equal(
        tx.grad, ref.max_pool2d_backward(x, dy, (kernel,) * 2, (kernel,) * 2))


@pytest.mark.parametrize("kernel", [(1, 300), (300, 1), (2, 257)])
def test_max_pool_windows_wider_than_256_have_a_gradient(kernel):
    shape = (1, 2, 2 * kernel[0], 2 * kernel[1])
    x = np.random.default_rng(1).permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel)
    dy = np.random.default_rng(10).standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(tx.grad, ref.max_pool2d_backward(x, dy, kernel, kernel))


@pytest.mark.parametrize("call", [
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.max_pool2d(x, 3, stride=1, padding=1),
    lambda x: F.max_pool2d(x, 2, dilation=2, ceil_mode=True),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
    lambda x: F.avg_pool2d(x, 3, stride=2, ceil_mode=True, count_include_pad=False),
    lambda x: F.adaptive_avg_pool2d(x, 3),
])
def test_pool_backward_with_an_empty_batch(call):
    x = Tensor(np.ones((0, 3, 6, 6)), requires_grad=True)
    y = call(x)
    assert y.shape[:2] == (0, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "padding": 1},                        # tiled windows
    {"kernel_size": 3, "stride": 2, "padding": 1},           # any other stride
    {"kernel_size": 2, "stride": 1, "padding": 1},
    {"kernel_size": 3, "padding": 1, "ceil_mode": True},     # the general path
    {"kernel_size": 3, "padding": 1, "dilation": (1, 2)},
])
def test_max_pool_windows_of_minus_infinity_send_the_gradient_to_an_input_cell(kwargs):
    # Padded cells are −∞ too: they tie with such windows and must not take their gradient.
    x = np.full((2, 1, 5, 5), -np.inf)
    x[1, 0, 2:, 2:] = np.arange(9.0).reshape(3, 3)
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, **kwargs)
    dy = np.random.default_rng(11).standard_normal(y.shape)
    y.backward(dy)
    pair = lambda v: (v, v) if isinstance(v, int) else v             # noqa: E731
    kernel, padding = pair(kwargs["kernel_size"]), pair(kwargs["padding"])
    stride = pair(kwargs.get("stride", kwargs["kernel_size"]))
    _, _, backward = ref.max_pool2d_options(x, kernel, stride, padding,
                                            pair(kwargs.get("dilation", 1)),
                                            kwargs.get("ceil_mode", False))
    np.testing.assert_allclose(tx.grad, backward(dy), rtol=1e-15)
    np.testing.assert_allclose(tx.grad.sum(), dy.sum(), rtol=1e-12)   # nothing is lost


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.max_pool2d(np.zeros((1, 1, 2, 2)), 2, padding=1, dilation=3), ValueError,
     "max_pool2d: the window of output row 0 covers only padding (kernel_size=(2, 2), "
     "stride=(2, 2), padding=(1, 1), dilation=(3, 3), ceil_mode=False); x.shape=(1, 1, 2, 2)"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 3, dilation=2), ValueError,
     "max_pool2d: kernel_size (KH, KW)=(3, 3) with dilation=(2, 2) spans 5 rows, more than "
     "the padded input's 4; x.shape=(1, 1, 4, 4), padding=(0, 0)"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, dilation=0), ValueError,
     "max_pool2d: dilation must be positive, got 0"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, ceil_mode=1), TypeError,
     "max_pool2d: ceil_mode must be True or False, got 1"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, return_indices="yes"), TypeError,
     "max_pool2d: return_indices must be True or False, got 'yes'"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must not be zero"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=2.0), TypeError,
     "avg_pool2d: divisor_override must be an int or None, got 2.0"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, count_include_pad=None), TypeError,
     "avg_pool2d: count_include_pad must be True or False, got None"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4), np.int64), 3, ceil_mode=True), TypeError,
     "avg_pool2d: input must be floating point, got dtype int64 (x.shape=(1, 1, 4, 4))"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), 0), ValueError,
     "adaptive_avg_pool2d: output_size must be positive, got 0"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), (2, 1.5)), TypeError,
     "adaptive_avg_pool2d: output_size must be an int or an (h, w) pair of ints, got (2, 1.5)"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((4, 4)), 2), ValueError,
     "adaptive_avg_pool2d: input must be 4-D (N, C, H, W), got x.shape=(4, 4)"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4), np.int32), 2), TypeError,
     "adaptive_avg_pool2d: input must be floating point, got dtype int32 "
     "(x.shape=(1, 1, 4, 4))"),
])
def test_pool_options_bad_input_names_the_op_and_shapes(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_options_match_torch(kind, data):
    torch = pytest.importorskip("torch")
    fn, _ = POOLS[kind]
    x, kwargs = draw_options(data, kind)
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    if kind == "max":
        y, indices = fn(tx, **kwargs, return_indices=True)
        py, pindices = torch.nn.functional.max_pool2d(px, **kwargs, return_indices=True)
        np.testing.assert_array_equal(indices, pindices.numpy())
    else:
        y, py = fn(tx, **kwargs), torch.nn.functional.avg_pool2d(px, **kwargs)
    dy = np.random.default_rng(12).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-9, atol=1e-12)


@given(data=st.data())
def test_adaptive_avg_pool_matches_torch(data):
    torch = pytest.importorskip("torch")
    shape = data.draw(hnp.array_shapes(min_dims=4, max_dims=4, max_side=9), label="shape")
    size = data.draw(st.tuples(st.integers(1, 10), st.integers(1, 10)), label="output_size")
    x = data.draw(arrays(shape), label="x")
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.adaptive_avg_pool2d(tx, size)
    py = torch.nn.functional.adaptive_avg_pool2d(px, size)
    dy = np.random.default_rng(13).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "padding": 1}, {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "padding": 1, "dilation": 2, "ceil_mode": True}])
def test_max_pool_minus_infinity_windows_match_torch(kwargs):
    torch = pytest.importorskip("torch")
    x = np.full((1, 2, 5, 5), -np.inf)
    x[0, 1, 1:, 3:] = 1.0
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, **kwargs)
    py = torch.nn.functional.max_pool2d(px, **kwargs)
    dy = np.random.default_rng(14).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_array_equal(tx.grad, px.grad.numpy())


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 2, "dilation": 2}])
def test_max_pool_general_path_nan_wins_as_in_torch(kwargs):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(15).standard_normal((1, 2, 6, 6))
    x[0, 0, 1, 1] = x[0, 0, 2, 0] = x[0, 1, 4, 5] = np.nan
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, indices = F.max_pool2d(tx, **kwargs, return_indices=True)
    py, pindices = torch.nn.functional.max_pool2d(px, **kwargs, return_indices=True)
    y.sum().backward()
    py.sum().backward()
    np.testing.assert_array_equal(y.data, py.detach().numpy())     # NaN where torch has NaN
    np.testing.assert_array_equal(indices, pindices.numpy())
    np.testing.assert_array_equal(tx.grad, px.grad.numpy())


@pytest.mark.parametrize("call", [
    lambda x: F.max_pool2d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True),
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
])
def test_pool_options_keep_float32_float32(call):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2, 7, 8)).astype(np.float32),
               requires_grad=True)
    y = call(x)
    assert y.dtype == np.float32
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


# ------------------------------------------- tiled max pooling without a gradient (inference)

# Values with every kind of tie the maxima can meet: equal values, −0.0 beside +0.0, −∞, NaN.
TIE_VALUES = [-1.0, -0.0, 0.0, 2.0, -np.inf, np.nan]


def bits(a):
    """The bytes of a, so that −0.0 ≠ +0.0 and NaNs compare by payload."""
    return np.ascontiguousarray(a).view(np.uint8)


def maxima_in_row_major_order(xt, KH, KW):  # noqa: N803
    """np.maximum folded over the window's cells in row-major order: the bits each window's
    maximum must have (of tied cells the last one, of NaNs the first)."""
    B, HT, WT, CI = xt.shape
    x6 = xt.reshape(B, HT // KH, KH, WT // KW, KW, CI)
    cells = [x6[:, :, i, :, j] for i in range(KH) for j in range(KW)]
    return functools.reduce(np.maximum, cells)


@given(data=st.data())
def test_window_max_equals_the_reshaped_max(data):
    B, OH, OW, CI = (data.draw(st.integers(1, n), label=s)
                     for n, s in ((3, "B"), (4, "OH"), (4, "OW"), (5, "CI")))
    KH, KW = data.draw(st.integers(1, 4), label="KH"), data.draw(st.integers(1, 4), label="KW")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    xt = data.draw(hnp.arrays(dtype, (B, OH * KH, OW * KW, CI), elements=st.one_of(
        st.sampled_from(TIE_VALUES), st.floats(-3, 3, width=np.dtype(dtype).itemsize * 8))),
        label="xt")
    y = _window_max(xt, KH, KW)
    assert y.shape == (B, OH, OW, CI) and y.dtype == dtype
    np.testing.assert_array_equal(y, _window_max_plain(xt, KH, KW))    # NaN where it has NaN
    np.testing.assert_array_equal(bits(y), bits(maxima_in_row_major_order(xt, KH, KW)))
    out = np.empty_like(y)
    assert _window_max(xt, KH, KW, out=out) is out
    np.testing.assert_array_equal(bits(out), bits(y))


def pool_with_and_without_gradient(x, kernel, padding):
    """(y without a gradient, y and dL/dx with one) of max_pool2d(x, kernel, padding)."""
    with minigrad.no_grad():
        y_inference = F.max_pool2d(Tensor(x), kernel, padding=padding).data
    t = Tensor(x, requires_grad=True)
    y = F.max_pool2d(t, kernel, padding=padding)
    y.backward(np.arange(1, y.size + 1, dtype=x.dtype).reshape(y.shape))
    return y_inference, y.data, t.grad


@pytest.mark.parametrize("many_runs", [0, pooling._MANY_RUNS])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kernel, padding", [(2, 0), (2, 1), (3, 0), (3, 1), ((2, 3), (1, 0))])
def test_max_pool_without_gradient_gives_the_bits_of_the_gradient_path(n_threads, dtype,
                                                                         channels_last,
                                                                         kernel, padding,
                                                                         many_runs,
                                                                         monkeypatch):
    monkeypatch.setattr(pooling, "_MANY_RUNS", many_runs)   # both ways of reading the runs
    rng = np.random.default_rng(20)
    x = rng.choice(np.array(TIE_VALUES[:5], dtype), size=(3, 5, 9, 11))
    drawn = rng.random(x.shape) < 0.5
    x[drawn] = rng.standard_normal(np.count_nonzero(drawn))
    x[0, 0, :4, :4] = -np.inf                  # windows of −∞ only, some of them with padding
    x_nan = x.copy()
    x_nan[rng.random(x.shape) < 0.05] = np.nan
    pair = lambda v: (v, v) if isinstance(v, int) else v             # noqa: E731
    want = ref.max_pool2d(x.astype(np.float64), pair(kernel), pair(kernel), pair(padding))
    for with_nan, a in enumerate((x, x_nan)):
        with threads(1):
            want_y, _, want_dx = pool_with_and_without_gradient(a, kernel, padding)
        if channels_last:
            a = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        with threads(n_threads):
            y_inference, y, dx = pool_with_and_without_gradient(a, kernel, padding)
        if not with_nan:
            np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(bits(y_inference), bits(y))
        assert y_inference.strides == y.strides and y_inference.dtype == dtype
        np.testing.assert_array_equal(bits(y), bits(want_y))
        np.testing.assert_array_equal(dx, want_dx)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_tiled_max_pool_nan_makes_the_window_nan_and_keeps_its_gradient_route(channels_last,
                                                                              grad):
    # Windows [[1, NaN], [0, 2]], [[NaN, 1], [2, 3]], [[0, 1], [NaN, 3]], [[0, 1], [2, NaN]]:
    # y is NaN for each (as in PyTorch). Winners are found with ">" (false against NaN) from
    # the first cell of each window row, then of the row maxima: a NaN past a window's first
    # cell does not take the gradient, which goes to the first cell that no comparison beat.
    n = np.nan
    x = np.array([[[[1, n, n, 1, 0, 1, 0, 1], [0, 2, 2, 3, n, 3, 2, n]]]] * 3)
    x = x.transpose(1, 0, 2, 3)                # three channels
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if grad:
        y_inference, y, dx = pool_with_and_without_gradient(x, 2, 0)
        want_dx = np.zeros((2, 8))
        want_dx[0, [0, 2, 5, 7]] = 1
        np.testing.assert_array_equal(dx != 0, np.broadcast_to(want_dx != 0, dx.shape))
    else:
        with minigrad.no_grad():
            y = F.max_pool2d(Tensor(x), 2).data
    assert np.isnan(y).all() and y.shape == (1, 3, 1, 4)


# ---------------------------------------------- tiled max pooling: the plan from shape and strides


def tiled_plan_plain(shape, strides, dtype, kernel, padding):
    """``_tiled_plan`` formulated on an array: a zero-length buffer viewed with x's shape and
    strides, asked for its size and layout by the functions that take an array."""
    x = np.lib.stride_tricks.as_strided(np.empty(0, dtype), shape, strides)
    out = pooling._check_input("max_pool2d", x, kernel, kernel, padding)
    cl = channels_last(x)
    CI = shape[1] if cl else 1
    return out, cl, CI, pooling._lowest(dtype), pooling._by_window(kernel[0], out[1], CI)


@st.composite
def layouts(draw):
    """An (N, C, H, W) array in any layout: its memory in any axis order, sliced with steps
    forward or backward, axes of length 0 or 1 included."""
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16]))
    order = draw(st.sampled_from([(0, 2, 3, 1), (0, 1, 2, 3)]) | st.permutations(range(4)))
    sizes = [draw(st.integers(0 if draw(st.booleans()) else 1, 5)) for _ in range(4)]
    base = np.zeros([sizes[a] for a in order], dtype).transpose(np.argsort(order))
    steps = st.just(1) | st.sampled_from([2, -1])
    index = tuple(slice(None, None, draw(steps)) for _ in range(4))
    return base[index]


@example(x=np.zeros((2, 4, 4, 3), np.float32).transpose(0, 3, 1, 2), kernel=(2, 2))
@given(x=layouts(), kernel=st.sampled_from([(1, 1), (2, 2), (2, 3), (3, 1)]))
def test_tiled_plan_from_shape_and_strides_equals_the_array_formulation(x, kernel):
    """What the tiled path decides from x's shape and strides alone (layout, CI, the shapes)
    is what the array formulation decides, and channels_last(x) itself; the same error for a
    shape the kernel does not fit."""
    shape, strides = x.shape, x.strides
    assert pooling._channels_last_strides(shape, strides, x.itemsize) == channels_last(x)
    assert pooling._c_contiguous(shape, strides, x.itemsize) == x.flags.c_contiguous
    args = shape, strides, x.dtype, kernel, (0, 0)
    try:
        want = tiled_plan_plain(*args)
    except ValueError as e:
        with pytest.raises(ValueError, match=re.escape(str(e))):
            pooling._tiled_plan.__wrapped__(*args)
        return
    assert pooling._tiled_plan.__wrapped__(*args) == want


@given(shape=st.lists(st.integers(0, 3), min_size=4, max_size=4),
       steps=st.lists(st.integers(-3, 3), min_size=4, max_size=4),
       itemsize=st.sampled_from([1, 2, 4, 8]))
def test_contiguity_from_strides_equals_numpys_flag_for_any_strides(shape, steps, itemsize):
    """NumPy's C_CONTIGUOUS flag for strides no slicing makes (0, negative, overlapping)."""
    strides = tuple(s * itemsize for s in steps)
    x = np.lib.stride_tricks.as_strided(np.empty(0, f"V{itemsize}"), shape, strides)
    assert pooling._c_contiguous(tuple(shape), strides, itemsize) == x.flags.c_contiguous
    assert pooling._channels_last_strides(tuple(shape), strides, itemsize) == channels_last(x)


# ------------------------------------------------- tiled max pooling: the winners' flat indices


def tiled_winner_plain(row, col, kernel, CI):  # noqa: N803
    """The flat index into the tiled planes of each window's winner, from the window row
    ``row`` (G, OW, CI) that holds it and the first maximal column ``col`` (G, KH, OW, CI) of
    every window row, by take_along_axis: what ``_tiled_winner`` computes."""
    KH, KW = kernel
    G, OW = row.shape[:2]
    g, ow, c = np.ix_(np.arange(G), np.arange(OW), np.arange(CI))
    s = np.take_along_axis(col.astype(np.intp), row.astype(np.intp)[:, None], axis=1)[:, 0]
    return ((((g * KH + row) * OW + ow) * KW + s) * CI + c).reshape(-1)


@pytest.mark.parametrize("many_runs", [0, 1 << 30])       # runs gathered first, or read in place
@given(data=st.data())
def test_tiled_winner_equals_the_plain_index(many_runs, data):
    G, OW, CI = (data.draw(st.integers(1, n), label=s) for n, s in ((4, "G"), (4, "OW"), (5, "CI")))
    KH, KW = data.draw(st.integers(1, 4), label="KH"), data.draw(st.integers(1, 4), label="KW")
    wide = data.draw(st.booleans(), label="intp indices")
    dtype = np.intp if wide else np.uint8
    row = data.draw(hnp.arrays(dtype, (G, OW, CI), elements=st.integers(0, KH - 1)), label="row")
    # col as forward reads it: the run starts of a flat array, a view with steps of KW·CI
    runs = data.draw(hnp.arrays(dtype, (G * KH * OW, KW * CI), elements=st.integers(0, KW - 1)),
                     label="runs")
    col = runs[:, :CI].reshape(G, KH, OW, CI)
    base = data.draw(st.integers(0, 1000), label="base")
    out = np.empty(G * OW * CI, np.intp)
    saved = pooling._MANY_RUNS
    pooling._MANY_RUNS = many_runs
    try:
        _tiled_winner(row, col, (KH, KW), out, base, CI)
    finally:
        pooling._MANY_RUNS = saved
    np.testing.assert_array_equal(out, base + tiled_winner_plain(row, col, (KH, KW), CI))


# ------------------------------------------- tiled max pooling without a gradient: exact tiles


def window_max_through_tiles(x, kernel):
    """The no-gradient tiled path's y, formulated through ``_images`` and ``_tile`` (x's planes
    copied or viewed, then cut to whole windows) for the whole batch at once, in y's layout."""
    N, C, H, W = x.shape
    (KH, KW), (OH, OW) = kernel, (H // kernel[0], W // kernel[1])
    cl = channels_last(x)
    xt = pooling._tile(pooling._images(x, 0, N), kernel, (0, 0), (OH, OW),
                       pooling._lowest(x.dtype))
    y = pooling._empty((N, C, OH, OW), x.dtype, cl)
    _window_max(xt, KH, KW, out=pooling._as_planes(y, cl))
    return y


@st.composite
def exactly_tiled(draw):
    """(x, kernel): x (N, C, OH·KH, OW·KW) in C order, channels-last or another layout, of
    tie values, NaN and numbers."""
    KH, KW = draw(st.integers(1, 3), label="KH"), draw(st.integers(1, 3), label="KW")
    N, C, OH, OW = (draw(st.integers(1, n)) for n in (3, 6, 4, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    x = draw(hnp.arrays(dtype, (N, OH * KH, OW * KW, C), elements=st.one_of(
        st.sampled_from(TIE_VALUES), st.floats(-3, 3, width=np.dtype(dtype).itemsize * 8))),
        label="x (N, H, W, C)")
    layout = draw(st.sampled_from(["C order", "channels-last", "strided"]), label="layout")
    if layout == "channels-last":
        return x.transpose(0, 3, 1, 2), (KH, KW)
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if layout == "strided":                         # every other channel of a wider array
        wide = np.repeat(x, 2, axis=1)
        x = wide[:, ::2]
    return x, (KH, KW)


@pytest.mark.parametrize("n_threads", [1, 2])
@given(case=exactly_tiled())
def test_max_pool_of_exact_tiles_without_gradient_equals_the_tiled_formulation(n_threads,
                                                                                case):
    """Windows that tile x exactly, no padding: the no-gradient path reads x's planes as they
    lie (C order or channels-last), the whole batch at once on one thread; y has the bits
    and the layout of the route through _images and _tile, and of the gradient path."""
    x, kernel = case
    want = window_max_through_tiles(x, kernel)
    with threads(n_threads), minigrad.no_grad():
        y = F.max_pool2d(Tensor(x), kernel).data
    np.testing.assert_array_equal(bits(y), bits(want))
    assert y.strides == want.strides and y.dtype == x.dtype
    y_grad = F.max_pool2d(Tensor(x, requires_grad=True), kernel).data
    np.testing.assert_array_equal(bits(y), bits(y_grad))
    assert y.strides == y_grad.strides


@pytest.mark.parametrize("shape", [(0, 3, 2, 2), (2, 0, 2, 2), (2, 3, 0, 2), (1, 1, 1, 1),
                                   (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_channels_last_empty_is_laid_out_as_the_transposed_formulation(shape, dtype):
    """``_empty(..., cl=True)``, one ndarray constructor, gives an array of its own with the
    strides of an (N, H, W, C) array's transpose copied by empty_like."""
    N, C, H, W = shape
    want = np.empty_like(np.empty((N, H, W, C), dtype).transpose(0, 3, 1, 2))
    a = pooling._empty(shape, dtype, True)
    assert a.shape == want.shape and a.dtype == want.dtype and a.strides == want.strides
    assert a.base is None and a.flags.owndata and a.flags.writeable
    assert channels_last(a) == channels_last(want)


SETTING_VALUES = st.one_of(
    st.none(), st.integers(-1, 3), st.booleans(), st.floats(0, 3),
    st.tuples(st.integers(-1, 3), st.integers(-1, 3)),
    st.tuples(st.one_of(st.integers(0, 3), st.booleans(), st.floats(0, 3)), st.integers(0, 3)),
    st.lists(st.integers(0, 3), min_size=2, max_size=2))


def settings_or_error(fn, *args):
    try:
        return fn(*args)
    except (TypeError, ValueError) as e:
        return type(e), str(e)


@given(calls=st.lists(st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]),
                                SETTING_VALUES, SETTING_VALUES, SETTING_VALUES),
                      min_size=1, max_size=6))
def test_pool_settings_kept_per_object_equal_the_checked_settings(calls):
    """``_settings``, kept for the objects given, answers as ``_settings_plain`` (the same
    pairs, or the same error naming the op) for every call, the same objects again (found)
    and equal values of other types (True for 1, 2.0 for 2: checked, not found)."""
    for op, kernel, stride, padding in calls + calls:
        for args in ((op, kernel, stride, padding), (op, kernel, None, padding)):
            assert (settings_or_error(pooling._settings, *args)
                    == settings_or_error(pooling._settings_plain, *args))


def test_pool_settings_kept_for_a_tuple_still_refuse_an_equal_tuple_of_bools():
    kernel = (1, 1)
    assert pooling._settings("max_pool2d", kernel, kernel, (0, 0)) == ((1, 1),) * 2 + ((0, 0),)
    assert pooling._settings("max_pool2d", kernel, kernel, (0, 0)) == ((1, 1),) * 2 + ((0, 0),)
    with pytest.raises(TypeError, match="max_pool2d: kernel_size must be an int"):
        pooling._settings("max_pool2d", (True, True), kernel, (0, 0))
    with pytest.raises(TypeError, match="max_pool2d: kernel_size must be an int"):
        F.max_pool2d(np.zeros((1, 1, 2, 2)), (True, 1))


# ------------------------------------------------------------------ global average pooling
@pytest.fixture
def window_products():
    """AdaptiveAvgPool2d with its plain formulation (the two window products) for every
    output size, the global path switched off."""
    saved = pooling._GLOBAL_DTYPES
    pooling._GLOBAL_DTYPES = ()
    yield
    pooling._GLOBAL_DTYPES = saved


def _global_pool_run(x, dy):
    t = Tensor(x, requires_grad=True)
    y = F.adaptive_avg_pool2d(t, 1)
    y.backward(dy)
    return y.data, t.grad


def _laid_out(a, layout):
    if layout == "channels-last":
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "strided":
        return np.repeat(a, 2, axis=3)[..., ::2]
    return a


@given(data=st.data())
def test_global_average_pool_equals_the_window_products(data):
    """Output 1 × 1: the sum by a vector of ones and dy repeated over each plane, against the
    two window products, in float64 (to the rounding of a sum in another order) and float32,
    for x and dy in C order, channels last or strided; y and dx laid out as x is."""
    shape = data.draw(hnp.array_shapes(min_dims=4, max_dims=4, max_side=9), label="shape")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    x = _laid_out(data.draw(arrays(shape), label="x").astype(dtype),
                  data.draw(st.sampled_from(["contiguous", "channels-last", "strided"])))
    dy = data.draw(arrays(shape[:2] + (1, 1)), label="dy").astype(dtype)
    fast = _global_pool_run(x, dy)
    saved = pooling._GLOBAL_DTYPES
    pooling._GLOBAL_DTYPES = ()
    try:
        plain = _global_pool_run(x, dy)
    finally:
        pooling._GLOBAL_DTYPES = saved
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for got, expected in zip(fast, plain):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    if channels_last(x):
        assert channels_last(fast[1])
    assert fast[1].base is None                 # a leaf keeps dx itself as its gradient


def test_global_average_pool_gradcheck_and_second_order():
    """In C order, and channels last (x given as (N, H, W, C), moved to a channels-last view
    inside the function: gradcheck perturbs its input's own memory)."""
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    for to_nchw, a in ((lambda t: t, x),
                       (lambda t: t.transpose(0, 3, 1, 2), np.ascontiguousarray(
                           x.transpose(0, 2, 3, 1)))):
        assert check_op(lambda t, f=to_nchw: F.adaptive_avg_pool2d(f(t), 1),
                        lambda v, f=to_nchw: f(v).mean(axis=(2, 3), keepdims=True), a,
                        rtol=1e-12)
        t = Tensor(a, requires_grad=True)
        y = F.adaptive_avg_pool2d(to_nchw(t), 1)
        (g,) = minigrad.grad((y ** 2).sum(), [t], create_graph=True)
        (gg,) = minigrad.grad(g.sum(), [t])
        np.testing.assert_allclose(gg, np.full(a.shape, 2 / 20), rtol=1e-12)
