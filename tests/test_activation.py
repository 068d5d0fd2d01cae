"""relu, sigmoid, tanh: NumPy reference, gradcheck, stability at ±1e4, dtypes, PyTorch."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor, no_grad, parallel
from minigrad.testing import arrays, check_op, shapes

# name: (NumPy reference in float64, keyword arguments of arrays())
ACTIVATIONS = {
    "relu": (lambda a: np.where(a > 0, a, 0.0), {"avoid": (0.0,), "margin": 0.01}),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), {"low": -40.0, "high": 30.0}),
    "tanh": (np.tanh, {"low": -10.0, "high": 10.0}),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_activation_matches_numpy_and_gradcheck(name, data):
    reference, kw = ACTIVATIONS[name]
    x = data.draw(arrays(shapes(max_dims=4, max_side=4), **kw), label="x")
    # Relative tolerance only: sigmoid must stay accurate for very negative x too.
    assert check_op(getattr(F, name), reference, x, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_is_stable_at_huge_inputs(name, dtype):
    x = Tensor(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no overflow or invalid-value warnings
        y = getattr(F, name)(x)
        y.backward(np.ones(5, dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
    expected_ends = {"relu": (0.0, 1e4), "sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}[name]
    np.testing.assert_array_equal(y.data[[0, -1]], np.array(expected_ends, dtype))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_float32_stays_float32_and_uses_dy(name):
    x = Tensor(np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4) + 0.05,
               requires_grad=True)
    y = getattr(F, name)(x)
    assert y.dtype == np.float32
    dy = np.arange(12, dtype=np.float32).reshape(3, 4)
    y.backward(dy)
    assert x.grad.dtype == np.float32
    local = {"relu": (x.data > 0).astype(np.float32), "sigmoid": y.data * (1 - y.data),
             "tanh": 1 - y.data ** 2}[name]
    np.testing.assert_allclose(x.grad, dy * local, rtol=1e-6)


def test_relu_gradient_at_zero_is_zero():
    x = Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    F.relu(x).backward(np.array([5.0, 5.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 5.0])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_op_names(name):
    y = getattr(F, name)(Tensor([1.0], requires_grad=True))
    assert type(y.creator).__name__ == {"relu": "ReLU", "sigmoid": "Sigmoid",
                                        "tanh": "Tanh"}[name]


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_activation_matches_torch(name, data):
    torch = pytest.importorskip("torch")
    _, kw = ACTIVATIONS[name]
    x = data.draw(arrays(shapes(min_dims=1, max_dims=4, max_side=4), **kw), label="x")
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = getattr(F, name)(tx)
    py = getattr(torch.nn.functional, name)(px) if name == "relu" else getattr(torch, name)(px)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-10, atol=1e-15)



RELU_LAYOUTS = {
    "C order": lambda a: a,
    "channels last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "strided": lambda a: np.repeat(a, 2, axis=3)[..., ::2],
    "reversed": lambda a: np.ascontiguousarray(a[:, ::-1])[:, ::-1],
    "transposed": lambda a: np.asfortranarray(a),
    "broadcast": lambda a: np.broadcast_to(a[:, :1], a.shape),
}
# Sizes about the 65,536-element chunk and above the threads' split (2·MIN_WORK elements
# read and written).
RELU_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 16, 64, 64), (1, 17, 64, 61), (6, 17, 95, 61)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", RELU_LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", RELU_SHAPES)
def test_relu_forward_is_numpy_maximum_bit_for_bit(shape, dtype, layout, threads):
    # The forward pass takes the maximum against a block of zeros a chunk at a time; it must
    # give exactly np.maximum(x, 0) everywhere, chunk edges, thread slices and layouts
    # included, with NaN kept, -0.0 as NumPy gives it, and +-inf.
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    if dtype != np.int32:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 50))] = np.nan
        flat[::97] = -0.0
        flat[5::101] = np.inf
        flat[7::103] = -np.inf
    x = RELU_LAYOUTS[layout](x)
    before = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        with no_grad():
            y = F.relu(Tensor(x)).data
    finally:
        parallel.set_num_threads(before)
    expected = np.maximum(x, np.zeros((), dtype))
    assert y.dtype == x.dtype and y.shape == x.shape
    if layout == "channels last":
        assert parallel.channels_last(y) or y.flags.c_contiguous, y.strides
    np.testing.assert_array_equal(y, expected)
    assert np.array_equal(np.signbit(y), np.signbit(expected))


@st.composite
def small_relu_inputs(draw):
    """x of at most one chunk, in C order, channels last, a transpose, with steps, reversed,
    or broadcast; float32, float64 or int32, with NaN, -0.0 and +-inf among the floats."""
    shape = draw(st.lists(st.integers(1, 6), min_size=0, max_size=4).map(tuple))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -2.5] if dtype != np.int32 else [0, 3, -4]
    values = draw(st.lists(st.sampled_from(specials), min_size=math.prod(shape),
                           max_size=math.prod(shape)))
    x = np.array(values, dtype).reshape(shape)
    ndim = len(shape)
    layout = draw(st.sampled_from(["C", "permuted", "steps", "reversed", "broadcast"]))
    if layout == "permuted" and ndim:
        order = draw(st.permutations(range(ndim)))
        x = np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))
    elif layout == "steps" and ndim:
        x = np.repeat(x, 2, axis=ndim - 1)[..., ::2]
    elif layout == "reversed" and ndim:
        x = np.ascontiguousarray(x[::-1])[::-1]
    elif layout == "broadcast" and ndim:
        x = np.broadcast_to(x[:1], shape)
    return x


@pytest.mark.parametrize("threads", [1, 2])
@given(x=small_relu_inputs())
def test_small_relu_is_numpy_maximum_bit_for_bit_in_every_layout(x, threads):
    # A small x meets the block of zeros by a plan kept per shape, strides and dtype (straight,
    # through a transpose to C order, or in x's stride order): the same values as the plain
    # np.maximum(x, 0), NaN, -0.0 and +-inf included, and y laid out like x when x fills one
    # block of memory.
    before = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        with no_grad():
            y = F.relu(Tensor(x)).data
            again = F.relu(Tensor(x)).data         # the kept plan
    finally:
        parallel.set_num_threads(before)
    expected = np.maximum(x, np.zeros((), x.dtype))
    for result in (y, again):
        assert result.dtype == x.dtype and result.shape == x.shape
        np.testing.assert_array_equal(result, expected)
        assert np.array_equal(np.signbit(result), np.signbit(expected))
    order = sorted(range(x.ndim), key=lambda i: -abs(x.strides[i]))
    if x.transpose(order).flags.c_contiguous:      # one block of memory
        size_one = [i for i in range(x.ndim) if x.shape[i] == 1]
        assert ([s for i, s in enumerate(y.strides) if i not in size_one]
                == [s for i, s in enumerate(x.strides) if i not in size_one])


# ------------------------------------- fast formulations against their plain twins, to the ulp
# Sigmoid, LeakyReLU, ELU and Softplus compute with exp, log and arithmetic on runs in the
# cache (no logaddexp, expm1, log1p or masks); each keeps its plain formulation beside it. Both
# are measured here against the exact value (the plain formula in long double): the fast one
# within the bound its docstring gives (with a little room over the largest error measured),
# with NaN, ±inf and the sign of 0 where the plain one has them.
from hypothesis.extra import numpy as hnp  # noqa: E402

from minigrad.ops.activation import sigmoid_reference  # noqa: E402
from minigrad.ops.elementwise import (  # noqa: E402
    elu_reference,
    leaky_relu_reference,
    softplus_reference,
)

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 5e-324, -5e-324, 1e-30, -1e-30,
            1e-8, -1e-8, 0.5, -0.5, 20.0, -20.0, 30.0, -32.0, -33.0, -64.0, -65.0, 88.7, -88.7,
            -103.9, -104.0, 709.0, -745.0, 1e4, -1e4, 3e38, -3e38, 1e300, -1e300]
# Largest error allowed in ulp of the result (float32, float64); measured maxima in docs/ops.md.
ULPS = {"sigmoid": (4, 3), "elu": (6, 4), "elu_grad": (5, 3), "softplus": (6, 3),
        "softplus_grad": (4, 3)}


def _exact(name, x, setting):
    """The plain formula in long double (80-bit on x86: 11 bits beyond float64)."""
    xl = x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xl)), None
        if name == "elu":
            a = np.longdouble(setting)
            neg = np.minimum(xl, 0)
            return np.where(xl > 0, xl, a * np.expm1(neg)), np.where(xl > 0, 1, a * np.exp(neg))
        beta = x.dtype.type(setting)
        bx = (x * beta).astype(np.longdouble)              # βx as the op rounds it
        linear = x * beta > 20.0
        sp = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / np.longdouble(beta)
        return np.where(linear, xl, sp), np.where(linear, 1, 1 / (1 + np.exp(-bx)))


def _ulps(got, exact, dtype):
    """|got − exact| in units of the last place of exact rounded to dtype (at least the
    smallest subnormal); 0 where both are equal (inf, NaN: checked apart)."""
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.longdouble)
        spacing = np.maximum(spacing, np.finfo(dtype).smallest_subnormal)
        err = np.abs(got.astype(np.longdouble) - exact) / spacing
    same = (got == exact) | (np.isnan(got) & np.isnan(exact))
    return np.where(same, 0, err)


def _run(name, x, setting):
    t = Tensor(x, requires_grad=True)
    op = {"sigmoid": lambda: F.sigmoid(t), "leaky_relu": lambda: F.leaky_relu(t, setting),
          "elu": lambda: F.elu(t, setting), "softplus": lambda: F.softplus(t, setting)}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "overflow encountered in multiply")   # βx, as ever
        y = op()
        y.backward(np.ones(x.shape, x.dtype))
    return y.data, t.grad


def _check_fast_against_plain(name, x, setting):
    dtype = x.dtype.type
    y, dx = _run(name, x, setting)
    assert y.dtype == dx.dtype == x.dtype
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            plain, plain_dx = sigmoid_reference(x), None
        elif name == "leaky_relu":
            plain = leaky_relu_reference(x, setting)
            plain_dx = np.where(x > 0, dtype(1), dtype(setting))
        elif name == "elu":
            plain, u = elu_reference(x, setting)
            plain_dx = np.where(x > 0, dtype(1), dtype(setting) * u)
        else:
            plain, plain_dx = softplus_reference(x, setting)
    if name == "leaky_relu":                       # the same bits
        np.testing.assert_array_equal(y, plain)
        assert np.array_equal(np.signbit(y), np.signbit(plain))
        np.testing.assert_array_equal(dx, plain_dx)
        return
    # NaN exactly where the plain formulation has it; the same infinities and signs of 0.
    np.testing.assert_array_equal(np.isnan(y), np.isnan(plain))
    np.testing.assert_array_equal(y[np.isinf(plain)], plain[np.isinf(plain)])
    zero = plain == 0
    np.testing.assert_array_equal(np.signbit(y[zero]), np.signbit(plain[zero]))
    if plain_dx is not None:
        np.testing.assert_array_equal(np.isnan(dx), np.isnan(plain_dx))
    exact, exact_dx = _exact(name, x, setting)
    k = 0 if x.dtype == np.float32 else 1
    assert _ulps(y, exact, x.dtype).max(initial=0) <= ULPS[name][k]
    if exact_dx is not None:
        assert _ulps(dx, exact_dx, x.dtype).max(initial=0) <= ULPS[name + "_grad"][k]


FAST = {"sigmoid": [None], "leaky_relu": [0.01, 0.2, 1.0], "elu": [1.0, 0.3],
        "softplus": [1.0, 2.0, 0.5]}


@pytest.mark.parametrize("name, setting", [(n, s) for n, ss in FAST.items() for s in ss])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_formulation_is_the_plain_one_to_the_ulp_on_a_sweep(name, setting, dtype):
    # Every 4099th float32 bit pattern (about a million numbers over the whole range), or
    # float64 numbers of every scale, and the special values.
    if dtype == np.float32:
        x = np.arange(0, 1 << 32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
        x = x[np.isfinite(x)]                   # (no signalling NaNs)
    else:
        rng = np.random.default_rng(3)
        x = np.ldexp(rng.uniform(-1, 1, 300_000), rng.integers(-1075, 11, 300_000))
    with np.errstate(over="ignore"):
        x = np.concatenate([x, np.array(SPECIALS).astype(dtype)])
    _check_fast_against_plain(name, x, setting)


@pytest.mark.parametrize("name, setting", [(n, s) for n, ss in FAST.items() for s in ss])
@pytest.mark.parametrize("width", [32, 64])
@given(data=st.data())
def test_fast_formulation_is_the_plain_one_to_the_ulp(name, setting, width, data):
    dtype = np.float32 if width == 32 else np.float64
    # Each special as the dtype holds it (1e-45 is 1.4e-45 in float32): hypothesis checks that
    # an array keeps the subnormals it is given (NumPy 1.24's float32 1e-45 failed that check).
    specials = [float(np.asarray(v, dtype)) for v in SPECIALS
                if width == 64 or not abs(v) < np.inf or abs(v) < 3e38]
    x = data.draw(hnp.arrays(dtype, st.integers(1, 70_000 if data.draw(st.booleans()) else 40),
                             elements=st.floats(width=width) | st.sampled_from(specials)))
    _check_fast_against_plain(name, x, setting)


@pytest.mark.parametrize("name, setting", [(n, s) for n, ss in FAST.items() for s in ss])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_formulation_gives_the_same_bits_on_one_and_two_threads(name, setting, dtype):
    # Above the threads' split (2·MIN_WORK elements read and written) and over several runs
    # of the cache-sized passes, with run and slice edges inside the array.
    x = (np.random.default_rng(4).standard_normal((2, 7, 211, 197)) * 8).astype(dtype)
    x.reshape(-1)[::101] = -0.0
    x.reshape(-1)[5::103] = np.nan
    results = []
    for threads in (1, 2):
        before = parallel.get_num_threads()
        parallel.set_num_threads(threads)
        try:
            results.append(_run(name, x, setting))
        finally:
            parallel.set_num_threads(before)
    for one, two in zip(results[0], results[1]):
        np.testing.assert_array_equal(one, two)
