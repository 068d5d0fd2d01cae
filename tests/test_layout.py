"""Memory layout: activations, dropout, element-wise ops and pooling give the same bits on any
strided input (channels-last views, steps, swapped axes, broadcasts) as on a C-contiguous one,
keep a channels-last input's layout in their outputs and input gradients, split the same over
any number of threads, and pass gradcheck when the layout is channels-last."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from split_threads import threads

import minigrad.functional as F
from minigrad import Function, Tensor, grad, parallel
from minigrad.ops.dropout import Dropout
from minigrad.parallel import channels_last
from minigrad.testing import arrays, distinct_arrays, gradcheck, pool_settings


def to_channels_last(a: np.ndarray) -> np.ndarray:
    """a (N, C, H, W) with the same values, as the transpose of a C-contiguous (N, H, W, C)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def relayout(a: np.ndarray, layout: str) -> np.ndarray:
    """The values of a (N, C, H, W) in another memory layout."""
    if layout == "contiguous":
        return np.ascontiguousarray(a)
    if layout == "channels_last":
        return to_channels_last(a)
    if layout == "steps":               # every other row of a taller array
        N, C, H, W = a.shape
        tall = np.full((N, C, 2 * H, W), np.nan, a.dtype)
        tall[:, :, ::2] = a
        return tall[:, :, ::2]
    if layout == "swapped":             # H and W swapped in memory
        return np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    if layout == "reversed":            # a negative stride
        return np.ascontiguousarray(a[:, :, ::-1])[:, :, ::-1]
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "steps", "swapped", "reversed"]


def is_channels_last(a: np.ndarray) -> bool:
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


def memory_order(a: np.ndarray):
    """The order of the axes in which a is C-contiguous, or None."""
    order = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))
    return order if a.transpose(order).flags.c_contiguous else None


def is_dense(a: np.ndarray) -> bool:
    """The array fills one block of memory in some order of its axes."""
    return memory_order(a) is not None


def run(op, x: np.ndarray, dy_layout: str, seed: int = 1):
    """y = op(x) and dL/dx for a fixed random dL/dy laid out as ``dy_layout``."""
    t = Tensor(x, requires_grad=True)
    y = op(t)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(relayout(dy, dy_layout))
    return y.data, t.grad


# ---------------------------------------------------------------------- parallel.empty_like


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_like_keeps_a_dense_layout_and_makes_others_dense(layout):
    x = relayout(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5), layout)
    e = parallel.empty_like(x, np.float64)
    assert e.shape == x.shape and e.dtype == np.float64 and e.base is None
    assert is_dense(e)
    if is_dense(x):
        assert [s // 8 for s in e.strides] == [s // 4 for s in x.strides]


def test_empty_like_gives_a_broadcast_view_c_order():
    b = np.broadcast_to(np.zeros((1, 3, 1, 5), np.float32), (2, 3, 4, 5))
    assert parallel.empty_like(b).flags.c_contiguous


def test_elementwise_splits_any_one_layout_and_passes_mixed_layouts_whole():
    x = to_channels_last(np.arange(-24.0, 24.0).reshape(2, 3, 2, 4))
    calls = []

    def relu(y, x):
        calls.append(y.shape)
        np.maximum(x, 0.0, out=y)

    with threads(2):
        y = parallel.elementwise(relu, parallel.empty_like(x), x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        assert is_channels_last(y) and calls == [(24,), (24,)]    # flat runs of memory
        calls.clear()
        y = parallel.elementwise(relu, np.empty(x.shape), x)         # C order out, NHWC in
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        assert calls == [(2, 3, 2, 4)]


# ------------------------------------------------------- element-wise ops on every layout

ELEMENTWISE = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
    "elu": F.elu,
    "softplus": F.softplus,
    "abs": lambda t: t.abs(),
    "clip": lambda t: t.clip(-0.5, 0.7),
    "dropout": lambda t: Dropout(0.4, rng=np.random.default_rng(5))(t),
}
# The ops that allocate their results with parallel.empty_like (and so promise x's layout for
# y and dL/dx whatever dL/dy's layout).
ALLOCATING = {"relu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "dropout"}


def check_elementwise(name, x, x_layout, dy_layout):
    op = ELEMENTWISE[name]
    want_y, want_dx = run(op, x, "contiguous")
    xl = relayout(x, x_layout)
    y, dx = run(op, xl, dy_layout)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, want_dx)
    assert y.dtype == want_y.dtype and dx.dtype == want_dx.dtype
    if name in ALLOCATING:
        assert is_dense(y) and is_dense(dx)
        if is_dense(xl):
            order = memory_order(xl)
            assert y.transpose(order).flags.c_contiguous
            assert dx.transpose(order).flags.c_contiguous
    elif x_layout == "channels_last":
        assert is_channels_last(y)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_ops_give_the_same_bits_for_every_pair_of_layouts(name):
    x = np.random.default_rng(2).uniform(-3, 3, (3, 5, 4, 6)).astype(np.float32)
    for x_layout in LAYOUTS:
        for dy_layout in LAYOUTS:
            check_elementwise(name, x, x_layout, dy_layout)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4),
                          st.integers(1, 4)), avoid=(0.0, -0.5, 0.7), dtype=np.float32),
       x_layout=st.sampled_from(LAYOUTS), dy_layout=st.sampled_from(LAYOUTS))
def test_elementwise_ops_give_the_same_bits_on_every_layout(name, x, x_layout, dy_layout):
    check_elementwise(name, x, x_layout, dy_layout)


def test_a_channels_last_relu_keeps_its_layout_through_forward_and_backward():
    x = to_channels_last(np.random.default_rng(0).standard_normal((4, 8, 5, 6)))
    y, dx = run(F.relu, x, "channels_last")
    assert is_channels_last(y) and is_channels_last(dx)
    assert not y.flags.c_contiguous and not dx.flags.c_contiguous
    y, dx = run(F.relu, x, "contiguous")           # dL/dy in another layout: dx still x's
    assert is_channels_last(dx)


def test_dropout_draws_one_mask_whatever_the_layout():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6))
    drop = lambda t: Dropout(0.5, rng=np.random.default_rng(7))(t)  # noqa: E731
    want = drop(Tensor(x)).data
    got = drop(Tensor(to_channels_last(x))).data
    np.testing.assert_array_equal(got, want)
    assert is_channels_last(got) and (got == 0).any() and (got != 0).any()


@pytest.mark.parametrize("name", sorted(ALLOCATING - {"dropout"}))
@given(shape=st.tuples(st.integers(1, 4), st.integers(2, 6), st.integers(1, 5),
                       st.integers(1, 5)))
def test_activations_on_channels_last_are_the_same_on_any_number_of_threads(name, shape):
    x = to_channels_last(np.random.default_rng(len(shape)).standard_normal(shape))
    with threads(1):
        want = run(ELEMENTWISE[name], x, "channels_last")
    for n in (2, 3):
        with threads(n):
            got = run(ELEMENTWISE[name], x, "channels_last")
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w)
            assert is_channels_last(g)


# -------------------------------------------------------------------------------- pooling


def pool_op(kind: str, s: dict):
    f = F.max_pool2d if kind == "max" else F.avg_pool2d
    return lambda t: f(t, (s["KH"], s["KW"]), stride=(s["SH"], s["SW"]),
                       padding=(s["PH"], s["PW"]))


@st.composite
def pool_cases(draw, tiled: bool):
    """Pooling settings (tiled: stride = kernel, the 2×2 pooling's path) and an input without
    ties (so the gradient of max pooling is defined)."""
    s = draw(pool_settings(max_channels=5))
    if tiled:
        s["SH"], s["SW"] = s["KH"], s["KW"]
        s["OH"] = 1 + (s["H"] + 2 * s["PH"] - s["KH"]) // s["KH"]
        s["OW"] = 1 + (s["W"] + 2 * s["PW"] - s["KW"]) // s["KW"]
    x = draw(distinct_arrays((s["N"], s["C"], s["H"], s["W"]), min_gap=1e-3,
                             dtype=np.float32))
    return s, x


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(data=st.data(), x_layout=st.sampled_from(LAYOUTS), dy_layout=st.sampled_from(LAYOUTS))
def test_pooling_gives_the_same_bits_on_every_layout(kind, data, x_layout, dy_layout):
    s, x = data.draw(pool_cases(tiled=data.draw(st.booleans(), label="tiled")), label="case")
    op = pool_op(kind, s)
    want_y, want_dx = run(op, x, "contiguous")
    xl = relayout(x, x_layout)
    y, dx = run(op, xl, dy_layout)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, want_dx)
    assert y.dtype == want_y.dtype and dx.dtype == want_dx.dtype
    assert is_dense(y) and is_dense(dx)
    if x_layout == "contiguous":
        assert y.flags.c_contiguous and dx.flags.c_contiguous
    if channels_last(xl):
        assert is_channels_last(y) and is_channels_last(dx)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dy_layout", ["contiguous", "channels_last"])
def test_pooling_with_ties_and_padding_gives_the_same_bits_on_channels_last(kind, dy_layout):
    # Half zeros, as after a ReLU: max pooling's windows tie, and the first maximum (in the
    # window's row-major order) must win in either layout; padding 1 meets all-padding ties.
    x = np.maximum(np.random.default_rng(3).standard_normal((3, 16, 7, 9)), 0).astype(np.float32)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    for k, stride, padding in ((2, 2, 0), (2, 2, 1), (3, 3, 1), (3, 2, 1), (2, 1, 0)):
        def op(t, k=k, stride=stride, padding=padding):
            return pool(t, k, stride=stride, padding=padding)

        want_y, want_dx = run(op, x, "contiguous")
        y, dx = run(op, to_channels_last(x), dy_layout)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(dx, want_dx)
        assert is_channels_last(y) and is_channels_last(dx)


def test_pooling_of_minus_infinity_routes_the_gradient_alike_on_channels_last():
    x = np.full((2, 3, 4, 4), -np.inf, np.float32)
    x[0, 1, 2, 3] = 1.0
    op = lambda t: F.max_pool2d(t, 2, padding=1)  # noqa: E731
    want = run(op, x, "contiguous")
    got = run(op, to_channels_last(x), "channels_last")
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("options", [dict(dilation=2), dict(ceil_mode=True),
                                     dict(return_indices=True)])
def test_max_pooling_options_give_the_same_bits_on_channels_last(options):
    x = np.random.default_rng(4).permutation(2 * 5 * 7 * 8).reshape(2, 5, 7, 8)
    x = x.astype(np.float32)

    def op(t):
        out = F.max_pool2d(t, 2, stride=2, **options)
        return out[0] if options.get("return_indices") else out

    for w, g in zip(run(op, x, "contiguous"), run(op, to_channels_last(x), "channels_last")):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(data=st.data())
def test_pooling_on_channels_last_is_the_same_on_any_number_of_threads(kind, data):
    s, x = data.draw(pool_cases(tiled=True), label="case")
    x = to_channels_last(x)
    op = pool_op(kind, s)
    with threads(1):
        want = run(op, x, "channels_last")
    for n in (2, 3):
        with threads(n):
            got = run(op, x, "channels_last")
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w)
            assert is_channels_last(g) or g.flags.c_contiguous    # C = 1 is both


# ----------------------------------------------------------------- gradcheck, channels-last


class ToChannelsLast(Function):
    """y = x, laid out channels-last.    dL/dx = dL/dy (in whatever layout it comes)."""

    def forward(self, x):
        return to_channels_last(x)

    def backward(self, dy):
        return dy


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(data=st.data())
def test_pooling_on_channels_last_passes_gradcheck(kind, data):
    s, _ = data.draw(pool_cases(tiled=data.draw(st.booleans(), label="tiled")), label="case")
    x = data.draw(distinct_arrays((s["N"], s["C"], s["H"], s["W"]), min_gap=1e-3), label="x")
    op = pool_op(kind, s)
    seen = []

    def f(t):
        u = ToChannelsLast()(t)
        seen.append(channels_last(u.data) or u.data.flags.c_contiguous)
        return op(u)

    assert gradcheck(f, x)
    assert all(seen)


@pytest.mark.parametrize("name", sorted(ALLOCATING))
@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 4),
                          st.integers(1, 4)), avoid=(0.0,)))
def test_activations_on_channels_last_pass_gradcheck(name, x):
    assert gradcheck(lambda t: ELEMENTWISE[name](ToChannelsLast()(t)), x)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k, stride, padding", [(2, 2, 0), (2, 2, 1), (3, 2, 1)])
def test_pooling_gradients_of_gradients_give_the_same_bits_on_channels_last(kind, k, stride,
                                                                          padding):
    # backward_graph finds the winners with the pool's own backward: on a channels-last x too.
    rng = np.random.default_rng(6)
    x = rng.permutation(2 * 5 * 7 * 6).reshape(2, 5, 7, 6).astype(np.float64)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    results = []
    for xl in (x, to_channels_last(x)):
        t = Tensor(xl, requires_grad=True)
        y = pool(t, k, stride=stride, padding=padding)
        u = Tensor(rng.standard_normal(y.shape) if not results else results[0][2],
                   requires_grad=True)
        (g,) = grad(y, t, grad_outputs=u, create_graph=True)
        v = results[0][3] if results else rng.standard_normal(g.shape)
        (g * Tensor(v)).sum().backward()
        results.append((g.data, u.grad, u.data, v))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    assert np.abs(results[0][1]).sum() > 0


@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("dy_layout", ["contiguous", "channels_last"])
@given(N=st.integers(1, 3), C=st.integers(1, 5), H=st.integers(1, 7), W=st.integers(1, 7),
       OH=st.integers(1, 4), OW=st.integers(1, 4))
def test_adaptive_avg_pool_agrees_on_every_layout(x_layout, dy_layout, N, C, H, W, OH, OW):
    # Two matrix products: the BLAS may order the sums differently for another layout, so
    # the layouts agree to float64 rounding rather than bit for bit.
    x = np.random.default_rng(N * 100 + C * 10 + H).standard_normal((N, C, H, W))
    op = lambda t: F.adaptive_avg_pool2d(t, (OH, OW))  # noqa: E731
    want_y, want_dx = run(op, x, "contiguous")
    xl = relayout(x, x_layout)
    y, dx = run(op, xl, dy_layout)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-14)
    if channels_last(xl):
        assert is_channels_last(y) and is_channels_last(dx)


@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 6),
                          st.integers(1, 6))), OH=st.integers(1, 3), OW=st.integers(1, 3))
def test_adaptive_avg_pool_on_channels_last_passes_gradcheck(x, OH, OW):
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(ToChannelsLast()(t), (OH, OW)), x)


@pytest.mark.parametrize("how", ["leaf root", "copied gradient", "retained gradient"])
def test_a_leafs_gradient_keeps_the_channels_last_layout_it_arrives_in(how):
    """The engine copies a gradient it cannot hand over as it is (the seed of a leaf, dy passed
    through unchanged, a retained gradient) in the gradient's own memory order, NumPy's
    order "K": a channels-last gradient stays channels last."""
    rng = np.random.default_rng(0)
    x = Tensor(to_channels_last(rng.standard_normal((2, 3, 4, 5))), requires_grad=True)
    seed = to_channels_last(rng.standard_normal((2, 3, 4, 5)))
    if how == "leaf root":
        x.backward(seed)
        got = x.grad
    elif how == "copied gradient":          # y = x + 0: dL/dx is dL/dy itself, copied
        (x + 0.0).backward(seed)
        got = x.grad
    else:
        y = x * 2.0
        y.retain_grad()
        y.backward(seed)
        got = y.grad
    np.testing.assert_array_equal(got, seed)
    assert got is not seed and is_channels_last(got)
