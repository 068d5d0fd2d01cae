"""NumPy on Tensors, both ways: the dispatched ufuncs and functions give Tensors on the tape with
the gradients of the minigrad op; the others raise a TypeError that names them."""

import re

import numpy as np
import pytest

import minigrad
from minigrad import Tensor
from minigrad.routines import FUNCTIONS, PLAIN, PLAIN_UFUNCS, UFUNCS
from minigrad.testing import gradcheck

RNG = np.random.default_rng(0)
A = RNG.uniform(0.5, 2.0, (2, 3))
B = RNG.uniform(0.5, 2.0, (2, 3))
M = RNG.uniform(0.5, 2.0, (3, 4))

# NumPy call on Tensors → the same thing written with minigrad (the oracle), on inputs (A, B).
DISPATCHED = {
    "add": (lambda a, b: np.add(a, b), lambda a, b: a + b),
    "subtract": (lambda a, b: np.subtract(a, b), lambda a, b: a - b),
    "multiply": (lambda a, b: np.multiply(a, b), lambda a, b: a * b),
    "divide": (lambda a, b: np.divide(a, b), lambda a, b: a / b),
    "power": (lambda a, b: np.power(a, b), lambda a, b: a ** b),
    "maximum": (lambda a, b: np.maximum(a, b), lambda a, b: minigrad.maximum(a, b)),
    "minimum": (lambda a, b: np.minimum(a, b), lambda a, b: minigrad.minimum(a, b)),
    "matmul": (lambda a, b: np.matmul(a, b.T), lambda a, b: a @ b.T),
    "dot": (lambda a, b: np.dot(a, b.T), lambda a, b: a @ b.T),
    "negative": (lambda a, b: np.negative(a), lambda a, b: -a),
    "positive": (lambda a, b: np.positive(a) * b, lambda a, b: a * b),
    "square": (lambda a, b: np.square(a), lambda a, b: a ** 2),
    "exp": (lambda a, b: np.exp(a), lambda a, b: a.exp()),
    "log": (lambda a, b: np.log(a), lambda a, b: a.log()),
    "sqrt": (lambda a, b: np.sqrt(a), lambda a, b: a.sqrt()),
    "sin": (lambda a, b: np.sin(a), lambda a, b: a.sin()),
    "cos": (lambda a, b: np.cos(a), lambda a, b: a.cos()),
    "tanh": (lambda a, b: np.tanh(a), lambda a, b: a.tanh()),
    "abs": (lambda a, b: np.abs(a - 1.2), lambda a, b: (a - 1.2).abs()),
    "sum": (lambda a, b: np.sum(a, axis=1, keepdims=True), lambda a, b: a.sum(1, True)),
    "mean": (lambda a, b: np.mean(a, axis=0), lambda a, b: a.mean(0)),
    "max": (lambda a, b: np.max(a), lambda a, b: a.max()),
    "amax": (lambda a, b: np.amax(a, axis=1), lambda a, b: a.max(1)),
    "min": (lambda a, b: np.min(a, axis=1), lambda a, b: a.min(1)),
    "amin": (lambda a, b: np.amin(a), lambda a, b: a.min()),
    "var": (lambda a, b: np.var(a, axis=1, ddof=1), lambda a, b: a.var(1, ddof=1)),
    "std": (lambda a, b: np.std(a), lambda a, b: a.std()),
    "reshape": (lambda a, b: np.reshape(a, (3, 2)), lambda a, b: a.reshape(3, 2)),
    "transpose": (lambda a, b: np.transpose(a), lambda a, b: a.T),
    "transpose_axes": (lambda a, b: np.transpose(a[None], (2, 0, 1)),
                       lambda a, b: a[None].transpose(2, 0, 1)),
    "concatenate": (lambda a, b: np.concatenate([a, b], axis=1),
                    lambda a, b: minigrad.concatenate([a, b], axis=1)),
    "stack": (lambda a, b: np.stack([a, b], axis=-1), lambda a, b: minigrad.stack([a, b], -1)),
    "split": (lambda a, b: np.split(a, [1], axis=1)[1], lambda a, b: a[:, 1:]),
    "where": (lambda a, b: np.where(A > B, a, b), lambda a, b: minigrad.where(A > B, a, b)),
    "clip": (lambda a, b: np.clip(a, 0.8, 1.5), lambda a, b: a.clip(0.8, 1.5)),
    "pad": (lambda a, b: np.pad(a, 1, constant_values=2.0), lambda a, b: minigrad.pad(a, 1, 2.0)),
    "squeeze": (lambda a, b: np.squeeze(a[None]), lambda a, b: a),
    "expand_dims": (lambda a, b: np.expand_dims(a, 1), lambda a, b: a.expand_dims(1)),
    "broadcast_to": (lambda a, b: np.broadcast_to(a, (4, 2, 3)), lambda a, b: a.broadcast_to(
        (4, 2, 3))),
    "ndarray_plus_tensor": (lambda a, b: A + b, lambda a, b: b + A),
    "ndarray_times_tensor": (lambda a, b: A * a * b, lambda a, b: a * b * A),
    "ndarray_matmul_tensor": (lambda a, b: M.T @ a.T, lambda a, b: (a @ M).T),
    "ndarray_minus_tensor": (lambda a, b: A - a, lambda a, b: -a + A),
    "numpy_scalar_times_tensor": (lambda a, b: np.float64(2.0) * a, lambda a, b: a * 2.0),
}


@pytest.mark.parametrize("name", DISPATCHED)
def test_dispatched_numpy_calls_give_tensors_on_the_tape(name):
    numpy_call, minigrad_call = DISPATCHED[name]
    a, b = Tensor(A, requires_grad=True), Tensor(B, requires_grad=True)
    out = numpy_call(a, b)
    assert isinstance(out, Tensor) and out.requires_grad
    expected = minigrad_call(Tensor(A), Tensor(B))
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-14)
    assert gradcheck(numpy_call, A, B)


def test_every_table_entry_is_tested():
    names = {f.__name__ for f in [*UFUNCS, *FUNCTIONS]}
    tested = {n.split("_")[0] for n in DISPATCHED} | {"true_divide", "absolute", "broadcast_to",
                                                      "expand_dims"}
    assert names <= tested, names - tested


def test_array_plus_tensor_keeps_float32():
    t = Tensor(np.ones(2, np.float32), requires_grad=True)
    assert (np.float64(2.0) * t).dtype == np.float32
    assert (np.ones(2, np.float32) + t).dtype == np.float32


@pytest.mark.parametrize("call, name", [
    (lambda t: np.cumsum(t), "np.cumsum"),
    (lambda t: np.log1p(t), "np.log1p"),
    (lambda t: np.dot(t[None, None], t), "np.dot"),
    (lambda t: np.add.reduce(t), "np.add.reduce"),
    (lambda t: np.multiply.outer(t, t), "np.multiply.outer"),
    (lambda t: np.sort(t), "np.sort"),
    (lambda t: np.linalg.norm(t), "np.linalg.norm"),
    (lambda t: np.einsum("i,i", t, t), "np.einsum"),
    (lambda t: np.pad(t, 1, mode="reflect"), "np.pad"),
    (lambda t: np.tan(t), "np.tan"),
])
def test_other_numpy_calls_raise_naming_the_function_and_the_way(call, name):
    with pytest.raises(TypeError, match=re.escape(name) + r" .*t\.data / t\.numpy\(\)"):
        call(Tensor(np.ones(3), requires_grad=True))


@pytest.mark.parametrize("call, pattern", [
    (lambda t: np.sum(t, dtype=np.float32), "np.sum on a minigrad Tensor supports keepdims; "
                                            "got dtype"),
    (lambda t: np.exp(t, out=np.empty(3)), "np.exp on a minigrad Tensor takes no keyword"),
    (lambda t: np.clip(t, 0, 1, out=np.empty(3)), "np.clip on a minigrad Tensor cannot write"),
])
def test_unsupported_arguments_raise(call, pattern):
    with pytest.raises(TypeError, match=re.escape(pattern)):
        call(Tensor(np.ones(3), requires_grad=True))


def test_in_place_ndarray_update_with_a_tensor_raises():
    x = np.zeros(3)
    with pytest.raises(TypeError, match="np.add on a minigrad Tensor takes no keyword"):
        x += Tensor(np.ones(3), requires_grad=True)


@pytest.mark.parametrize("call, expected", [
    (lambda t: np.asarray(t), np.array([1.0, 3.0, 2.0])),
    (lambda t: np.array(t), np.array([1.0, 3.0, 2.0])),
    (lambda t: np.shape(t), (3,)),
    (lambda t: np.ndim(t), 1),
    (lambda t: np.size(t), 3),
    (lambda t: np.argmax(t), 1),
    (lambda t: np.argmin(t), 0),
    (lambda t: np.argsort(t), np.array([0, 2, 1])),
    (lambda t: np.isfinite(t), np.array([True, True, True])),
    (lambda t: np.greater(t, 1.5), np.array([False, True, True])),
    (lambda t: np.array([2.0, 2.0, 2.0]) < t, np.array([False, True, False])),
    (lambda t: np.allclose(t, [1.0, 3.0, 2.0]), True),
    (lambda t: np.where(t > 1.5), (np.array([1, 2]),)),
])
def test_plain_results_where_no_gradient_is_involved(call, expected):
    out = call(Tensor(np.array([1.0, 3.0, 2.0]), requires_grad=True))
    assert not isinstance(out, Tensor)
    if isinstance(expected, tuple) and isinstance(expected[0], np.ndarray):
        np.testing.assert_array_equal(out[0], expected[0])
    else:
        np.testing.assert_array_equal(out, expected)


def test_plain_tables_hold_no_dispatched_entries():
    assert not (set(UFUNCS) & PLAIN_UFUNCS) and not (set(FUNCTIONS) & PLAIN)
