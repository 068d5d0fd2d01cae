"""gradcheck passes correct ops and catches broken ones, with a message that says where."""

import re

import numpy as np
import pytest

from minigrad import Function, Tensor, unbroadcast
from minigrad.testing import GradcheckError, check_op, gradcheck, numerical_grad

RNG = np.random.default_rng(42)


class Exp(Function):
    """y = eˣ, with a switchable mistake in backward."""

    def __init__(self, mistake=None):
        self.mistake = mistake

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, dy):
        if self.mistake == "sign":
            return -dy * self.y
        if self.mistake == "ignores dy":
            return self.y  # right only when dL/dy is all ones
        return dy * self.y


class Mul(Function):
    """z = x · y, with a switchable 1% error in dL/dy."""

    def __init__(self, mistake=None):
        self.mistake = mistake

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dz):
        dy = dz * self.x
        return dz * self.y, dy * 1.01 if self.mistake == "scale" else dy


class AddBias(Function):
    """z = x + b with b (1, M) broadcast over the N rows of x: dL/db = Σ_n dL/dz."""

    def __init__(self, mistake=None):
        self.mistake = mistake

    def forward(self, x, b):
        self.b_shape = b.shape
        return x + b

    def backward(self, dz):
        if self.mistake == "first row":  # the right shape, but one row instead of the sum
            return dz, dz[:1]
        if self.mistake == "no reduction":  # the shape of z, not of b
            return dz, dz
        return dz, unbroadcast(dz, self.b_shape)


class MatMul(Function):
    """Z = X·W.    dL/dX = dL/dZ·Wᵀ    dL/dW = Xᵀ·dL/dZ"""

    def __init__(self, mistake=None):
        self.mistake = mistake

    def forward(self, x, w):
        self.x, self.w = x, w
        return x @ w

    def backward(self, dz):
        dw = self.x.T @ dz
        return dz @ self.w.T, dw.T if self.mistake == "transposed dW" else dw


X = RNG.standard_normal((4, 3))
W = RNG.standard_normal((3, 3))  # square: a transposed dW has the right shape
B = RNG.standard_normal((1, 3))

# name: (fn taking the mistake, inputs, index of the input whose gradient is wrong)
CASES = {
    "wrong sign": (lambda m: lambda x: Exp(m)(x), (X,), 0, "sign"),
    "backward ignores dy": (lambda m: lambda x: Exp(m)(x), (X,), 0, "ignores dy"),
    "1% scale error": (lambda m: lambda x, y: Mul(m)(x, y), (X, X[::-1]), 1, "scale"),
    "broadcast summed over the wrong rows": (lambda m: lambda x, b: AddBias(m)(x, b), (X, B),
                                             1, "first row"),
    "transposed weight gradient": (lambda m: lambda x, w: MatMul(m)(x, w), (X, W), 1,
                                   "transposed dW"),
}


@pytest.mark.parametrize("name", CASES)
def test_the_correct_op_passes(name):
    make, inputs, _, _ = CASES[name]
    assert gradcheck(make(None), *inputs)


@pytest.mark.parametrize("name", CASES)
def test_gradcheck_catches_a_broken_backward(name):
    make, inputs, bad, mistake = CASES[name]
    shape = re.escape(str(inputs[bad].shape))
    with pytest.raises(GradcheckError, match=rf"input {bad} \(shape {shape}\).*at index \("):
        gradcheck(make(mistake), *inputs)


def test_a_gradient_of_the_broadcast_shape_is_caught_by_the_engine():
    """Returning dL/dz for the broadcast bias has the wrong shape: the engine stops it first."""
    with pytest.raises(RuntimeError, match=r"AddBias.backward.*\(4, 3\) for input 1.*\(1, 3\)"):
        gradcheck(lambda x, b: AddBias("no reduction")(x, b), X, B)


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)


def test_the_message_names_the_worst_element():
    class OneWrongElement(Function):
        def forward(self, x):
            return 2 * x

        def backward(self, dy):
            dx = 2 * dy
            dx[1, 2] += 0.5
            return dx

    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: OneWrongElement()(x), X)
    message = str(info.value)
    assert "input 0 (shape (4, 3))" in message
    assert "at index (1, 2)" in message
    assert "1 of 12 elements fail" in message
    analytic, numeric = re.search(r"analytic (\S+), numeric (\S+);", message).groups()
    assert abs(float(analytic) - float(numeric) - 0.5) < 1e-4


def test_a_nan_gradient_fails():
    class NaNGradient(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, dy):
            return dy * np.nan

    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda x: NaNGradient()(x), X)


def test_a_missing_gradient_counts_as_zero():
    class NoGradient(Function):
        def forward(self, x):
            return x * 3.0

        def backward(self, dy):
            return None

    with pytest.raises(GradcheckError, match=r"analytic 0, numeric"):
        gradcheck(lambda x: NoGradient()(x), X)


def test_the_output_must_stay_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: Tensor(x.data.astype(np.float32)) * 1.0, X)


def test_fn_must_return_a_tensor():
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda x: x.data, X)


def test_inputs_are_not_modified():
    x = X.copy()
    gradcheck(lambda t: t.exp(), x)
    np.testing.assert_array_equal(x, X)


def test_numerical_grad_matches_the_derivative_and_restores_x():
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    before = x.copy()
    grad = numerical_grad(lambda a: float(np.sin(a).sum()), x)
    np.testing.assert_allclose(grad, np.cos(x), atol=1e-8)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "strided"])
def test_gradcheck_perturbs_inputs_of_any_layout(layout):
    """An input that is not C-contiguous (a convolution's channels-last output, a transposed or
    sliced view) is checked as it lies: the perturbation reaches fn (before, it went into a
    copy, the numerical gradient came out 0 and the check failed however right the op was)."""
    base = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    x = {"channels_last": np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
         "transposed": base.T, "strided": base[:, ::2, ::-1]}[layout]
    assert not x.flags.c_contiguous
    assert gradcheck(lambda t: (t * t).sum(axis=1) * 0.5, x)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: t * t.detach() * 2.0, x)          # the gradient is twice too small
    before = x.copy()
    grad = numerical_grad(lambda a: float(np.sin(a).sum()), x)
    np.testing.assert_allclose(grad, np.cos(x), atol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_check_op_compares_the_forward():
    with pytest.raises(AssertionError, match="forward values differ"):
        check_op(lambda x: x * 2.0, lambda a: a * 2.0001, X)
    with pytest.raises(AssertionError, match=r"shape \(3, 4\).*\(4, 3\)"):
        check_op(lambda x: x.T, lambda a: a, X)


def test_check_op_passes_non_differentiable_inputs_unchanged():
    labels = np.array([2, 0, 1, 1])

    def pick(x, t):
        assert isinstance(t, np.ndarray) and t.dtype == labels.dtype
        return x[np.arange(len(t)), t]

    assert check_op(pick, lambda a, t: a[np.arange(len(t)), t], X, labels, wrt=[0])
