"""conv2d, im2col and col2im: loop reference, gradcheck, PyTorch, structure and errors."""

import re

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
import minigrad.ops.conv as conv_module
from minigrad import Tensor
from minigrad.testing import arrays, check_op, conv_settings


def draw_conv(data, **limits):
    """(x, w, b or None, stride, padding) for drawn settings; float64."""
    s = data.draw(conv_settings(**limits), label="settings")
    x = data.draw(arrays((s["N"], s["C"], s["H"], s["W"])), label="x")
    w = data.draw(arrays((s["FN"], s["C"], s["FH"], s["FW"])), label="w")
    b = data.draw(st.none() | arrays((s["FN"],)), label="b")
    return x, w, b, (s["SH"], s["SW"]), (s["PH"], s["PW"])


@given(data=st.data())
def test_conv2d_matches_loops_and_gradcheck(data):
    x, w, b, stride, padding = draw_conv(data)
    inputs = (x, w) if b is None else (x, w, b)
    assert check_op(lambda *t: F.conv2d(*t, stride=stride, padding=padding),
                    lambda *a: ref.conv2d(*a, stride=stride, padding=padding), *inputs,
                    rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_conv2d_gradients_match_loop_reference(data):
    x, w, b, stride, padding = draw_conv(data)
    b = np.zeros(w.shape[0]) if b is None else b
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(dy)
    for got, expected in zip((tx.grad, tw.grad, tb.grad),
                             ref.conv2d_backward(x, w, dy, stride, padding)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_im2col_layout_matches_loops(data):
    x, w, _, stride, padding = draw_conv(data)
    FH, FW = w.shape[2:]
    np.testing.assert_array_equal(F.im2col(x, FH, FW, stride, padding),
                                  ref.im2col(x, FH, FW, stride, padding))


@given(data=st.data())
def test_im2col_and_col2im_are_adjoint(data):
    # ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for every x and c: col2im is im2col's transpose.
    x, w, _, stride, padding = draw_conv(data)
    FH, FW = w.shape[2:]
    col = F.im2col(x, FH, FW, stride, padding)
    c = data.draw(arrays(col.shape), label="c")
    back = F.col2im(c, x.shape, FH, FW, stride, padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(col, c), np.vdot(x, back), rtol=1e-12, atol=1e-12)


def test_col2im_counts_overlapping_windows():
    ones = np.ones((1, 9, 4))  # 3×3 windows over a 4×4 image: 2×2 positions
    counts = F.col2im(ones, (1, 1, 4, 4), 3, 3)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2],
                                           [1, 2, 2, 1]])


def test_conv2d_does_not_run_col2im_when_x_needs_no_grad(monkeypatch):
    calls = []

    def recording_col2im(*args, **kwargs):
        calls.append(args)
        raise AssertionError("col2im ran")

    monkeypatch.setattr(conv_module, "_col2im", recording_col2im)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)))                      # data: no grad
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    F.conv2d(x, w, b, padding=1).sum().backward()
    assert w.grad is not None and b.grad is not None and x.grad is None
    assert calls == []
    # The same call with x requiring grad does reach the patched function: the patch is live.
    x.requires_grad = True
    with pytest.raises(AssertionError, match="col2im ran"):
        F.conv2d(x, w, b, padding=1).sum().backward()
    assert len(calls) == 1


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_float32_stays_float32(with_bias):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 7, 7)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True) if with_bias \
        else None
    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert y.dtype == np.float32
    (y * 1.5).sum().backward()
    for t in (x, w) + ((b,) if with_bias else ()):
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_conv2d_settings_are_kept_on_the_op():
    y = F.conv2d(Tensor(np.ones((1, 1, 5, 5)), requires_grad=True), np.ones((1, 1, 3, 3)),
                 stride=(2, 1), padding=1)
    assert type(y.creator).__name__ == "Conv2d"
    assert y.creator.settings() == {"stride": (2, 1), "padding": (1, 1)}


def test_conv2d_uint8_images_give_the_weights_dtype():
    x = np.arange(32, dtype=np.uint8).reshape(1, 2, 4, 4)
    w = np.ones((1, 2, 2, 2), np.float32)
    y = F.conv2d(x, w)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, ref.conv2d(x.astype(np.float64), w.astype(np.float64)))


X = np.zeros((64, 3, 28, 28))
W = np.zeros((8, 3, 3, 3))


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((X, np.zeros((8, 1, 3, 3))), {}, ValueError,
     "conv2d: input has 3 channels but weight (FN, C, FH, FW)=(8, 1, 3, 3) expects 1; "
     "x.shape=(64, 3, 28, 28)"),
    ((np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5))), {}, ValueError,
     "conv2d: kernel (FH, FW)=(5, 5) is larger than the padded input (H + 2·PH, W + 2·PW)="
     "(4, 4); x.shape=(1, 1, 4, 4), padding=(0, 0)"),
    ((np.zeros((3, 28, 28)), W), {}, ValueError,
     "conv2d: input must be 4-D (N, C, H, W), got x.shape=(3, 28, 28)"),
    ((X, np.zeros((8, 27))), {}, ValueError,
     "conv2d: weight must be 4-D (FN, C, FH, FW), got w.shape=(8, 27)"),
    ((X, W, np.zeros(3)), {}, ValueError,
     "conv2d: bias must have shape (FN,)=(8,) for weight (FN, C, FH, FW)=(8, 3, 3, 3); "
     "got b.shape=(3,)"),
    ((X, W), {"stride": 0}, ValueError, "conv2d: stride must be positive, got 0"),
    ((X, W), {"stride": (1, -2)}, ValueError, "conv2d: stride must be positive, got (1, -2)"),
    ((X, W), {"padding": -1}, ValueError, "conv2d: padding must be non-negative, got -1"),
    ((X, W), {"stride": 1.5}, TypeError,
     "conv2d: stride must be an int or an (h, w) pair of ints, got 1.5"),
    ((X, W), {"padding": (1, 2, 3)}, TypeError,
     "conv2d: padding must be an int or an (h, w) pair of ints, got (1, 2, 3)"),
])
def test_conv2d_bad_input_names_the_op_and_shapes(args, kwargs, error, message):
    with pytest.raises(error) as info:
        F.conv2d(*args, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("call, message", [
    (lambda: F.im2col(np.zeros((2, 3)), 2, 2), "im2col: input must be 4-D"),
    (lambda: F.im2col(np.zeros((1, 1, 3, 3)), 4, 1), "im2col: kernel (FH, FW)=(4, 1) is larger"),
    (lambda: F.col2im(np.zeros((1, 4, 5)), (1, 1, 3, 3), 2, 2),
     "col2im: col must have shape (N, C·FH·FW, OH·OW)=(1, 4, 4)"),
    (lambda: F.col2im(np.zeros((1, 4, 4)), (3, 3), 2, 2), "col2im: x_shape must be 4-D"),
])
def test_im2col_col2im_bad_input(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ---------------------------------------------------------------------------------- PyTorch


@given(data=st.data())
def test_conv2d_matches_torch(data):
    torch = pytest.importorskip("torch")
    x, w, b, stride, padding = draw_conv(data, max_size=9, max_kernel=5, max_stride=4)
    b = data.draw(arrays((w.shape[0],)), label="b") if b is None else b
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
    py = torch.nn.functional.conv2d(px, pw, pb, stride=stride, padding=padding)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    for got, expected in ((y.data, py), (tx.grad, px.grad), (tw.grad, pw.grad),
                          (tb.grad, pb.grad)):
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
