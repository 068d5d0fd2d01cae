"""benchmarks/bench_winograd.py: its Winograd F(2×2, 3×3) convolution and both gradients equal a
float64 direct convolution, the direct convolution equals minigrad's conv2d, and the script's
main runs on a tiny configuration (no timing is asserted)."""

import doctest
import json

import numpy as np
import pytest
from bench_scripts import load_benchmark
from hypothesis import given
from hypothesis import strategies as st

bw = load_benchmark("bench_winograd")


@st.composite
def conv_cases(draw):
    """(x, w, b, dy, padding, block_bytes) in float64: odd and even H, W; padding 0, 1, 2; a
    block size from one image per block (the last block short) to the whole batch."""
    padding = draw(st.sampled_from([0, 1, 2]))
    low = max(1, 3 - 2 * padding)
    N = draw(st.integers(1, 4))
    C = draw(st.integers(1, 4))
    FN = draw(st.integers(1, 4))
    H = draw(st.integers(low, 9))
    W = draw(st.integers(low, 9))
    block_bytes = draw(st.sampled_from([1, 2000, bw.BLOCK_BYTES]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    return (rng.standard_normal((N, C, H, W)), rng.standard_normal((FN, C, 3, 3)),
            rng.standard_normal(FN), rng.standard_normal((N, FN, OH, OW)), padding, block_bytes)


def assert_close(got, exact):
    """Equal to 1e-10 of the largest exact value: the float64 rounding of a few hundred terms."""
    assert got.shape == exact.shape, (got.shape, exact.shape)
    np.testing.assert_allclose(got, exact, rtol=1e-10, atol=1e-10 * np.abs(exact).max())


@given(conv_cases())
def test_forward_equals_direct_convolution(case):
    x, w, b, _, padding, block_bytes = case
    y = bw.winograd_conv2d(x, w, b, padding, block_bytes)
    assert y.dtype == np.float64
    assert_close(y, bw.direct_conv2d(x, w, b, padding))
    assert_close(bw.winograd_conv2d(x, w, None, padding, block_bytes),
                 bw.direct_conv2d(x, w, None, padding))
    # NHWC memory in, NHWC memory out, the same values
    y_nhwc = bw.winograd_conv2d(bw.nhwc_memory(x), w, b, padding, block_bytes)
    assert y_nhwc.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(y_nhwc, y)


@given(conv_cases())
def test_gradients_equal_direct_convolution_and_are_adjoint(case):
    x, w, _, dy, padding, block_bytes = case
    dx = bw.winograd_conv2d_dx(dy, w, padding, block_bytes)
    min_tiles = 1 if block_bytes == 1 else bw.DW_TILES     # kept V: blocks of one image, or all
    dw = bw.winograd_conv2d_dw(x, dy, padding, block_bytes, min_tiles=min_tiles)
    dx_exact, dw_exact = bw.direct_conv2d_grads(x, w, dy, padding)
    assert_close(dx, dx_exact)
    assert_close(dw, dw_exact)
    # V kept by the forward pass gives the same dw
    kept = np.full(bw.kept_tiles_shape(x.shape, padding), np.nan)
    y = bw.winograd_conv2d(x, w, None, padding, block_bytes, v_keep=kept)
    assert_close(y, bw.direct_conv2d(x, w, None, padding))
    assert not np.isnan(kept).any()
    assert_close(bw.winograd_conv2d_dw(x, dy, padding, block_bytes, v_kept=kept,
                                       min_tiles=min_tiles), dw_exact)
    # <conv(x, w), dy> = <x, dx> = <w, dw>: the gradients are those of the forward map
    inner = np.vdot(bw.winograd_conv2d(x, w, None, padding, block_bytes), dy)
    scale = np.abs(x).sum() * np.abs(w).sum() * np.abs(dy).max()
    assert abs(np.vdot(x, dx) - inner) <= 1e-12 * scale
    assert abs(np.vdot(w, dw) - inner) <= 1e-12 * scale


@given(conv_cases())
def test_direct_reference_equals_minigrad_conv2d(case):
    import minigrad
    import minigrad.functional as F

    x, w, b, dy, padding, _ = case
    xt, wt, bt = (minigrad.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=padding)
    y.backward(dy)
    assert_close(bw.direct_conv2d(x, w, b, padding), y.data)
    dx, dw = bw.direct_conv2d_grads(x, w, dy, padding)
    assert_close(dx, xt.grad)
    assert_close(dw, wt.grad)


def test_float32_error_is_that_of_float32_rounding():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 10, 9))
    w = bw.he_weights(rng, 6, 8)
    dy = rng.standard_normal((4, 6, 10, 9))
    errors = bw.float32_errors(x, w, dy, 1)
    for who in ("winograd", "im2col"):
        for part in ("y", "dx", "dw"):
            e = errors[who][part]
            assert 0 < e["rms"] <= e["max"] * 10 and e["max"] < 2e-6, (who, part, e)


def test_bad_input_names_the_op_and_shapes():
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"winograd_conv2d: input has 3 channels .*\(4, 2, 3, 3\)"):
        bw.winograd_conv2d(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"winograd_conv2d: F\(2×2, 3×3\) needs .*\(4, 3, 5, 5\)"):
        bw.winograd_conv2d(x, np.zeros((4, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"winograd_conv2d: padding must be 0, 1 or 2 .*got 3"):
        bw.winograd_conv2d(x, np.zeros((4, 3, 3, 3)), padding=3)
    with pytest.raises(ValueError, match="winograd_conv2d: the 3×3 kernel is larger"):
        bw.winograd_conv2d(np.zeros((1, 3, 2, 8)), np.zeros((4, 3, 3, 3)), padding=0)
    with pytest.raises(ValueError, match=r"winograd_conv2d_dw: dy must be .*\(2, 4, 7, 8\)"):
        bw.winograd_conv2d_dw(x, np.zeros((2, 4, 7, 8)), 1)
    with pytest.raises(ValueError, match=r"winograd_conv2d_dw: the kept V must be \(16, 32, 3\)"):
        bw.winograd_conv2d_dw(x, np.zeros((2, 4, 8, 8)), 1, v_kept=np.zeros((16, 3, 100)))


def test_doctests():
    assert doctest.testmod(bw, raise_on_error=False).failed == 0


def test_mnist_activations_are_the_layers_inputs():
    acts = bw.mnist_activations(["conv1", "conv4", "conv6"], 2, 0)
    assert {n: x.shape for n, (x, _) in acts.items()} == {
        "conv1": (2, 1, 28, 28), "conv4": (2, 32, 14, 14), "conv6": (2, 64, 8, 8)}
    assert acts["conv1"][0].max() == pytest.approx(1.0, abs=0.01)   # pixels in [0, 1]
    assert (acts["conv6"][0] >= 0).all() and acts["conv6"][0].max() > 0   # after ReLU
    assert acts["conv4"][1].shape == (32, 32, 3, 3)


def test_main_runs_on_a_tiny_configuration(tmp_path, capsys):
    out = tmp_path / "winograd.json"
    result = bw.main(["--layers", "conv1,conv4", "--repeats", "2", "--batch", "2",
                      "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["layers"] == {"conv1": {"C": 1, "FN": 16, "H": 28, "padding": 1},
                               "conv4": {"C": 32, "FN": 32, "H": 14, "padding": 2}}
    who = {"im2col", "winograd"} | ({"torch"} if result["torch"] else set())
    assert set(saved["median_seconds"]["conv4"]) == {
        f"{part}/{w}" for part in ("forward", "dx", "dw", "step") for w in who} | {
        "dw/winograd-recompute", "step/winograd-recompute"}
    assert all(t > 0 for t in saved["median_seconds"]["conv4"].values())
    assert set(saved["float32_errors"]["random"]) == {"conv1", "conv4"}
    assert saved["minigrad_x_dy_memory"]["conv1"][0] == "NCHW"     # the images
    assert set(saved["float32_errors"]["mnist"]["conv4"]) == who
    text = capsys.readouterr().out
    assert "| sum | step |" in text and "| mnist | conv4 | dw |" in text


def test_main_refuses_an_unknown_layer(capsys):
    with pytest.raises(SystemExit):
        bw.main(["--layers", "conv7"])
    assert "unknown ['conv7']" in capsys.readouterr().err


def test_minigrad_memory_keeps_shape_and_values():
    rng = np.random.default_rng(5)
    C, FN, H, P = bw.LAYERS["conv4"]
    x = rng.standard_normal((2, C, H, H)).astype(np.float32)
    w = rng.standard_normal((FN, C, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, FN, H + 2 * P - 2, H + 2 * P - 2)).astype(np.float32)
    x_mg, dy_mg, x_layout, dy_layout = bw.minigrad_memory("conv4", x, w, dy, P)
    np.testing.assert_array_equal(x_mg, x)
    np.testing.assert_array_equal(dy_mg, dy)
    for a, layout in ((x_mg, x_layout), (dy_mg, dy_layout)):
        assert layout in ("NCHW", "NHWC")
        assert (a.flags.c_contiguous if layout == "NCHW"
                else a.transpose(0, 2, 3, 1).flags.c_contiguous)
