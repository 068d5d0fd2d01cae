"""conv2d, im2col and col2im: loop reference, gradcheck, PyTorch, structure and errors."""

import contextlib
import re
import threading
import warnings

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
import minigrad.ops.conv as conv_module
from minigrad import Tensor, book
from minigrad.testing import arrays, check_op, conv_settings


def draw_conv(data, **limits):
    """(x, w, b or None, stride, padding) for drawn settings; float64."""
    s = data.draw(conv_settings(**limits), label="settings")
    x = data.draw(arrays((s["N"], s["C"], s["H"], s["W"])), label="x")
    w = data.draw(arrays((s["FN"], s["C"], s["FH"], s["FW"])), label="w")
    b = data.draw(st.none() | arrays((s["FN"],)), label="b")
    return x, w, b, (s["SH"], s["SW"]), (s["PH"], s["PW"])


# The fast path runs channels first (col (N, K, P), one product per image) below
# ``channels_last_from`` input channels, and channels last (col (N·P, K), the output NHWC in
# memory) from there on: the tests of the fast path run it both ways.
LAYOUTS = {"channels first": 10**9, "channels last": 1}


@contextlib.contextmanager
def conv_layout(name):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_module.Conv2d, "channels_last_from", LAYOUTS[name])
        yield


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_matches_loops_and_gradcheck(layout, data):
    x, w, b, stride, padding = draw_conv(data)
    inputs = (x, w) if b is None else (x, w, b)
    with conv_layout(layout):
        assert check_op(lambda *t: F.conv2d(*t, stride=stride, padding=padding),
                        lambda *a: ref.conv2d(*a, stride=stride, padding=padding), *inputs,
                        rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_gradients_match_loop_reference(layout, data):
    x, w, b, stride, padding = draw_conv(data)
    b = np.zeros(w.shape[0]) if b is None else b
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    with conv_layout(layout):
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
    monkeypatch.setattr(conv_module.Conv2d, "dx_conv_ratio", 0)   # dx by col2im when needed
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


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_matches_torch(layout, data):
    torch = pytest.importorskip("torch")
    x, w, b, stride, padding = draw_conv(data, max_size=9, max_kernel=5, max_stride=4)
    b = data.draw(arrays((w.shape[0],)), label="b") if b is None else b
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    py = torch.nn.functional.conv2d(px, pw, pb, stride=stride, padding=padding)
    dy = np.random.default_rng(2).standard_normal(py.shape)
    with conv_layout(layout):
        y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
        y.backward(dy)
    py.backward(torch.tensor(dy))
    for got, expected in ((y.data, py), (tx.grad, px.grad), (tw.grad, pw.grad),
                          (tb.grad, pb.grad)):
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------- dilation, groups, 'same', conv_transpose2d

@st.composite
def option_settings(draw, transpose=False):
    """Settings of a conv2d (or conv_transpose2d) with dilation, groups and padding modes.

    Output at least one pixel; 'same' only with stride 1; output_padding below the stride or
    the dilation (below the stride when ``transpose == "adjoint"``).
    """
    G = draw(st.integers(1, 3))
    s = {"G": G, "N": draw(st.integers(1, 2)), "Cg": draw(st.integers(1, 2)),
         "FNg": draw(st.integers(1, 2))}
    mode = "int" if transpose else draw(st.sampled_from(["int", "same", "valid"]))
    for axis in "HW":
        F_ = draw(st.integers(1, 3))
        D = draw(st.integers(1, 3))
        S = 1 if mode == "same" else draw(st.integers(1, 3))
        P = draw(st.integers(0, 2)) if mode == "int" else 0
        span = D * (F_ - 1) + 1
        if transpose:
            limit = S if transpose == "adjoint" else max(S, D)
            OP = draw(st.integers(0, limit - 1))
            size = draw(st.integers(1, 4))
            # The output (size − 1)·S − 2P + span + OP must be at least 1.
            P = min(P, ((size - 1) * S + span + OP - 1) // 2)
            s["OP" + axis] = OP
        else:
            size = draw(st.integers(max(1, span - 2 * P), max(1, span - 2 * P) + 4))
        s.update({"F" + axis: F_, "D" + axis: D, "S" + axis: S, "P" + axis: P, axis: size})
    s["padding"] = mode if mode != "int" else (s["PH"], s["PW"])
    return s


def draw_options(data, transpose=False):
    """(x, w, b or None, settings) in float64 for conv2d or conv_transpose2d."""
    s = data.draw(option_settings(transpose), label="settings")
    G, Cg, FNg = s["G"], s["Cg"], s["FNg"]
    if transpose:                          # x (N, C_in, H, W), w (C_in, C_out/G, FH, FW)
        x_shape, w_shape, b_len = (s["N"], G * Cg, s["H"], s["W"]), (G * Cg, FNg, s["FH"],
                                                                       s["FW"]), G * FNg
    else:                                  # x (N, C, H, W), w (FN, C/G, FH, FW)
        x_shape, w_shape, b_len = (s["N"], G * Cg, s["H"], s["W"]), (G * FNg, Cg, s["FH"],
                                                                       s["FW"]), G * FNg
    x = data.draw(arrays(x_shape), label="x")
    w = data.draw(arrays(w_shape), label="w")
    b = data.draw(st.none() | arrays((b_len,)), label="b")
    return x, w, b, s


def conv_kwargs(s):
    return {"stride": (s["SH"], s["SW"]), "padding": s["padding"],
            "dilation": (s["DH"], s["DW"]), "groups": s["G"]}


def transpose_kwargs(s):
    return {"stride": (s["SH"], s["SW"]), "padding": (s["PH"], s["PW"]),
            "output_padding": (s["OPH"], s["OPW"]), "groups": s["G"],
            "dilation": (s["DH"], s["DW"])}


def same_pads(w, dilation):
    """PyTorch's 'same' padding, written out: D·(F − 1) in all, the larger half after."""
    FH, FW = w.shape[2:]
    th, tw = dilation[0] * (FH - 1), dilation[1] * (FW - 1)
    return (th // 2, th - th // 2, tw // 2, tw - tw // 2)


def reference_conv(x, w, b, kwargs):
    padding = kwargs["padding"]
    if padding == "same":
        pads = same_pads(w, kwargs["dilation"])
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        pads = (padding[0], padding[0], padding[1], padding[1])
    return ref.conv2d_options(x, w, b, kwargs["stride"], pads, kwargs["dilation"],
                              kwargs["groups"])


@given(data=st.data())
def test_conv2d_options_match_loops_and_gradcheck(data):
    x, w, b, s = draw_options(data)
    kwargs = conv_kwargs(s)
    inputs = (x, w) if b is None else (x, w, b)
    assert check_op(lambda *t: F.conv2d(*t, **kwargs),
                    lambda *a: reference_conv(*a, None, kwargs) if len(a) == 2
                    else reference_conv(*a, kwargs), *inputs, rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_conv_transpose2d_matches_loops_and_gradcheck(data):
    x, w, b, s = draw_options(data, transpose=True)
    kwargs = transpose_kwargs(s)
    inputs = (x, w) if b is None else (x, w, b)
    assert check_op(lambda *t: F.conv_transpose2d(*t, **kwargs),
                    lambda *a: ref.conv_transpose2d(*a, **kwargs), *inputs,
                    rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(data):
    # ⟨conv2d(z, w), x⟩ = ⟨z, conv_transpose2d(x, w)⟩ for the same w, stride, padding,
    # dilation and groups: conv_transpose2d is conv2d's transpose in its input.
    x, w, _, s = draw_options(data, transpose="adjoint")
    kwargs = transpose_kwargs(s)
    y = F.conv_transpose2d(x, w, **kwargs).data
    z = data.draw(arrays(y.shape), label="z")
    del kwargs["output_padding"]
    conv_z = F.conv2d(z, w, **kwargs).data
    assert conv_z.shape == x.shape
    np.testing.assert_allclose(np.vdot(conv_z, x), np.vdot(z, y), rtol=1e-12, atol=1e-12)


class GeneralConv2d(conv_module.Conv2d):
    """Conv2d sent down its general path whatever its settings: the fast path's oracle."""

    def forward(self, x, w, b=None):
        self.general = True
        pads = conv_module._conv_pads(self.padding, w.shape[2:], self.dilation)
        return self._forward_general(np.asarray(x), np.asarray(w), b, pads)


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_fast_path_equals_the_general_path(layout, data):
    x, w, b, stride, padding = draw_conv(data)
    inputs = (x, w) if b is None else (x, w, b)
    fast = [Tensor(a, requires_grad=True) for a in inputs]
    plain = [Tensor(a, requires_grad=True) for a in inputs]
    with conv_layout(layout):
        y_fast = F.conv2d(*fast, stride=stride, padding=padding)
        if y_fast.creator.special is None:
            assert y_fast.creator.nhwc is (layout == "channels last")
            assert not y_fast.creator.general
        else:                   # a 1×1 kernel at stride 1 without padding (test_conv_groups)
            assert y_fast.creator.special == "pointwise"
            assert w.shape[2:] == (1, 1) and stride == (1, 1) and padding == (0, 0)
        dy = np.random.default_rng(5).standard_normal(y_fast.shape)
        y_fast.backward(dy)
    y_plain = GeneralConv2d(stride=stride, padding=padding)(*plain)
    assert y_plain.creator.general
    y_plain.backward(dy)
    np.testing.assert_allclose(y_fast.data, y_plain.data, rtol=1e-12, atol=1e-12)
    for a, c in zip(fast, plain):
        np.testing.assert_allclose(a.grad, c.grad, rtol=1e-12, atol=1e-12)


# The fast path computes dL/dx in one of two ways, picked by a size rule: col2im of
# w.reshape(FN, K)ᵀ · dy (the textbook's), or, for stride 1 with FN ≤ dx_conv_ratio·C, the
# convolution of dy with the turned filters, a block of images at a time.
DX_PATHS = {"col2im": {"dx_conv_ratio": 0},
            "convolution, one image per block": {"dx_conv_ratio": 10**6, "block_bytes": 1,
                                                 "nhwc_block_bytes": 1},
            "convolution, one block": {"dx_conv_ratio": 10**6, "block_bytes": 1 << 40,
                                       "nhwc_block_bytes": 1 << 40}}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("path", DX_PATHS)
@given(data=st.data())
def test_conv2d_dx_paths_equal_the_book_convolution_and_the_general_path(path, layout, data):
    max_stride = data.draw(st.sampled_from([1, 3]), label="max_stride")
    x, w, b, stride, padding = draw_conv(data, max_stride=max_stride, max_padding=3)
    b = np.zeros(w.shape[0]) if b is None else b
    dy = None
    results = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_module.Conv2d, "channels_last_from", LAYOUTS[layout])
        for name, value in DX_PATHS[path].items():
            mp.setattr(conv_module.Conv2d, name, value)
        ops = [lambda *t: F.conv2d(*t, stride=stride, padding=padding),
               lambda *t: GeneralConv2d(stride=stride, padding=padding)(*t)]
        if stride[0] == stride[1] and padding[0] == padding[1]:
            ops.append(lambda *t: book.Convolution(stride[0], padding[0])(*t))
        for op in ops:
            tensors = [Tensor(a, requires_grad=True) for a in (x, w, b)]
            y = op(*tensors)
            if dy is None:
                (FH, FW), (PH, PW) = w.shape[2:], padding
                by_convolution = (path != "col2im" and stride == (1, 1)
                                  and PH <= FH - 1 and PW <= FW - 1)
                if y.creator.special is None:       # else a 1×1 kernel's own path
                    assert y.creator._dx_by_convolution() is by_convolution
                dy = np.random.default_rng(3).standard_normal(y.shape)
            y.backward(dy)
            results.append((y.data, [t.grad for t in tensors]))
    (y_fast, grads_fast), *others = results
    for y_other, grads_other in others:
        np.testing.assert_allclose(y_fast, y_other, rtol=1e-10, atol=1e-12)
        for g_fast, g_other in zip(grads_fast, grads_other):
            np.testing.assert_allclose(g_fast, g_other, rtol=1e-10, atol=1e-12)


# Without a gradient for w and b (inference, frozen filters) the forward pass builds its
# columns a block of images at a time in a buffer of each thread's own and keeps none.
# Channels last it always does, and keeps the input instead, to unfold it again in backward.
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("block_bytes", [1, 1 << 12, 1 << 40])
@given(data=st.data())
def test_conv2d_forward_without_weight_grad_equals_the_kept_columns_path(block_bytes, layout,
                                                                         data):
    x, w, b, stride, padding = draw_conv(data, max_stride=3, max_padding=3)
    inputs = (x, w) if b is None else (x, w, b)
    with conv_layout(layout):
        kept = F.conv2d(*[Tensor(a, requires_grad=True) for a in inputs], stride=stride,
                        padding=padding)
    if layout == "channels last":
        assert "col" not in kept.creator.__dict__ and kept.creator.x is not None
    elif kept.creator.special is None:      # else a 1×1 kernel's own path (test_conv_groups)
        assert kept.creator.col is not None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_module.Conv2d, "channels_last_from", LAYOUTS[layout])
        mp.setattr(conv_module.Conv2d, "block_bytes" if layout == "channels first"
                   else "nhwc_block_bytes", block_bytes)
        with minigrad.no_grad():
            blocked = F.conv2d(*inputs, stride=stride, padding=padding)
        xt = Tensor(x, requires_grad=True)
        x_only = F.conv2d(xt, *inputs[1:], stride=stride, padding=padding)
    assert "col" not in x_only.creator.__dict__
    np.testing.assert_array_equal(blocked.data, x_only.data)
    np.testing.assert_allclose(blocked.data, kept.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blocked.data, ref.conv2d(x, w, b, stride, padding),
                               rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(x_only.shape)
    x_only.backward(dy)
    expected = ref.conv2d_backward(x, w, dy, stride, padding)[0]
    np.testing.assert_allclose(xt.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("w_shape, stride, padding, by_convolution", [
    ((16, 16, 3, 3), 1, 1, True),
    ((32, 16, 3, 3), 1, 1, True),              # FN = 2·C: still the convolution
    ((33, 16, 3, 3), 1, 1, False),             # FN > 2·C: col2im
    ((16, 1, 3, 3), 1, 1, False),              # the input layer's shape
    ((16, 16, 3, 3), 2, 1, False),             # stride 2: col2im
    ((16, 16, 3, 3), 1, 2, True),              # padding FH − 1
    ((16, 16, 3, 3), 1, 3, False),             # padding beyond FH − 1: col2im
    ((4, 4, 5, 3), 1, (4, 2), True),
])
def test_conv2d_dx_size_rule(w_shape, stride, padding, by_convolution):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, w_shape[1], 9, 8)), requires_grad=True)
    w = Tensor(rng.standard_normal(w_shape), requires_grad=True)
    y = F.conv2d(x, w, stride=stride, padding=padding)
    assert y.creator._dx_by_convolution() is by_convolution
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    expected = ref.conv2d_backward(x.data, w.data, dy, conv_module.pair("", "", stride, 1),
                                   conv_module.pair("", "", padding, 0))
    np.testing.assert_allclose(x.grad, expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.grad, expected[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("C, general_kwargs, nhwc", [
    (15, {}, False), (16, {}, True), (64, {}, True),
    (1, {}, False),                               # the input layer: channels first
    (16, {"dilation": 2}, False),                 # the general path has one layout
])
def test_conv2d_layout_rule(C, general_kwargs, nhwc):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, C, 7, 7)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, C, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1, **general_kwargs)
    assert y.creator.__dict__.get("nhwc", False) is nhwc
    assert conv_module.Conv2d.channels_last_from == 16


@pytest.mark.parametrize("x_layout", ["contiguous", "channels last"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("stride, by_convolution", [(1, True), (1, False), (2, False)])
def test_conv2d_channels_last_output_and_gradients_are_nhwc_in_memory(bias, stride,
                                                                      by_convolution, x_layout):
    """Channels last, y is an (N, C, H, W) view of NHWC memory, the NumPy twin of PyTorch's
    channels_last format; dL/dx comes in x's layout (as from ReLU, pooling and BatchNorm);
    dL/dw and dL/db are plain arrays."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 16, 9, 8)).astype(np.float32)
    if x_layout == "channels last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    x = Tensor(x, requires_grad=True)
    w = Tensor(rng.standard_normal((8, 16, 3, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=True) if bias else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_module.Conv2d, "dx_conv_ratio", 10**6 if by_convolution else 0)
        y = F.conv2d(x, w, b, stride=stride, padding=1)
        assert y.creator.nhwc and y.dtype == np.float32
        assert "col" not in y.creator.__dict__ and y.creator.x is x.data   # no columns kept
        assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
        assert y.creator._dx_by_convolution() is (by_convolution and stride == 1)
        dx, dw, *db = y.creator.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32
    if x_layout == "channels last":
        assert dx.transpose(0, 2, 3, 1).flags.c_contiguous and not dx.flags.c_contiguous
    else:
        assert dx.flags.c_contiguous
    assert dw.shape == w.shape and dw.flags.c_contiguous and dw.dtype == np.float32
    assert not bias or (db[0].flags.c_contiguous and db[0].shape == (8,))


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_takes_any_memory_layout_of_x_and_dy(layout, data):
    """x given channels last (as a convolution gives it) or as a strided view, and dy in any
    layout: the same values and gradients as from contiguous arrays."""
    x, w, b, stride, padding = draw_conv(data)
    views = {"contiguous": lambda a: a,
             "channels last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))
                                          .transpose(0, 3, 1, 2),
             "reversed rows": lambda a: np.ascontiguousarray(a[:, :, ::-1])[:, :, ::-1]}
    x_view = views[data.draw(st.sampled_from(sorted(views)), label="x layout")]
    dy_view = views[data.draw(st.sampled_from(sorted(views)), label="dy layout")]
    results = []
    with conv_layout(layout):
        for make_x, make_dy in ((views["contiguous"], views["contiguous"]), (x_view, dy_view)):
            tx, tw = Tensor(make_x(x), requires_grad=True), Tensor(w, requires_grad=True)
            y = F.conv2d(tx, tw, b, stride=stride, padding=padding)
            y.backward(make_dy(np.random.default_rng(4).standard_normal(y.shape)))
            results.append((y.data, tx.grad, tw.grad))
    for a, c in zip(*results):
        if layout == "channels last":     # dy made contiguous NHWC: the same products
            np.testing.assert_array_equal(a, c)
        else:                             # a strided dy may meet the BLAS transposed
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_conv2d_recycles_columns_only_once_their_graph_is_done(monkeypatch):
    """A released op's columns serve the next convolution of the same shape; an op whose graph
    is still alive (or kept by retain_graph) keeps its own, and every gradient stays right."""
    monkeypatch.setattr(conv_module._Recycled, "min_bytes", 0)      # small columns pooled too
    conv_module._recycled.clear()
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 2, 6, 5)), requires_grad=True)
    ws = [Tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True) for _ in range(3)]
    y1 = F.conv2d(x, ws[0], padding=1)
    y2 = F.conv2d(x, ws[1], padding=1)
    col1, col2 = y1.creator.col, y2.creator.col
    assert col1 is not col2
    dy = rng.standard_normal(y1.shape)
    y1.backward(dy)                                   # y1's graph is released: col1 goes back
    y3 = F.conv2d(x, ws[2], padding=1)
    assert y3.creator.col is col1                     # ... and serves y3
    y2.backward(dy, retain_graph=True)                # y2 still holds col2
    assert y2.creator.col is col2
    y4 = F.conv2d(x, ws[0], padding=1)
    assert y4.creator.col is not col2                 # col2 was not handed back
    y2.backward(dy)                                   # a second pass through the kept graph
    y3.backward(dy)
    for w in ws:
        expected = ref.conv2d_backward(x.data, w.data, dy, (1, 1), (1, 1))[1]
        np.testing.assert_allclose(w.grad, 2 * expected if w is ws[1] else expected,
                                   rtol=1e-10, atol=1e-12)
    conv_module._recycled.clear()


def test_recycled_columns_keep_within_their_budget():
    pool = conv_module._Recycled(max_bytes=1000)
    pool.min_bytes = 0
    a, b, c = np.empty(50), np.empty(50), np.empty(200)   # 400, 400, 1600 bytes
    pool.give(a)
    pool.give(b)
    pool.give(c)                                           # larger than the budget: not kept
    assert pool.bytes == 800
    pool.give(np.empty(60))                                # 480 more: the oldest (a) goes
    assert pool.bytes == 880
    assert pool.empty((50,), np.float64) is b
    assert pool.empty((50,), np.float64) is not a          # a fresh array
    assert pool.empty((50,), np.float32).dtype == np.float32


def test_recycled_columns_below_min_bytes_are_made_anew():
    """Arrays smaller than ``min_bytes`` are neither kept nor taken from the pool."""
    pool = conv_module._Recycled(max_bytes=1 << 20)
    pool.min_bytes = 1000
    small, large = np.empty(100), np.empty(200)             # 800 and 1600 bytes
    pool.give(small)
    pool.give(large)
    assert pool.bytes == 1600 and len(pool.arrays) == 1
    assert pool.empty((100,), np.float64) is not small
    assert pool.empty((200,), np.float64) is large


@pytest.mark.parametrize("memcmp_from", [0, 1 << 40])     # memcmp of memory; w.tobytes()
@given(data=st.data())
def test_kept_weight_rows_equal_the_plain_transposition(memcmp_from, data):
    """The channels-last weight rows, kept or made anew, are bit for bit the plain
    w.transpose(2, 3, 1, 0).reshape(K, FN) with the bias as the last row, in the product's
    dtype, and read-only; again after any one value of w or b is changed in place (also
    through another view of w's memory, also the sign of a zero), for a C-contiguous w and a
    strided one, whichever way the kept filters are compared."""
    FN, C, FH, FW = (data.draw(st.integers(1, 4), label=n) for n in ("FN", "C", "FH", "FW"))
    dtype_w = data.draw(st.sampled_from([np.float32, np.float64]), label="w dtype")
    w = data.draw(arrays((FN, C, FH, FW)), label="w").astype(dtype_w)
    if data.draw(st.booleans(), label="strided w"):
        w = np.repeat(w, 2, axis=3)[..., ::2]
    b = data.draw(st.none() | arrays((FN,)), label="b")
    dtype = np.result_type(w) if b is None else np.result_type(w, b)
    cache = conv_module._WeightRows(max_bytes=1 << 20)
    cache.memcmp_from = memcmp_from
    values = st.sampled_from([0.0, -0.0, 1.5, np.nan, 1e-300])
    for change in range(4):
        plain = w.transpose(2, 3, 1, 0).reshape(FH * FW * C, FN).astype(dtype)
        if b is not None:
            plain = np.concatenate([plain, b.reshape(1, FN).astype(dtype)])
        for _ in range(2):                               # made, then kept
            rows = cache.get(w, b, dtype)
            assert rows.dtype == dtype and rows.tobytes() == plain.tobytes()
            assert not rows.flags.writeable
        where = data.draw(st.sampled_from(["w", "w's memory", "b"] if b is not None
                                          else ["w", "w's memory"]), label=f"change {change}")
        value = data.draw(values, label=f"value {change}")
        if where == "w":
            w[tuple(data.draw(st.integers(0, n - 1)) for n in w.shape)] = value
        elif where == "w's memory":                      # the base of a strided w too
            memory = (w if w.base is None else w.base).reshape(-1)
            memory[data.draw(st.integers(0, memory.size - 1))] = value
        else:
            b[data.draw(st.integers(0, FN - 1))] = value


@given(data=st.data())
def test_kept_channels_first_weight_matrix_equals_the_concatenation(data):
    """The per-image path's matrix, kept or made anew (and beside the channels-last rows of
    the same filters), is bit for bit w.reshape(FN, K) with b as its last column, as
    np.concatenate makes it in the product's dtype, and read-only; NaN, -0.0 and inf kept."""
    FN, C, FH, FW = (data.draw(st.integers(1, 4), label=n) for n in ("FN", "C", "FH", "FW"))
    values = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -2.25, 1e-40])
    w = np.array(data.draw(st.lists(values, min_size=FN * C * FH * FW,
                                    max_size=FN * C * FH * FW), label="w"))
    w = w.reshape(FN, C, FH, FW).astype(data.draw(st.sampled_from([np.float32, np.float64]),
                                                  label="w dtype"))
    b = np.array(data.draw(st.lists(values, min_size=FN, max_size=FN), label="b")).astype(
        data.draw(st.sampled_from([np.float32, np.float64]), label="b dtype"))
    dtype = np.result_type(w, b)
    plain = np.concatenate([w.reshape(FN, -1), np.reshape(b, (FN, 1))], axis=1, dtype=dtype)
    cache = conv_module._WeightRows(max_bytes=1 << 20)
    for _ in range(2):                                   # made, then kept
        matrix = cache.get(w, b, dtype, channels_first=True)
        rows = cache.get(w, b, dtype)
        assert matrix.dtype == dtype and matrix.tobytes() == plain.tobytes()
        assert not matrix.flags.writeable
        assert rows.shape == (FH * FW * C + 1, FN)


X_LAYOUTS = {
    "contiguous": lambda a: a,
    "channels last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "steps": lambda a: np.repeat(a, 2, axis=3)[..., ::2],
    "reversed": lambda a: np.ascontiguousarray(a[:, :, ::-1])[:, :, ::-1],
}


@pytest.mark.parametrize("max_bytes", [0, 1 << 20])
@given(data=st.data())
def test_kept_padded_windows_equal_the_plain_window_view(max_bytes, data):
    """The per-image path's windows through the padded array each thread keeps (or, above
    ``padded_max_bytes``, made anew) are bit for bit window_view(pad(x)), for any layout and
    float dtype of x, again after x changed (the borders stay zero), and on another thread
    (which keeps arrays of its own)."""
    s = data.draw(conv_settings(), label="settings")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    layout = data.draw(st.sampled_from(list(X_LAYOUTS)), label="layout")
    shape = (s["N"], s["C"], s["H"], s["W"])
    rng = np.random.default_rng(s["H"])
    kernel, stride, padding = (s["FH"], s["FW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])
    out = conv_module.output_size("conv2d", shape, kernel, stride, padding)
    scratch = conv_module._Scratch()
    scratch.padded_max_bytes = max_bytes
    for _ in range(2):
        x = rng.standard_normal(shape).astype(dtype)
        x.reshape(-1)[::7] = -0.0
        x.reshape(-1)[3::11] = np.nan
        x = X_LAYOUTS[layout](x)
        plain = conv_module.window_view(conv_module.pad(x, padding), kernel, stride, out)
        views = [np.array(scratch.windows(x, padding, kernel, stride, out))]

        def on_another_thread(x=x, views=views):
            views.append(np.array(scratch.windows(x, padding, kernel, stride, out)))

        thread = threading.Thread(target=on_another_thread)
        thread.start()
        thread.join()
        for view in views:
            assert view.dtype == plain.dtype and view.tobytes() == np.array(plain).tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@given(data=st.data())
def test_conv2d_channels_first_equals_its_plain_formulation_bit_for_bit(threads, data):
    """The per-image path (kept padded array, kept weight matrix) gives the bits of the plain
    steps: pad, window view, copy into col with a row of ones, concatenated filters and bias,
    one product per image; float32 and float64, NaN and -0.0 among the inputs, with and
    without a graph."""
    x, w, b, stride, padding = draw_conv(data, max_batch=4)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    x, w = x.astype(dtype), w.astype(dtype)
    x.reshape(-1)[::5] = -0.0
    x.reshape(-1)[1::13] = np.nan
    b = None if b is None else b.astype(dtype)
    N, C, H, W = x.shape
    FN, _, FH, FW = w.shape
    OH, OW = conv_module.output_size("conv2d", x.shape, (FH, FW), stride, padding)
    view = conv_module.window_view(conv_module.pad(x, padding), (FH, FW), stride, (OH, OW))
    K = C * FH * FW
    col = np.ones((N, K + (b is not None), OH * OW), dtype)
    col[:, :K] = view.reshape(N, K, OH * OW)
    w_mat = w.reshape(FN, K)
    if b is not None:
        w_mat = np.concatenate([w_mat, b.reshape(FN, 1)], axis=1, dtype=dtype)
    plain = np.stack([w_mat @ col[n] for n in range(N)]).reshape(N, FN, OH, OW)
    before = minigrad.get_num_threads()
    minigrad.set_num_threads(threads)
    try:
        with conv_layout("channels first"):
            for grad in (False, True, False):
                args = [Tensor(x), Tensor(w, requires_grad=True)]
                args += [] if b is None else [Tensor(b, requires_grad=True)]
                with contextlib.nullcontext() if grad else minigrad.no_grad():
                    y = F.conv2d(*args, stride=stride, padding=padding).data
                assert y.dtype == plain.dtype and y.tobytes() == plain.tobytes()
    finally:
        minigrad.set_num_threads(before)


@pytest.mark.parametrize("memcmp_from", [0, 1 << 15, 1 << 40])
@pytest.mark.parametrize("C", [16, 1])              # channels last; channels first
def test_kept_weight_rows_follow_changes_in_place(C, memcmp_from, monkeypatch):
    """Writing into the filters' or the bias's array (no new Tensor, no version count), an
    optimiser's step or a sign of zero flipped: the next forward pass uses the new values, bit
    for bit as a convolution with fresh copies of them, on either path."""
    monkeypatch.setattr(conv_module._WeightRows, "memcmp_from", memcmp_from)
    rng = np.random.default_rng(0)
    layer = minigrad.nn.Conv2d(C, 64, 3, padding=1)        # 36 KiB of filters at C = 16
    x = Tensor(rng.standard_normal((2, C, 5, 5)).astype(np.float32))

    def fresh():
        return F.conv2d(x, layer.weight.data.copy(), layer.bias.data.copy(), padding=1).data

    def check():
        with minigrad.no_grad():
            y = layer(x).data
        assert y.tobytes() == fresh().tobytes()
        y = layer(x).data                                 # with the graph
        assert y.tobytes() == fresh().tobytes()

    check()
    layer.weight.data[0, 0, 0, 0] += 1                    # one value of the filters
    check()
    layer.bias.data[3] = -2                               # the bias alone
    check()
    opt = minigrad.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    opt.step()                                            # an optimiser's update in place
    check()
    layer.weight.data[...] = 0.0
    layer.bias.data[...] = 0.0
    check()
    layer.weight.data.reshape(-1)[-1] = 3.0               # the last value, through a view
    check()
    layer.weight.data.view(np.uint8)[-1] ^= 1             # one bit of the last byte
    check()
    layer.weight.data[...] = -0.0                         # equal as numbers, not as bits
    layer.bias.data[...] = -0.0
    check()
    channels_first = C < conv_module.Conv2d.channels_last_from
    rows = conv_module._weight_rows.get(layer.weight.data, layer.bias.data, np.dtype(np.float32),
                                        channels_first=channels_first)
    assert np.signbit(rows).all()                         # the rows were made again


@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
def test_conv2d_kept_plans_give_the_bits_of_a_call_without_them(layout, data):
    """Calls of several shapes, layouts of x and dtypes one after another, each shape's plan
    kept from its first call (the first call's shapes again with another layout and dtype of
    x, and with and without a bias), the filters and bias changed in place between rounds:
    the outputs and the gradients are, bit for bit and in the same memory layout, those of
    the same calls with no plan kept, and the float64 outputs are within rounding of the
    loop reference."""
    cases, layouts = [], []
    for _ in range(data.draw(st.integers(2, 4), label="calls")):
        x, w, b, stride, padding = draw_conv(data)
        dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
        layouts.append(data.draw(st.sampled_from(list(X_LAYOUTS)), label="layout"))
        x = X_LAYOUTS[layouts[-1]](x.astype(dtype))
        cases.append((x, w.astype(dtype), None if b is None else b.astype(dtype), stride,
                      padding))
    # The first call's shapes again with x in another layout and dtype, and the bias the
    # other way: plans of the same shapes that must not be taken for each other.
    x, w, b, stride, padding = cases[0]
    other = np.float64 if x.dtype == np.float32 else np.float32
    layout_x = data.draw(st.sampled_from([k for k in X_LAYOUTS if k != layouts[0]]),
                         label="another layout")
    cases.append((X_LAYOUTS[layout_x](np.ascontiguousarray(x).astype(other)), w.astype(other),
                  None if b is None else b.astype(other), stride, padding))
    cases.append((x, w.copy(), np.ones(w.shape[0], w.dtype) if b is None else None, stride,
                  padding))

    def run():
        results = []
        for x, w, b, stride, padding in cases:
            with minigrad.no_grad():
                results.append(F.conv2d(x, w, b, stride, padding).data)
            args = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
            args += [] if b is None else [Tensor(b, requires_grad=True)]
            y = F.conv2d(*args, stride=stride, padding=padding)
            y.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(y.dtype))
            results += [y.data] + [a.grad for a in args]
        return results

    kept = conv_module._plans
    with conv_layout(layout), pytest.MonkeyPatch.context() as mp:
        for _ in range(3):
            mp.setattr(conv_module, "_plans", conv_module.BoundedCache(None, 0))
            fresh = run()                                       # every plan worked out anew
            mp.setattr(conv_module, "_plans", kept)
            for a, c in zip(run(), fresh):
                assert a.dtype == c.dtype and a.strides == c.strides
                assert a.tobytes() == c.tobytes()
            for x, w, b, stride, padding in cases:
                if x.dtype == np.float64:
                    np.testing.assert_allclose(F.conv2d(x, w, b, stride, padding).data,
                                               ref.conv2d(x, w, b, stride, padding),
                                               rtol=1e-10, atol=1e-10)
                w *= -1.5                                       # in place: the same arrays
                if b is not None:
                    b += 1


def test_conv2d_settings_kept_serve_only_the_same_objects():
    """A call's checked settings serve later calls given the very same objects: an equal
    value of another type is checked anew (True and 1.0 for 1 are refused after 1 passed), a
    list is not kept (changed in place, it is checked again), and the op's settings are
    those the checks give."""
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    for _ in range(2):
        op = conv_module.Conv2d(stride=1, padding=1)
        assert op.settings() == {"stride": (1, 1), "padding": (1, 1)}
        assert F.conv2d(x, w, stride=(1, 1), padding="same").shape == (1, 1, 4, 4)
        op = conv_module.Conv2d(stride=(2, 1), padding=0, dilation=2, groups=1)
        assert op.settings() == {"stride": (2, 1), "padding": (0, 0), "dilation": (2, 2)}
    for bad, error in ((True, TypeError), (1.0, TypeError), ((1, True), TypeError),
                       ((1.0, 1.0), TypeError), (0, ValueError)):
        with pytest.raises(error, match="conv2d: stride"):
            conv_module.Conv2d(stride=bad)
    stride = [1, 1]
    assert conv_module.Conv2d(stride=stride).stride == (1, 1)
    stride[1] = 0                                               # the same list, now invalid
    with pytest.raises(ValueError, match="conv2d: stride must be positive"):
        conv_module.Conv2d(stride=stride)
    stride[1] = 2
    assert conv_module.Conv2d(stride=stride).stride == (1, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_scratch_memory_gives_the_bits_of_fresh_arrays(threads, monkeypatch):
    """The channels-last unfold through each thread's kept memory (grown from small to large
    blocks and back, the batch's last block smaller), in the forward pass without and with a
    graph, in backward's dL/dw and dL/db, and of dy for dL/dx by convolution, equals, bit for
    bit, the unfold into arrays of its own (``_Scratch.max_bytes`` 0), the blocks on the
    calling thread or on workers."""
    rng = np.random.default_rng(0)
    cases = [(1, 16, 6, 8, 1), (5, 16, 9, 4, 2), (1, 32, 4, 8, 0), (3, 16, 6, 8, 1)]
    data = [(rng.standard_normal((N, C, H, H)).astype(np.float32),
             rng.standard_normal((FN, C, 3, 3)).astype(np.float32),
             rng.standard_normal(FN).astype(np.float32), p) for N, C, H, FN, p in cases]
    monkeypatch.setattr(conv_module.Conv2d, "nhwc_block_bytes", 4000)   # several blocks

    def run():
        results = []
        for x, w, b, p in data:
            with minigrad.no_grad():
                results.append(F.conv2d(x, w, b, padding=p).data)
            tw, tb = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
            y = F.conv2d(Tensor(x), tw, tb, padding=p)
            y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
            results += [y.data, tw.grad, tb.grad]
            tx = Tensor(x, requires_grad=True)                   # dL/dx by convolution
            y = F.conv2d(tx, w, b, padding=p)
            y.backward(np.sin(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
            results.append(tx.grad)
        return results

    n = minigrad.get_num_threads()
    try:
        minigrad.set_num_threads(threads)
        kept = run() + run()
        # Every thread's memory anew, and none of it large enough for a block.
        monkeypatch.setattr(conv_module._Scratch, "max_bytes", 0)
        monkeypatch.setattr(conv_module, "_scratch", conv_module._Scratch())
        fresh = run()
    finally:
        minigrad.set_num_threads(n)
        conv_module._scratch.clear()
    assert len(kept) == 2 * len(fresh)
    for a, b in zip(kept, fresh + fresh):
        assert a.tobytes() == b.tobytes()


@given(data=st.data())
def test_block_unfold_equals_the_textbook_im2col(data):
    """A block's unfold (in the thread's arena or in memory of its own, a whole block or the
    batch's last, smaller one, after a larger block of another shape wrote the arena) is, bit
    for bit, the textbook's im2col with each field reordered (c, fh, fw) → (fh, fw, c), and
    the bias's column of ones past K."""
    s = data.draw(conv_settings(), label="settings")
    N, C, H, W = s["N"], s["C"], s["H"], s["W"]
    FH, FW, SH, SW, PH, PW = (s[k] for k in ("FH", "FW", "SH", "SW", "PH", "PW"))
    x = data.draw(arrays((N, C, H, W)), label="x").astype(
        data.draw(st.sampled_from([np.float32, np.float64]), label="dtype"))
    n = data.draw(st.integers(1, N), label="images per block")
    bias = data.draw(st.booleans(), label="bias")
    own = data.draw(st.booleans(), label="memory of its own")
    K = FH * FW * C
    OH, OW = 1 + (H + 2 * PH - FH) // SH, 1 + (W + 2 * PW - FW) // SW
    plain = ref.im2col(x, FH, FW, (SH, SW), (PH, PW)).astype(x.dtype)   # (N, C·FH·FW, P)
    plain = plain.transpose(0, 2, 1).reshape(N * OH * OW, C, FH, FW)
    plain = np.ascontiguousarray(plain.transpose(0, 2, 3, 1)).reshape(-1, K)
    scratch = conv_module._Scratch()
    if own:
        scratch.max_bytes = 0
    big = (n + 1, H + 2, W + 2, C, PH, PW, FH, FW, (SH, SW), K + 1, x.dtype)
    scratch.block(big).col[...] = 7                               # stale values in the arena
    block = scratch.block((n, H, W, C, PH, PW, FH, FW, (SH, SW), K + bias, x.dtype))
    x_nhwc = x.transpose(0, 2, 3, 1)
    for lo in range(0, N, n):
        hi = min(N, lo + n)
        col = block.unfold(x_nhwc, lo, hi)
        assert col.shape == ((hi - lo) * OH * OW, K + bias)
        assert col[:, :K].tobytes() == plain[lo * OH * OW:hi * OH * OW].tobytes()
        assert (col[:, K:] == 1).all()


@given(N=st.integers(1, 300), per_image=st.integers(1, 5000), block_bytes=st.integers(1, 1 << 22),
       itemsize=st.sampled_from([4, 8]))
def test_channels_last_blocks_are_within_budget_even_and_balanced(N, per_image, block_bytes,
                                                                   itemsize):
    """The channels-last blocks cover the batch in order, hold at most nhwc_block_bytes of
    columns each (or one image), are at least two for a batch of two or more, are an even
    number unless every block is one image, and differ by at most one image: two threads get
    the same work."""
    layer = conv_module.Conv2d()
    layer.nhwc_block_bytes = block_bytes
    dtype = np.float32 if itemsize == 4 else np.float64
    bounds, _ = layer._nhwc_blocks(N, per_image, dtype)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == N and (sizes >= 1).all()
    assert sizes.max() - sizes.min() <= 1
    assert sizes.max() == 1 or sizes.max() * per_image * itemsize <= block_bytes
    assert len(sizes) >= min(N, 2)
    assert len(sizes) % 2 == 0 or len(sizes) == N
    fewer = len(sizes) - 2 if len(sizes) % 2 == 0 else len(sizes) - 1    # as few as can be
    assert fewer < max(1, min(N, 2)) or -(-N // fewer) * per_image * itemsize > block_bytes


def test_kept_weight_rows_keep_within_their_budget():
    cache = conv_module._WeightRows(max_bytes=3000)
    ws = [np.ones((4, 4, 3, 3), np.float32) * i for i in range(3)]   # 2·576 bytes each
    for w in ws:
        cache.get(w, None, np.dtype(np.float32))
    assert cache.kept.bytes <= 3000 and len(cache.kept) == 2         # the oldest let go
    assert [key[0] for key, _, _ in cache.kept.entries()] == [id(w) for w in ws[1:]]
    cache.get(np.ones((64, 64, 3, 3)), None, np.dtype(np.float64))   # larger: not kept
    assert len(cache.kept) == 2


@pytest.mark.parametrize("kwargs, w_shape, general", [
    ({}, (2, 3, 3, 3), False),
    ({"padding": "valid"}, (2, 3, 3, 3), False),
    ({"padding": "same"}, (2, 3, 3, 5), False),        # odd kernel: even padding, fast path
    ({"padding": "same"}, (2, 3, 2, 3), True),         # even kernel: one more row at the bottom
    ({"dilation": 2}, (2, 3, 3, 3), True),
    ({"groups": 3}, (3, 1, 3, 3), True),
])
def test_conv2d_takes_the_general_path_only_for_new_options(kwargs, w_shape, general):
    x = Tensor(np.ones((1, 3, 6, 6)), requires_grad=True)
    y = F.conv2d(x, np.ones(w_shape), **kwargs)
    assert y.creator.general is general
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_conv2d_options_are_kept_on_the_op_only_when_given():
    x = Tensor(np.ones((1, 4, 6, 6)), requires_grad=True)
    assert F.conv2d(x, np.ones((2, 4, 3, 3))).creator.settings() == {
        "stride": (1, 1), "padding": (0, 0)}
    assert F.conv2d(x, np.ones((2, 2, 3, 3)), padding="same", dilation=2,
                    groups=2).creator.settings() == {
        "stride": (1, 1), "padding": "same", "dilation": (2, 2), "groups": 2}


@pytest.mark.parametrize("fn, args", [
    (F.conv2d, ((0, 4, 6, 6), (2, 2, 3, 3), (2,))),
    (F.conv_transpose2d, ((0, 4, 3, 3), (4, 1, 2, 2), (2,))),
])
def test_conv_options_accept_an_empty_batch(fn, args):
    tx, tw, tb = (Tensor(np.ones(shape), requires_grad=True) for shape in args)
    y = fn(tx, tw, tb, groups=2, dilation=2)
    assert y.shape[0] == 0
    y.sum().backward()
    assert tx.grad.shape == tx.shape
    np.testing.assert_array_equal(tw.grad, 0)
    np.testing.assert_array_equal(tb.grad, 0)


X4 = np.zeros((2, 4, 6, 6))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.conv2d(X4, np.zeros((3, 2, 3, 3)), groups=2), ValueError,
     "conv2d: groups=2 must divide the input channels (x.shape=(2, 4, 6, 6)) and the filters "
     "FN=3 (weight (FN, C/groups, FH, FW)=(3, 2, 3, 3))"),
    (lambda: F.conv2d(np.zeros((2, 3, 6, 6)), np.zeros((4, 1, 3, 3)), groups=2), ValueError,
     "conv2d: groups=2 must divide the input channels (x.shape=(2, 3, 6, 6)) and the filters "
     "FN=4 (weight (FN, C/groups, FH, FW)=(4, 1, 3, 3))"),
    (lambda: F.conv2d(X4, np.zeros((4, 1, 3, 3)), groups=2), ValueError,
     "conv2d: input has 4 channels but weight (FN, C/groups, FH, FW)=(4, 1, 3, 3) with "
     "groups=2 expects 2; x.shape=(2, 4, 6, 6)"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), stride=2, padding="same"), ValueError,
     "conv2d: padding='same' needs stride 1 (as in PyTorch), got stride=(2, 2)"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), padding="full"), ValueError,
     "conv2d: padding must be an int, an (h, w) pair, 'valid' or 'same', got 'full'"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), groups=0), ValueError,
     "conv2d: groups must be positive, got 0"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), groups=1.0), TypeError,
     "conv2d: groups must be an int, got 1.0"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), dilation=0), ValueError,
     "conv2d: dilation must be positive, got 0"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 3, 3)), dilation=3), ValueError,
     "conv2d: kernel (FH, FW)=(3, 3) with dilation=(3, 3) spans (7, 7), more than the padded "
     "input (6, 6); x.shape=(2, 4, 6, 6), padding (top, bottom, left, right)=(0, 0, 0, 0)"),
    (lambda: F.conv2d(X4, np.zeros((2, 4, 0, 3)), np.ones(2)), ValueError,
     "conv2d: weight (FN, C, FH, FW)=(2, 4, 0, 3) has no elements per filter; the kernel and "
     "its channels must be non-empty"),
    (lambda: F.conv2d(np.zeros((2, 0, 6, 6)), np.zeros((2, 0, 3, 3))), ValueError,
     "conv2d: weight (FN, C, FH, FW)=(2, 0, 3, 3) has no elements per filter; the kernel and "
     "its channels must be non-empty"),
    (lambda: F.conv_transpose2d(X4, np.zeros((4, 2, 3, 0))), ValueError,
     "conv_transpose2d: weight (C_in, C_out/groups, FH, FW)=(4, 2, 3, 0) has no elements per "
     "filter; the kernel and its channels must be non-empty"),
    (lambda: F.conv_transpose2d(X4, np.zeros((3, 2, 3, 3))), ValueError,
     "conv_transpose2d: input has 4 channels but weight (C_in, C_out/groups, FH, FW)="
     "(3, 2, 3, 3) expects 3; x.shape=(2, 4, 6, 6)"),
    (lambda: F.conv_transpose2d(np.zeros((2, 3, 6, 6)), np.zeros((3, 2, 3, 3)), groups=2),
     ValueError, "conv_transpose2d: groups=2 must divide the input channels C_in=3; "
                 "x.shape=(2, 3, 6, 6)"),
    (lambda: F.conv_transpose2d(X4, np.zeros((4, 2, 3, 3)), stride=2, output_padding=2),
     ValueError, "conv_transpose2d: output_padding must be smaller than the stride or the "
                 "dilation, got output_padding=(2, 2), stride=(2, 2), dilation=(1, 1)"),
    (lambda: F.conv_transpose2d(X4, np.zeros((4, 2, 3, 3)), np.zeros(3), groups=2),
     ValueError, "conv_transpose2d: bias must have shape (C_out,)=(4,) for weight "
                 "(C_in, C_out/groups, FH, FW)=(4, 2, 3, 3) and groups=2; got b.shape=(3,)"),
    (lambda: F.conv_transpose2d(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)), padding=1),
     ValueError, "conv_transpose2d: the output would be (-1, -1) for x.shape=(1, 1, 1, 1), "
                 "kernel (FH, FW)=(1, 1), stride=(1, 1), padding=(1, 1), dilation=(1, 1): "
                 "padding too large"),
])
def test_conv_options_bad_input_names_the_op_and_shapes(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@given(data=st.data())
def test_conv_options_match_torch(data):
    torch = pytest.importorskip("torch")
    transpose = data.draw(st.booleans(), label="transpose")
    x, w, b, s = draw_options(data, transpose=transpose)
    b = data.draw(arrays((s["G"] * s["FNg"],)), label="b") if b is None else b
    if transpose:
        kwargs, fn, torch_fn = (transpose_kwargs(s), F.conv_transpose2d,
                                torch.nn.functional.conv_transpose2d)
    else:
        kwargs, fn, torch_fn = conv_kwargs(s), F.conv2d, torch.nn.functional.conv2d
    tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = fn(tx, tw, tb, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # torch: 'same' with an even kernel
        py = torch_fn(px, pw, pb, **kwargs)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    for got, expected in ((y.data, py), (tx.grad, px.grad), (tw.grad, pw.grad),
                          (tb.grad, pb.grad)):
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda x: F.conv2d(x, np.ones((4, 1, 2, 3), np.float32), np.ones(4, np.float32),
                       padding="same", dilation=2, groups=2),
    lambda x: F.conv_transpose2d(x, np.ones((2, 3, 3, 3), np.float32), np.ones(6, np.float32),
                                 stride=2, output_padding=1, groups=2),
])
def test_conv_options_keep_float32_float32(call):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2, 7, 8)).astype(np.float32),
               requires_grad=True)
    y = call(x)
    assert y.dtype == np.float32
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


# float32, the training dtype: each layout's y and gradients against float64 arithmetic on the
# same float32 inputs. The documented bound (docs/ops.md) is 1e-5 of the largest exact value;
# DeepConvNet's layers measure 1e-7 to 8e-7 (benchmarks/README.md, bench_winograd).
F32_BOUND = 1e-5


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("C, FN, H, padding", [(16, 16, 12, 1), (16, 32, 9, 1),
                                                (32, 32, 7, 2), (1, 16, 10, 1)])
def test_conv2d_float32_is_within_its_bound_of_float64(layout, C, FN, H, padding):
    rng = np.random.default_rng(C + FN + H)
    x = np.maximum(rng.standard_normal((6, C, H, H)), 0).astype(np.float32)
    w = (rng.standard_normal((FN, C, 3, 3)) * np.sqrt(2 / (9 * C))).astype(np.float32)
    b = (rng.standard_normal(FN) * 0.1).astype(np.float32)
    OH = H + 2 * padding - 2
    dy = np.random.default_rng(7).standard_normal((6, FN, OH, OH)).astype(np.float32)
    results = {}
    for dtype in (np.float32, np.float64):
        tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in (x, w, b)]
        with conv_layout(layout):
            y = F.conv2d(*tensors, padding=padding)
            y.backward(dy.astype(dtype))
        results[dtype] = [y.data] + [t.grad for t in tensors]
    for name, got, exact in zip(("y", "dx", "dw", "db"), results[np.float32],
                                results[np.float64]):
        assert got.dtype == np.float32
        error = np.abs(got - exact).max() / np.abs(exact).max()
        assert error <= F32_BOUND, (name, error)


@pytest.mark.parametrize(("channels", "filters"), [(16, 16), (8, 32)])
def test_conv2d_counts_its_products_towards_the_split(channels, filters, monkeypatch):
    """At batch 8 DeepConvNet's 16→16 layer on 28×28 images touches fewer elements than two
    slices' worth of ``parallel.MIN_WORK`` but spends most of its time in products: with the
    default thresholds, two threads each take a slice of its forward pass, dL/dw and dL/dx
    (channels last; and with 8 channels in and 32 filters, the per-image layout), and every
    result is the same to the bit as on one thread."""
    from minigrad import parallel

    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, channels, 28, 28)).astype(np.float32)
    w = rng.standard_normal((filters, channels, 3, 3)).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    dy = rng.standard_normal((8, filters, 28, 28)).astype(np.float32)
    elements = 8 * 28 * 28 * (channels * 9 + 1 + filters)
    assert elements < 2 * parallel.MIN_WORK                # the elements alone: one slice
    slices = []
    real = parallel.parallel_for

    def spy(total, body, work, blas=False):
        slices.append(parallel._slices(total, work, blas))
        return real(total, body, work, blas)

    monkeypatch.setattr(conv_module, "parallel_for", spy)

    def run():
        with minigrad.no_grad():
            results = [F.conv2d(x, w, b, padding=1).data]
        tx, tw, tb = (Tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(tx, tw, tb, padding=1).backward(dy)
        return results + [tx.grad, tw.grad, tb.grad]

    n = minigrad.get_num_threads()
    try:
        minigrad.set_num_threads(1)
        one = run()
        slices.clear()
        minigrad.set_num_threads(2)
        two = run()
    finally:
        minigrad.set_num_threads(n)
    assert slices and all(s == 2 for s in slices), slices
    for a, c in zip(one, two):
        assert a.tobytes() == c.tobytes()
