"""minigrad.book: every textbook twin equals its fast op (values and gradients, float64), passes
gradcheck, and DeepConvNet.load_book_params reproduces the book's test-time network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor, book
from minigrad.models import DeepConvNet
from minigrad.testing import arrays, distinct_arrays, gradcheck, gradgradcheck


# ---------------------------------------------------------------------------------- helpers
def assert_twins(book_fn, fast_fn, *inputs, seed=0):
    """The book's op and the fast op give the same output and the same gradient of every
    input, for one random upstream gradient (not ones), in float64."""
    results = []
    for fn in (book_fn, fast_fn):
        tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
        y = fn(*tensors)
        dy = np.random.default_rng(seed).standard_normal(y.shape)
        y.backward(dy)
        results.append((y, [t.grad for t in tensors]))
    (yb, grads_b), (yf, grads_f) = results
    assert yb.dtype == yf.dtype == np.float64, (yb.dtype, yf.dtype)
    assert yb.shape == yf.shape, f"book output {yb.shape}, fast output {yf.shape}"
    np.testing.assert_allclose(yb.data, yf.data, rtol=1e-10, atol=1e-12, err_msg="values")
    for i, (gb, gf) in enumerate(zip(grads_b, grads_f)):
        assert gb is not None and gf is not None, f"input {i}: a gradient is missing"
        assert gb.shape == gf.shape, f"input {i}: book {gb.shape}, fast {gf.shape}"
        np.testing.assert_allclose(gb, gf, rtol=1e-10, atol=1e-12,
                                   err_msg=f"gradient of input {i}")


@st.composite
def book_windows(draw, pool=False):
    """N, C, FN, FH, FW, stride, pad, H, W for the book's layers (one stride and one pad for
    both axes, as the book takes them), with OH, OW ≥ 1. For pooling pad ≤ min(FH, FW) // 2,
    so every window holds an input element."""
    s = {"N": draw(st.integers(1, 2)), "C": draw(st.integers(1, 2)),
         "FN": draw(st.integers(1, 3)), "FH": draw(st.integers(1, 3)),
         "FW": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 3))}
    top = min(s["FH"], s["FW"]) // 2 if pool else 2
    s["pad"] = draw(st.integers(0, top))
    for size, kernel in (("H", "FH"), ("W", "FW")):
        s[size] = draw(st.integers(max(1, s[kernel] - 2 * s["pad"]), 6))
    return s


def image(s):
    return (s["N"], s["C"], s["H"], s["W"])


# ---------------------------------------------------------------------------- im2col/col2im
@given(s=book_windows(), data=st.data())
def test_im2col_is_minigrads_im2col_in_the_books_row_layout(s, data):
    x = data.draw(arrays(image(s)))
    col = book.im2col(x, s["FH"], s["FW"], s["stride"], s["pad"])
    fast = F.im2col(x, s["FH"], s["FW"], stride=s["stride"], padding=s["pad"])  # (N, CFF, OO)
    N, CFF, OO = fast.shape
    assert col.shape == (N * OO, CFF)
    np.testing.assert_array_equal(col, fast.transpose(0, 2, 1).reshape(N * OO, CFF))


@given(s=book_windows(), data=st.data())
def test_col2im_is_the_adjoint_of_im2col_and_equals_minigrads(s, data):
    x = data.draw(arrays(image(s)))
    col = book.im2col(x, s["FH"], s["FW"], s["stride"], s["pad"])
    y = data.draw(arrays(col.shape))
    back = book.col2im(y, x.shape, s["FH"], s["FW"], s["stride"], s["pad"])
    assert back.shape == x.shape
    # ⟨im2col x, y⟩ = ⟨x, col2im y⟩
    np.testing.assert_allclose((col * y).sum(), (x * back).sum(), rtol=1e-10, atol=1e-10)
    N = x.shape[0]
    fast_y = y.reshape(N, -1, col.shape[1]).transpose(0, 2, 1)
    fast = F.col2im(fast_y, x.shape, s["FH"], s["FW"], stride=s["stride"], padding=s["pad"])
    np.testing.assert_allclose(back, fast, rtol=1e-12, atol=1e-12)


@given(s=book_windows(), data=st.data())
def test_im2col_and_col2im_ops_are_differentiable_twice(s, data):
    x = data.draw(arrays((1, 1, s["H"], s["W"])))         # one plane: the check is per element
    settings = (s["FH"], s["FW"], s["stride"], s["pad"])
    col = book.im2col(x, *settings)
    y = data.draw(arrays(col.shape))
    assert gradgradcheck(lambda t: book.layers.Im2col(*settings)(t) ** 2, x)
    assert gradgradcheck(lambda t: book.layers.Col2im(x.shape, *settings)(t) ** 2, y)


def test_im2col_keeps_float32_and_names_a_filter_that_does_not_fit():
    x = np.ones((1, 1, 3, 3), np.float32)
    assert book.im2col(x, 2, 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"im2col: a \(5, 5\) filter does not fit"):
        book.im2col(x, 5, 5)
    with pytest.raises(ValueError, match=r"col2im: col must have shape .*got col.shape=\(3, 4\)"):
        book.col2im(np.ones((3, 4)), (1, 1, 3, 3), 2, 2)


# ------------------------------------------------------------------------- conv and pooling
@given(s=book_windows(), data=st.data())
def test_convolution_equals_conv2d(s, data):
    x = data.draw(arrays(image(s)))
    W = data.draw(arrays((s["FN"], s["C"], s["FH"], s["FW"])))
    b = data.draw(arrays((s["FN"],)))
    stride, pad = s["stride"], s["pad"]
    assert_twins(lambda x, W, b: book.Convolution(stride, pad)(x, W, b),
                 lambda x, W, b: F.conv2d(x, W, b, stride=stride, padding=pad), x, W, b)
    assert gradcheck(lambda x, W, b: book.Convolution(stride, pad)(x, W, b), x, W, b)
    assert gradgradcheck(lambda x, W, b: book.Convolution(stride, pad)(x, W, b), x, W, b)


@given(s=book_windows(pool=True), data=st.data())
def test_pooling_equals_max_pool2d(s, data):
    # The book pads with zeros, max_pool2d with −∞: with padding they agree on positive inputs.
    low = -10.0 if s["pad"] == 0 else 0.5
    x = data.draw(distinct_arrays(image(s), low=low, high=low + 20.0))
    settings = (s["FH"], s["FW"], s["stride"], s["pad"])
    assert_twins(lambda x: book.Pooling(*settings)(x),
                 lambda x: F.max_pool2d(x, (s["FH"], s["FW"]), stride=s["stride"],
                                        padding=s["pad"]), x)
    assert gradcheck(lambda x: book.Pooling(*settings)(x), x)
    assert gradgradcheck(lambda x: book.Pooling(*settings)(x), x)


def test_pooling_pads_with_zeros_as_the_book_does():
    x = -np.ones((1, 1, 2, 2))
    y = book.Pooling(2, 2, stride=2, pad=1)(Tensor(x)).data
    np.testing.assert_array_equal(y, np.zeros((1, 1, 2, 2)))     # the padding wins
    np.testing.assert_array_equal(F.max_pool2d(x, 2, stride=2, padding=1).data, x)


@pytest.mark.parametrize("call, message", [
    (lambda: book.Convolution()(np.ones((1, 3, 5, 5)), np.ones((2, 1, 3, 3)), np.ones(2)),
     r"Convolution: .*x.shape=\(1, 3, 5, 5\), W.shape=\(2, 1, 3, 3\)"),
    (lambda: book.Pooling(2, 2)(np.ones(4)), r"Pooling: expected \(N, C, H, W\), got shape \(4,\)"),
    (lambda: book.Affine()(np.ones((2, 3)), np.ones((4, 5)), np.ones(5)),
     r"Affine: .*x.shape=\(2, 3\) \(D=3\), W.shape=\(4, 5\)"),
    (lambda: book.BatchNormalization()(np.ones((2, 3)), np.ones(4), np.ones(3)),
     r"BatchNormalization: gamma and beta need shape \(D,\)=\(3,\).*gamma.shape=\(4,\)"),
])
def test_bad_shapes_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------- affine, activations
@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4),
       tail=st.sampled_from([(3,), (2, 2, 2)]))
def test_affine_equals_the_fast_affine(data, n, m, tail):
    x = data.draw(arrays((n, *tail)))
    W = data.draw(arrays((int(np.prod(tail)), m)))
    b = data.draw(arrays((m,)))
    assert_twins(lambda x, W, b: book.Affine()(x, W, b), F.affine, x, W, b)
    assert gradcheck(lambda x, W, b: book.Affine()(x, W, b), x, W, b)
    assert gradgradcheck(lambda x, W, b: book.Affine()(x, W, b), x, W, b)


@pytest.mark.parametrize("twin, fast", [(book.Relu, F.relu), (book.Sigmoid, F.sigmoid)])
@given(data=st.data())
def test_activation_equals_the_fast_one(twin, fast, data):
    x = data.draw(arrays(st.tuples(st.integers(1, 4), st.integers(1, 5)), avoid=(0.0,),
                         margin=0.01))
    assert_twins(lambda x: twin()(x), fast, x)
    assert gradcheck(lambda x: twin()(x), x)
    assert gradgradcheck(lambda x: twin()(x), x)


def test_relu_leaves_the_incoming_gradient_untouched():
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    dy = np.array([5.0, 7.0])
    book.Relu()(x).backward(dy)
    np.testing.assert_array_equal(dy, [5.0, 7.0])
    np.testing.assert_array_equal(x.grad, [0.0, 7.0])


# ---------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("one_hot", [False, True])
@given(data=st.data(), n=st.integers(1, 5), k=st.integers(2, 5))
def test_softmax_with_loss_equals_softmax_cross_entropy(one_hot, data, n, k):
    x = data.draw(arrays((n, k), low=-5.0, high=5.0))
    labels = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    t = np.eye(k)[labels] if one_hot else labels
    assert_twins(lambda x: book.SoftmaxWithLoss(delta=0)(x, t),
                 lambda x: F.softmax_cross_entropy(x, t), x)
    assert gradcheck(lambda x: book.SoftmaxWithLoss(delta=0)(x, t), x)
    assert gradgradcheck(lambda x: book.SoftmaxWithLoss(delta=0)(x, t), x)
    # The book's δ = 1e-7 lowers the loss by log(y + δ) − log y ∈ [0, δ / y] per sample.
    exact = float(F.softmax_cross_entropy(x, t).data)
    with_delta = float(book.SoftmaxWithLoss()(Tensor(x), t).data)
    y = book.softmax(x)[np.arange(n), labels]
    assert 0 <= exact - with_delta <= np.mean(1e-7 / y) * (1 + 1e-6)


def test_softmax_with_loss_names_bad_labels():
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: .*x.shape=\(2, 3\), t.shape=\(3,\)"):
        book.SoftmaxWithLoss()(np.zeros((2, 3)), np.array([0, 1, 2]))


# ------------------------------------------------------------------------------- dropout
@given(x=arrays(st.tuples(st.integers(1, 6), st.integers(1, 6)), avoid=(0.0,), margin=0.01),
       p=st.floats(0.05, 0.9), seed=st.integers(0, 2**32 - 1))
def test_book_dropout_is_inverted_dropout_times_1_minus_p(x, p, seed):
    def twin(t, train_flg=True):
        return book.Dropout(p, train_flg=train_flg, rng=np.random.default_rng(seed))(t)

    def fast(t):
        return F.dropout(t, p=p, rng=np.random.default_rng(seed))

    # Training, the same mask: the book's output and gradient are the inverted ones × (1 − p).
    dy = np.random.default_rng(1).standard_normal(x.shape)
    tb, tf = Tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    yb, yf = twin(tb), fast(tf)
    yb.backward(dy)
    yf.backward(dy)
    np.testing.assert_array_equal(yb.data != 0, yf.data != 0)        # the same mask
    np.testing.assert_allclose(yf.data, yb.data / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(tf.grad, tb.grad / (1 - p), rtol=1e-12)
    # Test time: the book scales by (1 − p), inverted dropout is the identity.
    np.testing.assert_allclose(twin(Tensor(x), train_flg=False).data, (1 - p) * x, rtol=1e-15)
    assert F.dropout(x, p=p, training=False) is x
    assert gradcheck(twin, x)
    assert gradcheck(lambda t: twin(t, train_flg=False), x)
    assert gradgradcheck(twin, x)


# --------------------------------------------------------------------- batch normalization
def batch_norm_reference(x, gamma, beta, eps):
    """y = γ (x − mean) / √(var + ε) + β per column of x (N, D), and the closed-form
    gradient dL/dx = γ / (N std) · (N dy − Σ dy − xn Σ (dy · xn))."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(var + eps)
    xn = (x - mean) / std

    def grads(dy):
        N = len(x)
        dx = gamma / (N * std) * (N * dy - dy.sum(axis=0) - xn * (dy * xn).sum(axis=0))
        return dx, (dy * xn).sum(axis=0), dy.sum(axis=0)

    return gamma * xn + beta, grads, mean, var


@given(data=st.data(), n=st.integers(2, 5), tail=st.sampled_from([(3,), (2, 2, 3)]))
def test_batch_normalization_equals_the_formula(data, n, tail):
    x = data.draw(arrays((n, *tail)))
    D = int(np.prod(tail))
    gamma = data.draw(arrays((D,), low=0.5, high=2.0))
    beta = data.draw(arrays((D,)))
    x2 = x.reshape(n, D)
    if np.any(x2.std(axis=0) < 1e-3):   # a constant column: xn is 0/√ε, the check is moot
        return
    eps = 10e-7
    rm, rv = np.zeros(D), np.ones(D)
    tx, tg, tb = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    y = book.BatchNormalization(0.9, rm, rv)(tx, tg, tb)
    expected, grads, mean, var = batch_norm_reference(x2, gamma, beta, eps)
    np.testing.assert_allclose(y.data, expected.reshape(x.shape), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(dy)
    for got, want in zip((tx.grad, tg.grad, tb.grad), grads(dy.reshape(n, D))):
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-8, atol=1e-10)
    # The book's momentum 0.9 weighs the old running value.
    np.testing.assert_allclose(rm, 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var, rtol=1e-12)
    assert gradcheck(lambda x, g, b: book.BatchNormalization()(x, g, b), x, gamma, beta)
    assert gradgradcheck(lambda x, g, b: book.BatchNormalization()(x, g, b), x, gamma, beta)
    # The fast op normalises per channel of (N, C, *): on x as (N, D) that is per activation.
    assert_twins(lambda x, g, b: book.BatchNormalization()(x, g, b),
                 lambda x, g, b: F.batch_norm(x.reshape(n, D), None, None, g, b, training=True,
                                              eps=eps).reshape(x.shape), x, gamma, beta)
    assert_twins(lambda x, g, b: book.BatchNormalization(
                     running_mean=rm, running_var=rv, train_flg=False)(x, g, b),
                 lambda x, g, b: F.batch_norm(x.reshape(n, D), rm, rv, g, b, training=False,
                                              eps=eps).reshape(x.shape), x, gamma, beta)
    # Test time: the running statistics, constants.
    test = book.BatchNormalization(running_mean=rm, running_var=rv, train_flg=False)
    y_test = test(Tensor(x), gamma, beta).data.reshape(n, D)
    np.testing.assert_allclose(y_test, gamma * (x2 - rm) / np.sqrt(rv + eps) + beta,
                               rtol=1e-12)
    assert gradcheck(lambda x, g, b: book.BatchNormalization(
        running_mean=rm.copy(), running_var=rv.copy(), train_flg=False)(x, g, b),
        x, gamma, beta)
    assert gradgradcheck(lambda x, g, b: book.BatchNormalization(
        running_mean=rm.copy(), running_var=rv.copy(), train_flg=False)(x, g, b),
        x, gamma, beta)


def test_batch_normalization_equals_torch_batch_norm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    N, D, eps = 6, 4, 10e-7
    x, gamma, beta = rng.standard_normal((N, D)), rng.random(D) + 0.5, rng.standard_normal(D)
    rm0, rv0 = rng.standard_normal(D), rng.random(D) + 0.5
    dy = rng.standard_normal((N, D))
    rm, rv = rm0.copy(), rv0.copy()
    tx, tg, tb = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    y = book.BatchNormalization(0.9, rm, rv, eps=eps)(tx, tg, tb)
    y.backward(dy)
    px, pg, pb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    prm, prv = torch.tensor(rm0), torch.tensor(rv0)
    # PyTorch's momentum 0.1 weighs the new batch value: the book's momentum 0.9.
    py = torch.nn.functional.batch_norm(px, prm, prv, pg, pb, training=True, momentum=0.1,
                                        eps=eps)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((tx, px), (tg, pg), (tb, pb)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(rm, prm.numpy(), rtol=1e-12)
    # PyTorch's running variance takes the unbiased batch variance, the book's the biased one.
    var = x.var(axis=0)
    np.testing.assert_allclose(prv.numpy(), 0.9 * rv0 + 0.1 * var * N / (N - 1), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 * rv0 + 0.1 * var, rtol=1e-12)


def test_batch_normalization_at_test_time_needs_running_statistics():
    with pytest.raises(ValueError, match="BatchNormalization: train_flg=False needs"):
        book.BatchNormalization(train_flg=False)(np.ones((2, 3)), np.ones(3), np.zeros(3))


# --------------------------------------------------------------------- numerical gradient
@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(1, 3)), low=-2.0, high=2.0))
def test_numerical_gradient_is_the_central_difference(x):
    def f(a):
        return float(np.sum(np.sin(a) * a))

    grad = book.numerical_gradient(f, x.copy())
    # Central differences err by h²/6 · f''' (|f'''| ≤ 3 + |x| here).
    np.testing.assert_allclose(grad, np.sin(x) + x * np.cos(x), atol=1e-8 * 6)


def test_two_layer_net_gradients_agree():
    rng = np.random.default_rng(0)
    net = book.TwoLayerNet(6, 5, 3, weight_init_std=0.5, rng=rng)
    x, t = rng.standard_normal((4, 6)), np.array([0, 2, 1, 2])
    grad, num = net.gradient(x, t), net.numerical_gradient(x, t)
    for key in ("W1", "b1", "W2", "b2"):
        assert np.abs(grad[key] - num[key]).mean() < 1e-6, key
    before = {k: p.data.copy() for k, p in net.params.items()}
    net.numerical_gradient(x, t)
    for k, p in net.params.items():              # the parameters are restored exactly
        np.testing.assert_array_equal(p.data, before[k])


# ------------------------------------------------------------------------ simple conv net
def test_simple_convnet_twin_equals_the_fast_model():
    from minigrad import nn
    from minigrad.models import SimpleConvNet

    rng = np.random.default_rng(0)
    conv = {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}
    twin = book.SimpleConvNet((1, 8, 8), conv, hidden_size=5, output_size=4,
                              weight_init_std=0.3, rng=rng)
    nn.manual_seed(0)
    fast = SimpleConvNet((1, 8, 8), filter_num=3, filter_size=3, padding=1, hidden_size=5,
                         output_size=4).to(np.float64)
    for (name, p), q in zip(twin.params.items(), fast.parameters()):
        assert p.shape == q.shape, name
        q.data = p.data.copy()
    x, t = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3])
    np.testing.assert_allclose(twin.predict(x).data, fast(x).data, rtol=1e-10)
    grads = twin.gradient(x, t)
    fast.loss(x, t).backward()
    for (name, g), q in zip(grads.items(), fast.parameters()):
        np.testing.assert_allclose(g, q.grad, rtol=1e-9, atol=1e-12, err_msg=name)


# --------------------------------------------------------------- DeepConvNet, the book's way
def book_deep_convnet_predict(x, params):
    """The book's DeepConvNet.predict(x, train_flg=False), with the book's layers."""
    h = Tensor(x)
    pads = (1, 1, 1, 2, 1, 1)
    for i in range(1, 7):
        h = book.Relu()(book.Convolution(1, pads[i - 1])(h, params[f"W{i}"], params[f"b{i}"]))
        if i % 2 == 0:
            h = book.Pooling(2, 2, stride=2)(h)
    h = book.Relu()(book.Affine()(h, params["W7"], params["b7"]))
    h = book.Dropout(0.5, train_flg=False)(h)
    h = book.Affine()(h, params["W8"], params["b8"])
    return book.Dropout(0.5, train_flg=False)(h).data


def random_book_params(net, rng):
    return {k: rng.standard_normal(v.shape) * 0.3 for k, v in net.book_params().items()}


def test_load_book_params_gives_the_books_test_time_outputs():
    rng = np.random.default_rng(0)
    net = DeepConvNet().to(np.float64)
    params = random_book_params(net, rng)
    net.load_book_params(params)
    x = rng.random((2, 1, 28, 28))
    expected = book_deep_convnet_predict(x, params)
    np.testing.assert_allclose(net.eval()(x).data, expected, rtol=1e-10, atol=1e-12)
    # W8 and b8 carry the test-time dropout factors; loading them unscaled would not match.
    np.testing.assert_allclose(net.affine2.weight.data, params["W8"] / 4, rtol=1e-15)
    np.testing.assert_allclose(net.affine2.bias.data, params["b8"] / 2, rtol=1e-15)
    for key, value in net.book_params().items():   # and book_params undoes it
        np.testing.assert_allclose(value, params[key], rtol=1e-15, err_msg=key)


def test_load_book_params_refuses_a_dtype_with_a_type_error():
    net = DeepConvNet()
    params = net.book_params()
    params["W3"] = params["W3"].astype(np.complex128)
    before = net.conv1.weight.data.copy()
    with pytest.raises(TypeError, match=r"load_book_params: W3 .*dtype complex128"):
        net.load_book_params(params)
    np.testing.assert_array_equal(net.conv1.weight.data, before)   # nothing was written
