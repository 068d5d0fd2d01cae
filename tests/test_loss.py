"""softmax, log_softmax and softmax_cross_entropy: references, gradcheck, stability, PyTorch."""

import re
import warnings

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor
from minigrad.testing import arrays, check_op, gradcheck, shapes


@st.composite
def logits_and_labels(draw, low=-3.0, high=3.0):
    """(z (N, C), integer labels (N,), the same labels one-hot (N, C))."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    z = draw(arrays((n, c), low=low, high=high))
    t = np.asarray(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), np.int64)
    return z, t, np.eye(c)[t]


@st.composite
def array_and_axis(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    return x, draw(st.integers(-x.ndim, x.ndim - 1))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(drawn=array_and_axis())
def test_softmax_and_log_softmax_match_reference_and_gradcheck(name, drawn):
    x, axis = drawn
    fn, reference = getattr(F, name), getattr(ref, name)
    assert check_op(lambda t: fn(t, axis=axis), lambda a: reference(a, axis=axis), x,
                    rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("labels", ["indices", "one-hot"])
@given(drawn=logits_and_labels())
def test_softmax_cross_entropy_matches_reference_and_gradcheck(labels, drawn):
    z, t, onehot = drawn
    t = t if labels == "indices" else onehot
    assert check_op(F.softmax_cross_entropy, ref.softmax_cross_entropy, z, t, wrt=(0,),
                    rtol=1e-12)


@given(drawn=logits_and_labels(), scale=st.floats(-3, 3))
def test_indices_and_one_hot_give_the_same_loss_and_gradient(drawn, scale):
    z, t, onehot = drawn
    results = []
    for labels in (t, onehot):
        tz = Tensor(z, requires_grad=True)
        loss = F.softmax_cross_entropy(tz, labels)
        loss.backward(np.asarray(scale))
        results.append((loss.data, tz.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-14)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-14, atol=1e-16)


@given(drawn=logits_and_labels())
def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot_times_dy_over_n(drawn):
    z, t, onehot = drawn
    tz = Tensor(z, requires_grad=True)
    F.softmax_cross_entropy(tz, t).backward(np.asarray(2.5))
    expected = (ref.softmax(z, axis=1) - onehot) * 2.5 / len(z)
    np.testing.assert_allclose(tz.grad, expected, rtol=1e-12, atol=1e-15)


def test_soft_labels_gradcheck():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((3, 4)), rng.random((3, 4))   # rows need not sum to 1
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, t), z)
    np.testing.assert_allclose(F.softmax_cross_entropy(z, t).data,
                               ref.softmax_cross_entropy(z, t), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", ["indices", "one-hot"])
def test_softmax_cross_entropy_is_finite_at_huge_logits(dtype, labels):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype=dtype)
    t = np.array([1, 2, 2])
    t = t if labels == "indices" else np.eye(3, dtype=dtype)[t]
    tz = Tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no overflow, no log(0), no 0·∞
        loss = F.softmax_cross_entropy(tz, t)
        loss.backward()
    assert loss.dtype == dtype and tz.grad.dtype == dtype
    assert np.isfinite(loss.data) and np.all(np.isfinite(tz.grad))
    # Row 0 misses by 2e4, row 1 hits with log 2, row 2 misses by 1e4 over two ties.
    np.testing.assert_allclose(loss.data, (2e4 + np.log(2) + 1e4 + np.log(2)) / 3, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_are_finite_at_huge_inputs(name, dtype):
    x = Tensor(np.array([[1e4, -1e4, 0.0]], dtype=dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(F, name)(x)
        y.backward(np.ones((1, 3), dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))


def test_softmax_cross_entropy_float32_with_float64_one_hot_stays_float32():
    z = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    loss = F.softmax_cross_entropy(z, np.eye(3)[[0, 2]])
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


def test_labels_may_be_a_tensor_or_a_list_and_get_no_gradient():
    z = Tensor(np.zeros((2, 3)), requires_grad=True)
    t = Tensor(np.array([0, 2]))
    loss = F.softmax_cross_entropy(z, t)
    loss.backward()
    assert loss.creator.needs_input_grad == (True, False)
    np.testing.assert_allclose(F.softmax_cross_entropy(z, [0, 2]).data, np.log(3))


@pytest.mark.parametrize("z, t, message", [
    (np.zeros((4, 3)), np.array([0, 1, 3, 2]),
     "softmax_cross_entropy: class indices must lie in [0, C)=[0, 3) for logits.shape=(4, 3); "
     "got labels from 0 to 3"),
    (np.zeros((4, 3)), np.array([0, -1, 2, 2]),
     "softmax_cross_entropy: class indices must lie in [0, C)=[0, 3) for logits.shape=(4, 3); "
     "got labels from -1 to 2"),
    (np.zeros((4, 3)), np.array([0, 1, 2]),
     "softmax_cross_entropy: 3 labels for 4 rows of logits; logits.shape=(4, 3), t.shape=(3,)"),
    (np.zeros((4, 3)), np.zeros((4, 5)),
     "softmax_cross_entropy: one-hot labels have width 5 but the logits have C=3 classes; "
     "logits.shape=(4, 3), t.shape=(4, 5)"),
    (np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, 1.0]),
     "softmax_cross_entropy: labels of shape (N,)=(4,) are class indices and must be "
     "integers, got dtype float64"),
    (np.zeros((4, 3)), np.zeros((4, 3, 1)),
     "softmax_cross_entropy: labels must be class indices (N,) or one-hot rows (N, C); got "
     "t.shape=(4, 3, 1) for logits.shape=(4, 3)"),
    (np.zeros(3), np.array([0]),
     "softmax_cross_entropy: logits must be (N, C) or (N, C, d1, ...), got logits.shape=(3,)"),
    (np.zeros((0, 3)), np.zeros(0, np.int64),
     "softmax_cross_entropy: the batch is empty (logits.shape=(0, 3))"),
])
def test_softmax_cross_entropy_bad_labels(z, t, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        F.softmax_cross_entropy(z, t)


@pytest.mark.parametrize("dtype", ["i1", "<i2", ">i4", ">i8", "<i8", "u1", ">u8"])
def test_label_range_check_in_every_integer_dtype(dtype):
    """Negative and too-large indices are caught in every width and byte order, and the
    largest valid index passes."""
    z = np.zeros((3, 4))
    np.testing.assert_allclose(F.softmax_cross_entropy(z, np.array([0, 3, 1], dtype)).data,
                               np.log(4))
    with pytest.raises(ValueError, match=re.escape("got labels from 0 to 4")):
        F.softmax_cross_entropy(z, np.array([0, 4, 1], dtype))
    if np.dtype(dtype).kind == "i":
        low = np.iinfo(dtype).min
        with pytest.raises(ValueError, match=re.escape(f"got labels from {low} to 1")):
            F.softmax_cross_entropy(z, np.array([0, low, 1], dtype))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_bad_axis(name):
    with pytest.raises(ValueError, match=re.escape(
            f"{name}: axis 2 is out of range for an input of shape (2, 3)")):
        getattr(F, name)(np.zeros((2, 3)), axis=2)


# ---------------------------------------------------------------------------------- PyTorch


@given(drawn=logits_and_labels(low=-20.0, high=20.0), labels=st.sampled_from(["idx", "1hot"]))
def test_softmax_cross_entropy_matches_torch(drawn, labels):
    torch = pytest.importorskip("torch")
    z, t, onehot = drawn
    t = t if labels == "idx" else onehot
    tz, pz = Tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
    loss = F.softmax_cross_entropy(tz, t)
    ploss = torch.nn.functional.cross_entropy(pz, torch.tensor(t))
    loss.backward(np.asarray(1.7))
    ploss.backward(torch.tensor(1.7, dtype=torch.float64))
    # PyTorch takes the log of the rounded Σ exp(z − m): a confident row's small loss is off
    # by up to a few ε·|log Σ| absolute there (z = [[15, 0, 0, 0, 0, 0]]: 1.3e-10 relative,
    # 2e-16 absolute); our own loss is held to the exact value below.
    np.testing.assert_allclose(loss.data, ploss.item(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tz.grad, pz.grad.numpy(), rtol=1e-10, atol=1e-14)


def _exact_cross_entropy(z, t):
    """−(1/N) Σ_n log softmax(z[n])_{t[n]} for float64 z, in 120-digit decimals (a loss of
    e^−105 still keeps 70 digits)."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 120
        total = Decimal(0)
        for row, label in zip(z, t):
            zt = Decimal(float(row[label]))
            total += sum((Decimal(float(v)) - zt).exp() for v in row).ln()
        return float(total / len(z))


@given(drawn=logits_and_labels(low=-30.0, high=30.0), confident=st.booleans())
def test_softmax_cross_entropy_is_exact_for_confident_rows_too(drawn, confident):
    """The loss to 1e-10 of the exact value, also when every row is confident (its label far
    ahead: a loss down to e^−30), where log of the rounded Σ exp would be off by ε/loss."""
    z, t, onehot = drawn
    if confident:
        z = z.copy()
        z[np.arange(len(t)), t] = 45.0
    want = _exact_cross_entropy(z, t)
    for labels in (t, onehot):
        got = F.softmax_cross_entropy(Tensor(z), labels).data
        np.testing.assert_allclose(got, want, rtol=1e-10)
    long = np.concatenate([z, np.full((len(t), 70), -60.0)], axis=1)    # > 64 classes
    np.testing.assert_allclose(F.softmax_cross_entropy(Tensor(long), t).data,
                               _exact_cross_entropy(long, t), rtol=1e-10)


def test_softmax_cross_entropy_of_a_confident_float32_row():
    """A loss of about 1e-6 in float32: log of the rounded sum would be off by some 6%."""
    z = np.array([[14.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    want = _exact_cross_entropy(z.astype(np.float64), [0])
    got = F.softmax_cross_entropy(Tensor(z), np.array([0])).data
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(drawn=array_and_axis())
def test_softmax_and_log_softmax_match_torch(name, drawn):
    torch = pytest.importorskip("torch")
    x, axis = drawn
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = getattr(F, name)(tx, axis=axis)
    py = getattr(torch.nn.functional, name)(px, dim=axis)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("labels", ["indices", "one-hot", "soft"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_softmax_cross_entropy_of_long_rows_keeps_the_loss_bits_and_the_softmax(labels, dtype,
                                                                                 data):
    # Rows of more than 64 classes keep exp(z − m) and its sums for backward: the loss is
    # within 16 ε of its value in long double (every term of it is ≥ 0 here), and the
    # gradient is (softmax − t) · dy / N with softmax = e / Σ e, within 6 ulp of the exact
    # softmax of z − m (as rounded in z's dtype, the conditioning of any softmax; 4.2 ulp the
    # largest measured).
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    N, C = data.draw(st.integers(1, 9)), data.draw(st.integers(65, 400))
    z = (rng.standard_normal((N, C)) * data.draw(st.sampled_from([1.0, 30.0]))).astype(dtype)
    idx = rng.integers(0, C, N)
    t = {"indices": idx, "one-hot": np.eye(C, dtype=dtype)[idx],
         "soft": rng.random((N, C)).astype(dtype)}[labels]
    tz = Tensor(z, requires_grad=True)
    loss = F.softmax_cross_entropy(tz, t)
    loss.backward(np.asarray(1.5, dtype))
    s = z - z.max(axis=1, keepdims=True)
    sl = z.astype(np.longdouble) - z.max(axis=1, keepdims=True)
    rest = np.where(np.arange(C) == s.argmax(axis=1)[:, None], 0, np.exp(sl)).sum(axis=1)
    logp = sl - np.log1p(rest)[:, None]               # log Σ e = log1p(Σ e − its maximum's 1)
    want = (-logp[np.arange(N), idx].sum() if labels == "indices" else -(t * logp).sum()) / N
    assert loss.data.dtype == dtype
    assert abs(loss.data - want) <= 16 * np.finfo(dtype).eps * abs(want)
    el = np.exp(s.astype(np.longdouble))          # of z − m as rounded in dtype
    p = el / el.sum(axis=1, keepdims=True)
    tt = np.eye(C)[idx] if labels == "indices" else t.astype(np.longdouble)
    expected = (p * tt.sum(axis=1, keepdims=True) - tt) * 1.5 / N
    eps = np.finfo(dtype).eps
    scale = (p * tt.sum(axis=1, keepdims=True) + tt) * 1.5 / N
    assert tz.grad.dtype == dtype
    assert np.all(np.abs(tz.grad - expected) <= 6 * eps * scale + np.finfo(dtype).tiny)


def test_softmax_cross_entropy_of_long_rows_gradchecks():
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((3, 70)), rng.integers(0, 70, 3)
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, t), z)
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, np.eye(70)[t] * 0.7), z)
