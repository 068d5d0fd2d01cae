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
