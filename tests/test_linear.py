"""affine (Y = X·W + b, W as (in, out)) and flatten: loop reference, gradcheck, PyTorch, errors."""

import contextlib
import re

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor, parallel
from minigrad.ops import linear
from minigrad.testing import arrays, check_op, shapes


def draw_affine(data):
    """(x, w, b or None) with x of shape (N, …) and w (in, out)."""
    x = data.draw(arrays(shapes(min_dims=2, max_dims=4, max_side=4)), label="x")
    d_in = int(np.prod(x.shape[1:]))
    d_out = data.draw(st.integers(1, 5), label="out")
    w = data.draw(arrays((d_in, d_out)), label="w")
    b = data.draw(st.none() | arrays((d_out,)), label="b")
    return x, w, b


@given(data=st.data())
def test_affine_matches_loops_and_gradcheck(data):
    x, w, b = draw_affine(data)
    inputs = (x, w) if b is None else (x, w, b)
    assert check_op(F.affine, ref.affine, *inputs, rtol=1e-12)


def test_affine_gradient_keeps_the_input_shape():
    x = Tensor(np.ones((2, 3, 4, 5)), requires_grad=True)
    y = F.affine(x, np.ones((60, 7)), np.zeros(7))
    assert y.shape == (2, 7)
    y.sum().backward()
    assert x.grad.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(x.grad, np.full((2, 3, 4, 5), 7.0))


@pytest.mark.parametrize("with_bias", [True, False])
def test_affine_float32_stays_float32(with_bias):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 2, 3)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((6, 5)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(5, np.float32), requires_grad=True) if with_bias else None
    y = F.affine(x, w, b)
    assert y.dtype == np.float32
    (y * 0.5).sum().backward()
    for t in (x, w) + ((b,) if with_bias else ()):
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_affine_uses_the_upstream_gradient():
    x = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    w = Tensor(np.array([[1.0], [3.0]]), requires_grad=True)
    b = Tensor(np.array([0.5]), requires_grad=True)
    F.affine(x, w, b).backward(np.array([[2.0]]))
    np.testing.assert_array_equal(x.grad, [[2.0, 6.0]])
    np.testing.assert_array_equal(w.grad, [[2.0], [4.0]])
    np.testing.assert_array_equal(b.grad, [2.0])


@pytest.mark.parametrize("args, message", [
    ((np.zeros((64, 4320)), np.zeros((4000, 100))),
     "affine: input has 4320 features per sample (x.shape=(64, 4320) flattened to (64, 4320)) "
     "but weight (in, out)=(4000, 100) expects 4000"),
    ((np.zeros((64, 30, 12, 12)), np.zeros((4000, 100))),
     "affine: input has 4320 features per sample (x.shape=(64, 30, 12, 12) flattened to "
     "(64, 4320)) but weight (in, out)=(4000, 100) expects 4000"),
    ((np.zeros(5), np.zeros((5, 2))),
     "affine: input must have a batch axis, (N, D) or (N, …), got x.shape=(5,)"),
    ((np.zeros((2, 5)), np.zeros(5)), "affine: weight must be 2-D (in, out), got w.shape=(5,)"),
    ((np.zeros((2, 5)), np.zeros((5, 3)), np.zeros((1, 3))),
     "affine: bias must have shape (out,)=(3,) for weight (in, out)=(5, 3); got b.shape=(1, 3)"),
])
def test_affine_bad_input_names_the_op_and_shapes(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        F.affine(*args)


def test_flatten_keeps_the_batch_axis_and_its_gradient_reshapes_back():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    y = F.flatten(x)
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(y.data, np.arange(24.0).reshape(2, 12))
    (y * np.arange(24.0).reshape(2, 12)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(24.0).reshape(2, 3, 4))
    assert F.flatten(np.zeros((0, 3, 2))).shape == (0, 6)


@given(data=st.data())
def test_affine_matches_torch_linear(data):
    torch = pytest.importorskip("torch")
    x, w, b = draw_affine(data)
    b = np.zeros(w.shape[1]) if b is None else b
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.affine(tx, tw, tb)
    # torch's linear takes the weight as (out, in): the transpose of ours.
    py = torch.nn.functional.linear(px.reshape(len(x), -1), pw.T, pb)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    for got, expected in ((y.data, py), (tx.grad, px.grad), (tw.grad, pw.grad),
                          (tb.grad, pb.grad)):
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- threads

@contextlib.contextmanager
def split_everything(n: int):
    """``n`` threads, and every product big enough to be shared out among them."""
    old = parallel.get_num_threads(), parallel.MIN_WORK, linear.MIN_FLOPS
    parallel.set_num_threads(n)
    parallel.MIN_WORK, linear.MIN_FLOPS = 1, 0
    try:
        yield
    finally:
        parallel.set_num_threads(old[0])
        parallel.MIN_WORK, linear.MIN_FLOPS = old[1], old[2]


def _affine_and_grads(x, w, b, dy):
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.affine(*ts)
    y.backward(dy)
    return [y.data] + [t.grad for t in ts]


@pytest.mark.parametrize("N, D, M", [(7, 12, 5), (3, 1100, 4), (1, 5, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_shared_out_among_threads_matches_the_whole_product(N, D, M, dtype):
    # (7, 12, 5): split by samples and the gradients side by side; (3, 1100, 4): the sum
    # over the features in fixed blocks. Below MIN_FLOPS (the default here) every product
    # runs whole, and is exactly x·W + b and the plain gradient products.
    rng = np.random.default_rng(N * D)
    x, w, b, dy = (rng.standard_normal(s).astype(dtype) for s in [(N, D), (D, M), (M,), (N, M)])
    whole = _affine_and_grads(x, w, b, dy)
    for got, want in zip(whole, [x @ w + b, dy @ w.T, x.T @ dy, dy.sum(axis=0)], strict=True):
        np.testing.assert_array_equal(got, want)
    shared = []
    for n in (1, 2, 3):
        with split_everything(n):
            shared.append(_affine_and_grads(x, w, b, dy))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for outputs in shared:
        for got, want in zip(outputs, whole, strict=True):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # The split does not depend on the number of threads for the forward's feature blocks.
    if D >= 1024:
        np.testing.assert_array_equal(shared[1][0], shared[0][0])
        np.testing.assert_array_equal(shared[2][0], shared[0][0])


@pytest.mark.parametrize("N, D, M", [(7, 12, 5), (3, 1100, 4)])
def test_affine_with_a_wider_bias_gives_its_dtype_whole_and_split(N, D, M):
    """x and w float32 with a float64 bias: y is float64, the float32 product cast and the
    bias added (whole, np.dot refused an output array of the bias's dtype); shared out it is
    float64 too, and equal within float32's rounding of sums of D terms (the feature
    blocks' sums are added after the cast)."""
    rng = np.random.default_rng(D)
    x, w = (rng.standard_normal(s).astype(np.float32) for s in [(N, D), (D, M)])
    b = rng.standard_normal(M)
    want = (x @ w).astype(np.float64) + b
    y = F.affine(x, w, b).data
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, want)
    with split_everything(2):
        shared = F.affine(x, w, b).data
    assert shared.dtype == np.float64
    np.testing.assert_allclose(shared, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_affine_splits_only_products_of_at_least_min_flops(monkeypatch):
    calls = []
    monkeypatch.setattr(linear, "parallel_for",
                        lambda total, body, work, blas=False: calls.append(total) or body(0, total))
    monkeypatch.setattr(linear, "side_by_side",
                        lambda parts, work, blas=False: calls.append(len(parts)) or
                        [body(0, total) for body, total in parts])
    x, w = np.ones((4, 8)), np.ones((8, 2))               # 2·4·8·2 = 128 FLOPs a product
    monkeypatch.setattr(linear, "MIN_FLOPS", 257)
    # A product below MIN_FLOPS runs whole: one slice of parallel_for, or (the forward, once
    # minigrad's threads are started or with one thread) the product called directly.
    _affine_and_grads(x, w, np.zeros(2), np.ones((4, 2)))  # one slice each (whole)
    assert calls in ([1, 1], [1])
    calls.clear()
    monkeypatch.setattr(linear, "MIN_FLOPS", 129)
    _affine_and_grads(x, w, np.zeros(2), np.ones((4, 2)))  # backward: 256 FLOPs, shared
    assert calls in ([1, 2], [2])
    calls.clear()
    monkeypatch.setattr(linear, "MIN_FLOPS", 128)
    _affine_and_grads(x, w, np.zeros(2), np.ones((4, 2)))
    assert calls == [4, 2]                                # forward split by its 4 samples
