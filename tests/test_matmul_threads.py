"""X @ Y shared out among minigrad's threads: the same values as NumPy's matmul on any number of
threads, the same bits for stacks of products, and gradients that pass gradcheck while split."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from split_threads import threads

from minigrad import Tensor
from minigrad.ops import arithmetic, linear
from minigrad.testing import arrays, broadcastable_shapes, check_op


@st.composite
def operands(draw, vectors=True):
    """X and Y for X @ Y: broadcast stacks of matrices, plain matrices, a stack times one
    matrix, and (with ``vectors``) 1-D operands."""
    batch_x, batch_y = draw(broadcastable_shapes(min_dims=0, max_dims=3, max_side=3))
    if draw(st.booleans()):
        batch_y = ()                                # one Y for the whole stack of X
    n, k, m = (draw(st.integers(1, 5)) for _ in range(3))
    x_shape = (k,) if vectors and draw(st.booleans()) else (*batch_x, n, k)
    y_shape = (k,) if vectors and draw(st.booleans()) else (*batch_y, k, m)
    return draw(arrays(x_shape)), draw(arrays(y_shape))


def _run(x, y):
    """Z = X @ Y and the gradients of Σ Z·G for a fixed G."""
    tx, ty = Tensor(x, requires_grad=True), Tensor(y, requires_grad=True)
    z = tx @ ty
    g = np.cos(np.arange(z.size, dtype=x.dtype)).reshape(z.shape)
    (z * Tensor(g)).sum().backward()
    return z.data, tx.grad, ty.grad, g


@settings(deadline=None)
@given(xy=operands())
def test_split_products_equal_numpy(xy):
    x, y = xy
    with threads(2):
        z, dx, dy, g = _run(x, y)
    np.testing.assert_allclose(z, np.matmul(x, y), rtol=1e-12, atol=1e-12)
    # the reference gradients: one product per matrix, summed over the broadcast axes
    x2 = x[np.newaxis] if x.ndim == 1 else x
    y2 = y[:, np.newaxis] if y.ndim == 1 else y
    g2 = g[..., np.newaxis] if y.ndim == 1 else g
    g2 = g2[..., np.newaxis, :] if x.ndim == 1 else g2
    ref_dx = _sum_to(np.matmul(g2, np.swapaxes(y2, -1, -2)), x2.shape)
    ref_dy = _sum_to(np.matmul(np.swapaxes(x2, -1, -2), g2), y2.shape)
    np.testing.assert_allclose(dx, ref_dx.reshape(x.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dy, ref_dy.reshape(y.shape), rtol=1e-12, atol=1e-12)


def _sum_to(a, shape):
    """a summed over the leading axes it has beyond shape and over shape's size-1 axes."""
    a = a.sum(axis=tuple(range(a.ndim - len(shape))))
    for axis, size in enumerate(shape):
        if size == 1 and a.shape[axis] != 1:
            a = a.sum(axis=axis, keepdims=True)
    return a


@settings(deadline=None, max_examples=30)
@given(xy=operands())
def test_split_products_pass_gradcheck(xy):
    with threads(2):
        assert check_op(lambda a, b: a @ b, np.matmul, *xy)


@pytest.mark.parametrize("x_shape, y_shape", [
    ((6, 7, 5), (6, 5, 3)),             # a stack, split by its entries
    ((5, 1, 9, 4), (1, 3, 4, 6)),       # broadcast stacks
    ((4, 9, 8), (1, 8, 5)),             # one side broadcast along the stack
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacks_give_the_same_bits_on_one_and_two_threads(x_shape, y_shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    y = rng.standard_normal(y_shape).astype(dtype)
    with threads(1):
        one = _run(x, y)
    with threads(2):
        two = _run(x, y)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2], two[2])


def test_a_stack_times_one_matrix_is_one_product(monkeypatch):
    """x (B, M, K) @ w (K, N): forward and dL/dw each one product over the B·M rows."""
    calls = []
    product = arithmetic._product

    def spy(a, b):
        calls.append((a.shape, b.shape))
        return product(a, b)

    monkeypatch.setattr(arithmetic, "_product", spy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 5))
    w = rng.standard_normal((5, 3))
    tx, tw = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    (tx @ tw).sum().backward()
    assert calls[0] == ((4, 6, 5), (5, 3))
    assert ((5, 24), (24, 3)) in calls               # dL/dw over all 24 rows at once
    np.testing.assert_allclose(tw.grad, np.einsum("bmk,bmn->kn", x, np.ones((4, 6, 3))),
                               rtol=1e-13)


def test_products_below_min_flops_run_whole(monkeypatch):
    """A product under MIN_FLOPS is one np.matmul on the calling thread; from it, split."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 5, 2))
    flops = 2 * 3 * 4 * 5 * 2
    seen = []
    real = arithmetic.parallel.parallel_for
    monkeypatch.setattr(arithmetic.parallel, "parallel_for",
                        lambda total, body, work, blas=False: (seen.append(total),
                                                               real(total, body, work, blas)))
    monkeypatch.setattr(linear, "MIN_FLOPS", flops + 1)
    np.testing.assert_array_equal(arithmetic._product(x, y), np.matmul(x, y))
    assert seen == []
    monkeypatch.setattr(linear, "MIN_FLOPS", flops)
    np.testing.assert_array_equal(arithmetic._product(x, y), np.matmul(x, y))
    assert seen == [3]                                # by the stack's 3 entries


def test_matmul_shape_error_names_the_op():
    with pytest.raises(ValueError, match=r"matmul: inner sizes differ: X.shape=\(2, 3\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 2)))
