"""The Tensor: construction, dtypes, attributes, operators, methods and grad mode."""

import numpy as np
import pytest
from hypothesis import given

import minigrad
from minigrad import Tensor, enable_grad, is_grad_enabled, no_grad
from minigrad.testing import arrays, check_op, shapes

# ------------------------------------------------------------------ construction and dtypes


@pytest.mark.parametrize("data, shape", [
    (3, ()),
    (2.5, ()),
    ([1, 2, 3], (3,)),
    ([[1.0, 2.0], [3.0, 4.0]], (2, 2)),
    (True, ()),
])
def test_python_numbers_and_lists_become_float32(data, shape):
    t = Tensor(data)
    assert t.dtype == np.float32
    assert t.shape == shape
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays_keep_their_dtype(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    t = Tensor(a, requires_grad=True)
    assert t.dtype == dtype
    assert t.data is a  # no copy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_argument_converts(dtype):
    assert Tensor([1, 2], dtype=dtype).dtype == dtype
    assert Tensor(np.arange(3), dtype=dtype).dtype == dtype


def test_int_data_without_grad_is_kept():
    labels = Tensor(np.array([0, 2, 1]))
    assert labels.dtype == np.int64 and not labels.requires_grad


@pytest.mark.parametrize("data", [np.array([1, 2]), np.array([True, False]), np.array(3)])
def test_int_and_bool_data_cannot_require_grad(data):
    with pytest.raises(TypeError, match=rf"Tensor: .*floating.*{data.dtype}"):
        Tensor(data, requires_grad=True)


def test_a_tensor_from_a_tensor_shares_the_data():
    x = Tensor(np.ones(3), requires_grad=True)
    y = Tensor(x)
    assert y.data is x.data and not y.requires_grad and y.creator is None


def test_attributes():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(a, requires_grad=True, name="x")
    assert (t.shape, t.ndim, t.dtype, t.size, len(t), t.name) == (
        (2, 3, 4), 3, np.float64, 24, 2, "x")
    assert t.grad is None and t.requires_grad and t.is_leaf and t.creator is None
    assert t.numpy() is a


def test_len_of_a_0d_tensor_is_an_error():
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(1.0))


@pytest.mark.parametrize("t, expected", [
    (Tensor([1.0, 2.0]), "Tensor([1., 2.])"),
    (Tensor([1.0, 2.0], requires_grad=True, name="w"),
     "Tensor([1., 2.], requires_grad=True, name='w')"),
    (Tensor(np.zeros(2)), "Tensor([0., 0.], dtype=float64)"),
    (Tensor([1.0], requires_grad=True) * 2, "Tensor([2.], creator=Mul)"),
])
def test_repr(t, expected):
    assert repr(t) == expected


def test_repr_of_a_large_tensor_is_summarized():
    assert "..." in repr(Tensor(np.zeros(1000, np.float32)))


@pytest.mark.parametrize("data, expected", [(np.array([2.5]), 2.5), (np.array(7.0), 7.0)])
def test_item(data, expected):
    value = Tensor(data).item()
    assert value == expected and type(value) is float


def test_item_of_many_elements_is_an_error():
    with pytest.raises(ValueError, match=r"item.*\(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_detach_shares_data_and_leaves_the_tape():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.creator is None
    z = y * x
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    assert y.grad is None


def test_numpy_conversion_via_array_protocol():
    x = Tensor(np.arange(3.0))
    np.testing.assert_array_equal(np.asarray(x), [0.0, 1.0, 2.0])
    assert np.asarray(x, dtype=np.float32).dtype == np.float32


# ------------------------------------------------------------------ operators

X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
# name: (minigrad expression, NumPy expression) for x a Tensor of X and a the array X
OPERATORS = {
    "add": (lambda x: x + 2, lambda a: a + 2),
    "radd": (lambda x: 2 + x, lambda a: 2 + a),
    "sub": (lambda x: x - 0.5, lambda a: a - 0.5),
    "rsub": (lambda x: 1 - x, lambda a: 1 - a),
    "mul": (lambda x: x * 3, lambda a: a * 3),
    "rmul": (lambda x: 2 * x, lambda a: 2 * a),
    "div": (lambda x: x / 4, lambda a: a / 4),
    "rdiv": (lambda x: 1 / x, lambda a: 1 / a),
    "pow": (lambda x: x ** 2, lambda a: a ** 2),
    "rpow": (lambda x: 2 ** x, lambda a: 2 ** a),
    "neg": (lambda x: -x, lambda a: -a),
    "pos": (lambda x: +x, lambda a: +a),
    "matmul": (lambda x: x @ np.ones((3, 2)), lambda a: a @ np.ones((3, 2))),
    "rmatmul": (lambda x: np.ones((4, 2)) @ x, lambda a: np.ones((4, 2)) @ a),
    "ndarray_add": (lambda x: np.ones(3) + x, lambda a: np.ones(3) + a),
    "ndarray_rsub": (lambda x: np.ones(3) - x, lambda a: np.ones(3) - a),
    "ndarray_mul": (lambda x: np.arange(3.0) * x, lambda a: np.arange(3.0) * a),
    "ndarray_div": (lambda x: np.ones((2, 1)) / x, lambda a: np.ones((2, 1)) / a),
    "ndarray_pow": (lambda x: np.full(3, 2.0) ** x, lambda a: np.full(3, 2.0) ** a),
    "tensor_tensor": (lambda x: x * Tensor(np.arange(3.0)) - Tensor(np.ones((2, 1))),
                      lambda a: a * np.arange(3.0) - np.ones((2, 1))),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_operator(name):
    expression, reference = OPERATORS[name]
    assert check_op(expression, reference, X)


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_give_tensors(name):
    y = OPERATORS[name][0](Tensor(X, requires_grad=True))
    assert isinstance(y, Tensor) and y.requires_grad


@pytest.mark.parametrize("name", [n for n in OPERATORS if not n.startswith("ndarray")
                                  and n != "tensor_tensor" and "matmul" not in n])
def test_float32_stays_float32_with_python_scalars(name):
    y = OPERATORS[name][0](Tensor(X.astype(np.float32), requires_grad=True))
    assert y.dtype == np.float32
    y.sum().backward()


def test_float32_stays_float32_with_numpy_scalars():
    x = Tensor(np.ones(2, np.float32), requires_grad=True)
    y = x * np.float64(2.0) + np.float64(1.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ------------------------------------------------------------------ methods

METHODS = {
    "sum": (lambda t: t.sum(), np.sum),
    "sum_axis": (lambda t: t.sum(axis=1), lambda a: a.sum(axis=1)),
    "sum_neg_axis_keepdims": (lambda t: t.sum(axis=-1, keepdims=True),
                              lambda a: a.sum(axis=-1, keepdims=True)),
    "sum_tuple": (lambda t: t.sum(axis=(0, 2)), lambda a: a.sum(axis=(0, 2))),
    "mean": (lambda t: t.mean(), np.mean),
    "mean_axis_keepdims": (lambda t: t.mean(axis=(1, -1), keepdims=True),
                           lambda a: a.mean(axis=(1, -1), keepdims=True)),
    "max": (lambda t: t.max(), np.max),
    "max_axis": (lambda t: t.max(axis=-2), lambda a: a.max(axis=-2)),
    "max_tuple_keepdims": (lambda t: t.max(axis=(0, 1), keepdims=True),
                           lambda a: a.max(axis=(0, 1), keepdims=True)),
    "reshape_tuple": (lambda t: t.reshape((6, 4)), lambda a: a.reshape(6, 4)),
    "reshape_args": (lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1)),
    "transpose": (lambda t: t.transpose(), lambda a: a.transpose()),
    "transpose_args": (lambda t: t.transpose(1, 2, 0), lambda a: a.transpose(1, 2, 0)),
    "T": (lambda t: t.T, lambda a: a.T),
    "flatten": (lambda t: t.flatten(), lambda a: a.flatten()),
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: (t * t + 1).log(), lambda a: np.log(a * a + 1)),
    "sqrt": (lambda t: (t * t + 1).sqrt(), lambda a: np.sqrt(a * a + 1)),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "slice": (lambda t: t[1:, ::2], lambda a: a[1:, ::2]),
    "int_array_repeats": (lambda t: t[np.array([0, 1, 0])], lambda a: a[np.array([0, 1, 0])]),
    "bool_mask": (lambda t: t[t.data > 0], lambda a: a[a > 0]),
    "ellipsis_none": (lambda t: t[..., None, 1], lambda a: a[..., None, 1]),
}


@pytest.mark.parametrize("name", METHODS)
def test_method(name):
    method, reference = METHODS[name]
    # distinct values, none near 0 (relu) and no ties (max)
    x = np.random.default_rng(1).permutation(np.arange(1, 25)).reshape(2, 3, 4) / 8.0 - 1.55
    assert check_op(method, reference, x)


@given(x=arrays(shapes(min_dims=1, max_dims=3), avoid=(0.0,), margin=0.1))
def test_comparisons_give_plain_bool_arrays_without_a_graph(x):
    t = Tensor(x, requires_grad=True)
    for result, expected in [(t > 0, x > 0), (t >= 0.5, x >= 0.5), (t < 0, x < 0),
                             (t <= -1, x <= -1), (t == x, x == x), (t != 0, x != 0),
                             (t > Tensor(x * 0.5), x > x * 0.5)]:
        assert type(result) is np.ndarray and result.dtype == np.bool_
        np.testing.assert_array_equal(result, expected)
    assert t.creator is None


def test_tensors_are_hashable_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert len({a, b}) == 2 and a in {a}


def test_retain_grad_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="retain_grad"):
        Tensor([1.0]).retain_grad()


def test_argmax_is_a_plain_array():
    t = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]), requires_grad=True)
    np.testing.assert_array_equal(t.argmax(axis=1), [1, 0])


# ------------------------------------------------------------------ grad mode


def test_no_grad_as_a_context_manager_records_nothing_and_restores():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.creator is None


def test_no_grad_as_a_decorator():
    @no_grad()
    def step(t):
        assert not is_grad_enabled()
        return t * 2

    y = step(Tensor([1.0], requires_grad=True))
    assert not y.requires_grad and is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(KeyError), no_grad():
        raise KeyError
    assert is_grad_enabled()

    @no_grad()
    def fail():
        raise KeyError

    with pytest.raises(KeyError):
        fail()
    assert is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = Tensor([3.0], requires_grad=True)
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            y = x * x
        assert not is_grad_enabled()
    y.backward()
    np.testing.assert_array_equal(x.grad, [6.0])


def test_enable_grad_as_a_decorator():
    @enable_grad()
    def square(t):
        return t * t

    with no_grad():
        y = square(Tensor([2.0], requires_grad=True))
    assert y.requires_grad and minigrad.is_grad_enabled()
