"""conv2d's depthwise and 1×1 paths, and conv_transpose2d through conv2d's fast path: against
the general paths (im2col and one product per group), the loop reference with gradcheck,
PyTorch, both layouts of x, 1 and 2 threads."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from split_threads import threads as on_threads

import minigrad
import minigrad.functional as F
import minigrad.ops.conv as conv_module
from minigrad import Tensor
from minigrad.testing import arrays, check_op


class GeneralConv2d(conv_module.Conv2d):
    """Conv2d sent down its general path whatever its settings: the oracle of the others."""

    def forward(self, x, w, b=None):
        self.general, self.special = True, None
        pads = conv_module._conv_pads(self.padding, w.shape[2:], self.dilation)
        return self._forward_general(np.asarray(x), np.asarray(w), b, pads)


def channels_last(a):
    """The same values as a (N, C, H, W), in NHWC memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@st.composite
def depthwise_settings(draw):
    """x (N, C, H, W), w (C, 1, FH, FW), groups C; any stride, padding, dilation (the
    depthwise path takes any stride with the padding within the dilated kernel's span)."""
    s = {"N": draw(st.integers(1, 3)), "C": draw(st.integers(2, 5))}  # C = 1: groups 1
    mode = draw(st.sampled_from(["int", "int", "same"]))
    for axis in "HW":
        k = draw(st.integers(1, 4))
        d = draw(st.integers(1, 2))
        stride = 1 if mode == "same" else draw(st.integers(1, 3))
        p = draw(st.integers(0, 2)) if mode == "int" else 0
        span = d * (k - 1) + 1
        size = draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + 5))
        s.update({"F" + axis: k, "D" + axis: d, "S" + axis: stride, "P" + axis: p,
                  axis: size})
    s["padding"] = mode if mode == "same" else (s["PH"], s["PW"])
    return s


@st.composite
def grouped_settings(draw):
    """x (N, G·Cg, H, W), w (G·FNg, Cg, FH, FW): any groups, stride, padding, dilation."""
    s = {"N": draw(st.integers(1, 3)), "G": draw(st.integers(2, 3)),
         "Cg": draw(st.integers(1, 3)), "FNg": draw(st.integers(1, 3))}
    mode = draw(st.sampled_from(["int", "int", "same"]))
    for axis in "HW":
        k = draw(st.integers(1, 3))
        d = draw(st.integers(1, 2))
        stride = 1 if mode == "same" else draw(st.integers(1, 3))
        p = draw(st.integers(0, 2)) if mode == "int" else 0
        span = d * (k - 1) + 1
        size = draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + 4))
        s.update({"F" + axis: k, "D" + axis: d, "S" + axis: stride, "P" + axis: p,
                  axis: size})
    s["padding"] = mode if mode == "same" else (s["PH"], s["PW"])
    return s


@st.composite
def pointwise_settings(draw):
    return {"N": draw(st.integers(1, 3)), "C": draw(st.integers(1, 6)),
            "FN": draw(st.integers(1, 6)), "H": draw(st.integers(1, 6)),
            "W": draw(st.integers(1, 6))}


def draw_case(data, kind, dtype=np.float64):
    """(inputs, kwargs, path) for a drawn depthwise or 1×1 convolution."""
    if kind == "depthwise":
        s = data.draw(depthwise_settings(), label="settings")
        x_shape, w_shape = (s["N"], s["C"], s["H"], s["W"]), (s["C"], 1, s["FH"], s["FW"])
        kwargs = {"stride": (s["SH"], s["SW"]), "padding": s["padding"],
                  "dilation": (s["DH"], s["DW"]), "groups": s["C"]}
        within = all(s["P" + a] <= s["D" + a] * (s["F" + a] - 1) for a in "HW")
        path = "depthwise" if within else "grouped"
    elif kind == "grouped":
        s = data.draw(grouped_settings(), label="settings")
        G = s["G"]
        x_shape = (s["N"], G * s["Cg"], s["H"], s["W"])
        w_shape = (G * s["FNg"], s["Cg"], s["FH"], s["FW"])
        kwargs = {"stride": (s["SH"], s["SW"]), "padding": s["padding"],
                  "dilation": (s["DH"], s["DW"]), "groups": G}
        within = all(s["P" + a] <= s["D" + a] * (s["F" + a] - 1) for a in "HW")
        depthwise = (s["Cg"], s["FNg"]) == (1, 1) and within
        path = "depthwise" if depthwise else "grouped"
    else:
        s = data.draw(pointwise_settings(), label="settings")
        x_shape, w_shape = (s["N"], s["C"], s["H"], s["W"]), (s["FN"], s["C"], 1, 1)
        kwargs, path = {}, "pointwise"
    x = data.draw(arrays(x_shape), label="x").astype(dtype)
    if data.draw(st.booleans(), label="x channels last"):
        x = channels_last(x)                            # 1×1 too: one path for both layouts
    w = data.draw(arrays(w_shape), label="w").astype(dtype)
    b = data.draw(st.none() | arrays((w_shape[0],)), label="b")
    inputs = (x, w) if b is None else (x, w, b.astype(dtype))
    return inputs, kwargs, path


def run(op, inputs, dy, needs=None):
    tensors = [Tensor(a, requires_grad=True if needs is None else needs[i])
               for i, a in enumerate(inputs)]
    y = op(*tensors)
    path = y.creator.special                    # before backward releases the op's values
    y.backward(dy)
    return y, [t.grad for t in tensors], path


KINDS = ["depthwise", "pointwise", "grouped"]


def small_case(kind, C):
    """(w_shape, kwargs) of a convolution of C channels that takes ``kind``'s path."""
    if kind == "depthwise":
        return (C, 1, 3, 3), {"groups": C, "padding": 1}
    if kind == "grouped":                           # two filters a channel
        return (2 * C, 1, 3, 3), {"groups": C, "padding": 1}
    return (5, C, 1, 1), {}


@pytest.fixture(autouse=True)
def every_group_on_its_own(monkeypatch):
    """The grouped path for the small shapes drawn here (its size rule has a test of its
    own); the kept plans, made under the rule, are let go before and after."""
    monkeypatch.setattr(conv_module.Conv2d, "grouped_from", 0)
    conv_module._plans.clear()
    yield
    conv_module._plans.clear()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data())
def test_special_paths_equal_the_general_path(kind, dtype, data):
    inputs, kwargs, expected_path = draw_case(data, kind, dtype)
    dy = _dy(inputs, kwargs, dtype)
    y, grads, path = run(lambda *t: F.conv2d(*t, **kwargs), inputs, dy)
    assert path == expected_path
    y_plain, grads_plain, _ = run(lambda *t: GeneralConv2d(**kwargs)(*t), inputs, dy)
    assert y.dtype == y_plain.dtype and y.shape == y_plain.shape
    if dtype == np.float64:
        tol = {"rtol": 1e-12, "atol": 1e-12}
        np.testing.assert_allclose(y.data, y_plain.data, **tol)
        for a, c in zip(grads, grads_plain):
            assert a.dtype == c.dtype
            np.testing.assert_allclose(a, c, **tol)
    else:                       # float32: within the documented bound of the largest value
        for a, c in zip([y.data] + grads, [y_plain.data] + grads_plain):
            assert a.dtype == np.float32 and a.shape == c.shape
            assert np.abs(a - c).max() <= F32_BOUND * max(np.abs(c).max(), 1.0)


F32_BOUND = 1e-5


def _dy(inputs, kwargs, dtype):
    with minigrad.no_grad():
        shape = GeneralConv2d(**kwargs)(*inputs).shape
    return np.random.default_rng(3).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_special_paths_match_loops_and_gradcheck(kind, data):
    inputs, kwargs, _ = draw_case(data, kind)
    # gradcheck perturbs x through a flat view: C-contiguous (the layouts are held equal above)
    inputs = tuple(np.ascontiguousarray(a) for a in inputs)
    x, w = inputs[:2]
    b = inputs[2] if len(inputs) == 3 else None
    padding = kwargs.get("padding", (0, 0))
    dilation = kwargs.get("dilation", (1, 1))
    if padding == "same":
        th, tw = dilation[0] * (w.shape[2] - 1), dilation[1] * (w.shape[3] - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        pads = (padding[0], padding[0], padding[1], padding[1])
    expected = ref.conv2d_options(x, w, b, kwargs.get("stride", (1, 1)), pads, dilation,
                                  kwargs.get("groups", 1))
    assert check_op(lambda *t: F.conv2d(*t, **kwargs), lambda *a: expected, *inputs,
                    rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_special_paths_match_torch(kind, data):
    torch = pytest.importorskip("torch")
    inputs, kwargs, _ = draw_case(data, kind)
    dy = _dy(inputs, kwargs, np.float64)
    y, grads, _ = run(lambda *t: F.conv2d(*t, **kwargs), inputs, dy)
    tt = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in inputs]
    ty = torch.nn.functional.conv2d(*tt, **kwargs)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(grads, tt):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS + ["depthwise, strided"])
@pytest.mark.parametrize("x_layout", ["contiguous", "channels last"])
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False),
                                   (False, True, False), (False, False, True)])
def test_special_paths_give_the_same_bits_on_one_and_two_threads(kind, x_layout, needs,
                                                                 monkeypatch):
    rng = np.random.default_rng(0)
    C = 24
    x = rng.standard_normal((9, C, 13, 11)).astype(np.float32)
    if x_layout == "channels last":
        x = channels_last(x)
    if kind.startswith("depthwise"):
        w, kwargs = rng.standard_normal((C, 1, 3, 3)).astype(np.float32), {
            "padding": 1, "groups": C}
        if kind.endswith("strided"):
            kwargs["stride"] = (2, 3)
    elif kind == "grouped":
        w, kwargs = rng.standard_normal((18, 8, 3, 3)).astype(np.float32), {
            "padding": 1, "groups": 3, "stride": (2, 1)}
    else:
        w, kwargs = rng.standard_normal((16, C, 1, 1)).astype(np.float32), {}
    b = rng.standard_normal(w.shape[0]).astype(np.float32)
    # small blocks: several per thread
    monkeypatch.setattr(conv_module.Conv2d, "special_block_bytes", 1 << 12)
    with minigrad.no_grad():
        shape = F.conv2d(x, w, b, **kwargs).shape
    dy = rng.standard_normal(shape).astype(np.float32)
    results = {}
    for threads in (1, 2):
        with on_threads(threads):              # every op big enough to split
            y, grads, path = run(lambda *t: F.conv2d(*t, **kwargs), (x, w, b), dy, needs)
            with minigrad.no_grad():
                y_inference = F.conv2d(x, w, b, **kwargs).data
        results[threads] = [y.data, y_inference] + [g for g in grads if g is not None]
    assert path == kind.split(",")[0]
    for a, c in zip(results[1], results[2]):
        assert a.tobytes() == c.tobytes()
    np.testing.assert_array_equal(results[1][0], results[1][1])


@pytest.mark.parametrize("kwargs, w_shape, special", [
    ({}, (4, 6, 1, 1), "pointwise"),
    ({"stride": 2}, (4, 6, 1, 1), None),                 # the fast path's unfold
    ({"padding": 1}, (4, 6, 1, 1), None),
    ({"groups": 6, "padding": 1}, (6, 1, 3, 3), "depthwise"),
    ({"groups": 6, "dilation": 2, "padding": (2, 1)}, (6, 1, 3, 3), "depthwise"),
    ({"groups": 6, "stride": 2, "padding": 1}, (6, 1, 3, 3), "depthwise"),
    ({"groups": 6, "stride": (3, 2), "dilation": 2}, (6, 1, 3, 2), "depthwise"),
    ({"groups": 6, "padding": 3}, (6, 1, 3, 3), "grouped"),   # padding beyond the span
    ({"groups": 6, "padding": "same"}, (6, 1, 2, 2), "depthwise"),
    ({"groups": 6}, (12, 1, 3, 3), "grouped"),           # two filters a channel
    ({"groups": 3}, (6, 2, 3, 3), "grouped"),
    ({}, (4, 6, 3, 3), None),
])
def test_conv2d_path_rule(kwargs, w_shape, special):
    x = Tensor(np.ones((2, 6, 7, 7)), requires_grad=True)
    y = F.conv2d(x, np.ones(w_shape), **kwargs)
    assert y.creator.special == special
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("kind", KINDS)
def test_special_paths_give_nchw_output_and_dx_in_x_layout(kind):
    rng = np.random.default_rng(1)
    C = 8
    w_shape, kwargs = small_case(kind, C)
    w = rng.standard_normal(w_shape)
    xs = [rng.standard_normal((2, C, 5, 6)), channels_last(rng.standard_normal((2, C, 5, 6)))]
    for x in xs:
        tx = Tensor(x, requires_grad=True)
        y = F.conv2d(tx, w, **kwargs)
        y.backward(np.ones(y.shape))
        nhwc = not x.flags.c_contiguous
        assert y.data.flags.c_contiguous
        assert tx.grad.transpose(0, 2, 3, 1).flags.c_contiguous is nhwc
        assert tx.grad.flags.c_contiguous is not nhwc


@pytest.mark.parametrize("kind", KINDS)
def test_special_paths_accept_an_empty_batch(kind):
    C = 4
    w_shape, kwargs = small_case(kind, C)
    tx, tw, tb = (Tensor(np.ones(s), requires_grad=True)
                  for s in ((0, C, 5, 5), w_shape, (w_shape[0],)))
    y = F.conv2d(tx, tw, tb, **kwargs)
    assert y.shape[0] == 0
    assert y.creator.special == (None if kind == "grouped" else kind)   # nothing to split
    y.sum().backward()
    assert tx.grad.shape == tx.shape
    np.testing.assert_array_equal(tw.grad, 0)
    np.testing.assert_array_equal(tb.grad, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_special_paths_keep_float32_and_cast_integer_images(kind):
    C = 3
    w_shape, kwargs = small_case(kind, C)
    w = np.ones(w_shape, np.float32)
    assert F.conv2d(np.ones((1, C, 4, 4), np.float32), w, **kwargs).dtype == np.float32
    y = F.conv2d(np.full((1, C, 4, 4), 2, np.uint8), w, **kwargs)
    expected = GeneralConv2d(**kwargs)(np.full((1, C, 4, 4), 2, np.uint8), w)
    assert y.dtype == expected.dtype
    np.testing.assert_array_equal(y.data, expected.data)


class GeneralConvTranspose2d(conv_module.ConvTranspose2d):
    """ConvTranspose2d on its general path whatever its settings: the oracle of the other."""

    def forward(self, x, w, b=None):
        y = super().forward(x, w, b)           # the checks and what backward keeps
        return self._forward_general(np.asarray(x), np.asarray(w), y.shape[2:]) + (
            0 if b is None else np.reshape(b, (1, -1, 1, 1)))

    def backward(self, dy):
        return self._backward_general(dy, self.needs_input_grad)


@st.composite
def transpose_settings(draw):
    """conv_transpose2d without groups or dilation (the case conv2d's fast path serves)."""
    s = {"N": draw(st.integers(1, 3)), "C_in": draw(st.integers(1, 20)),
         "C_out": draw(st.integers(1, 20))}
    for axis in "HW":
        k, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        size = draw(st.integers(1, 5))
        op = draw(st.integers(0, stride - 1))
        p = draw(st.integers(0, max(0, ((size - 1) * stride + k + op - 1) // 2)))
        s.update({"F" + axis: k, "S" + axis: stride, "P" + axis: p, "OP" + axis: op,
                  axis: size})
    return s


@pytest.fixture
def transpose_backward_on_conv2d(monkeypatch):
    """conv_transpose2d's backward through Conv2d at any batch (it does from batch 4)."""
    monkeypatch.setattr(conv_module.ConvTranspose2d, "conv2d_backward_from", 1)


@pytest.mark.usefixtures("transpose_backward_on_conv2d")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data())
def test_conv_transpose2d_fast_path_equals_the_general_path(dtype, data):
    s = data.draw(transpose_settings(), label="settings")
    kwargs = {"stride": (s["SH"], s["SW"]), "padding": (s["PH"], s["PW"]),
              "output_padding": (s["OPH"], s["OPW"])}
    x = data.draw(arrays((s["N"], s["C_in"], s["H"], s["W"])), label="x").astype(dtype)
    if data.draw(st.booleans(), label="x channels last"):
        x = channels_last(x)
    w = data.draw(arrays((s["C_in"], s["C_out"], s["FH"], s["FW"])), label="w").astype(dtype)
    b = data.draw(st.none() | arrays((s["C_out"],)), label="b")
    inputs = (x, w) if b is None else (x, w, b.astype(dtype))
    with minigrad.no_grad():
        shape = F.conv_transpose2d(*inputs, **kwargs).shape
    dy = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    y, grads, _ = run_transpose(conv_module.ConvTranspose2d(**kwargs), inputs, dy)
    y_plain, grads_plain, _ = run_transpose(GeneralConvTranspose2d(**kwargs), inputs, dy)
    for a, c in zip([y.data] + grads, [y_plain.data] + grads_plain):
        assert a.dtype == c.dtype and a.shape == c.shape
        if dtype == np.float64:
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
        else:
            assert np.abs(a - c).max() <= F32_BOUND * max(np.abs(c).max(), 1.0)


def run_transpose(op, inputs, dy):
    tensors = [Tensor(a, requires_grad=True) for a in inputs]
    y = op(*tensors)
    y.backward(dy)
    return y, [t.grad for t in tensors], None


@pytest.mark.usefixtures("transpose_backward_on_conv2d")
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False),
                                   (False, True, False)])
def test_conv_transpose2d_gives_the_same_bits_on_one_and_two_threads(needs, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 24, 6, 5)).astype(np.float32)
    w = rng.standard_normal((24, 16, 4, 4)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    monkeypatch.setattr(conv_module.Conv2d, "nhwc_block_bytes", 1 << 12)
    kwargs = {"stride": 2, "padding": 1}
    dy = rng.standard_normal(F.conv_transpose2d(x, w, b, **kwargs).shape).astype(np.float32)
    results = {}
    for threads in (1, 2):
        with on_threads(threads):
            tensors = [Tensor(a, requires_grad=r) for a, r in zip((x, w, b), needs)]
            y = F.conv_transpose2d(*tensors, **kwargs)
            y.backward(dy)
        results[threads] = [y.data] + [t.grad for t in tensors if t.grad is not None]
    for a, c in zip(results[1], results[2]):
        assert a.tobytes() == c.tobytes()


@pytest.mark.parametrize("N, H, Cg, grouped", [
    (1, 16, 8, False),          # 16·16·8·9 = 18 K values a group: the general path
    (1, 16, 32, True),          # 74 K
    (64, 16, 1, True),          # two filters a channel at stride 2, batch 64: 147 K
    (1, 16, 1, False),          # the same at batch 1: 2.3 K
])
def test_grouped_size_rule(N, H, Cg, grouped, monkeypatch):
    monkeypatch.setattr(conv_module.Conv2d, "grouped_from", 1 << 16)
    conv_module._plans.clear()
    G = 64 // Cg if Cg > 1 else 64
    stride = 1 if Cg > 1 else 2
    x = np.zeros((N, G * Cg, H * stride, H * stride), np.float32)
    w = np.zeros((G * (Cg if Cg > 1 else 2), Cg, 3, 3), np.float32)
    y = F.conv2d(Tensor(x, requires_grad=True), w, padding=1, stride=stride, groups=G)
    assert y.creator.special == ("grouped" if grouped else None)


@pytest.mark.parametrize("N, on_conv2d", [(1, False), (3, False), (4, True)])
def test_conv_transpose2d_backward_batch_rule(N, on_conv2d, monkeypatch):
    calls = []
    real = conv_module.ConvTranspose2d._backward_conv2d

    def spy(self, dy, needs):
        calls.append(N)
        return real(self, dy, needs)

    monkeypatch.setattr(conv_module.ConvTranspose2d, "_backward_conv2d", spy)
    x = Tensor(np.ones((N, 4, 3, 3)), requires_grad=True)
    F.conv_transpose2d(x, np.ones((4, 2, 4, 4)), stride=2, padding=1).sum().backward()
    assert bool(calls) is on_conv2d


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_weight_gradient_reads_only_the_windows(bad, stride):
    """A non-finite x value that no output reads through some tap leaves that tap's dL/dw
    finite, as on the general path (the depthwise path's dropped positions read x across a
    row's end; they once added 0·∞ = NaN to every tap's sum)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6))
    x[0, 1, 2, 5] = bad                 # the last column: tap j = 0 never reads it
    x[1, 2, 0, 0] = bad                 # the first column: tap j = 2 never reads it
    w = rng.standard_normal((4, 1, 3, 3))
    dy = rng.standard_normal((2, 4, 6 // stride, 6 // stride))
    grads = []
    for op in (conv_module.Conv2d(stride, 1, 1, 4), GeneralConv2d(stride, 1, 1, 4)):
        tx, tw = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        with np.errstate(invalid="ignore"):
            y = op(tx, tw)
            y.backward(dy)
        grads.append(tw.grad)
    got, want = grads
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12)   # sums in another order
    assert np.isfinite(grads[0][1, 0, :, 0]).all() and np.isfinite(grads[0][2, 0, :, 2]).all()


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["dy", "w"])
def test_depthwise_strided_input_gradient_with_non_finite_values(bad, where):
    """An ∞ or NaN in dy (or w) reaches dL/dx only where the general path's sums read it: the
    strided path's one product for all phases would multiply it by the other phases' zero
    weights, so it takes one product a phase then."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 8))
    w = rng.standard_normal((4, 1, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    if where == "dy":
        dy[0, 1, 2, 3] = bad
        dy[1, 2, 0, 0] = bad
    else:
        w[2, 0, 1, 2] = bad
    grads = []
    for op in (conv_module.Conv2d(2, 1, 1, 4), GeneralConv2d(2, 1, 1, 4)):
        tx = Tensor(x, requires_grad=True)
        with np.errstate(invalid="ignore"):
            y = op(tx, Tensor(w))
            y.backward(dy)
        grads.append(tx.grad)
    got, want = grads
    assert np.isfinite(want).any() and not np.isfinite(want).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12)
