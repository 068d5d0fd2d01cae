"""benchmarks/bench_layers.py: both layer sets compute the same thing in minigrad and in torch
(outputs and gradients agree), and the options pick layers within a set (no timing asserted)."""

import numpy as np
import pytest
from bench_scripts import load_benchmark

bl = load_benchmark("bench_layers")


def _value(a):
    return np.asarray(a.detach().numpy() if hasattr(a, "detach") else a.data, np.float64)


def _close(got, want, what):
    want, got = _value(want), _value(got)
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


@pytest.fixture(scope="module")
def arrays():
    return bl.make_inputs()


@pytest.mark.parametrize("layer", bl.WIDE_LAYERS, ids=lambda layer: layer[0])
def test_wide_layers_agree_with_torch(layer, arrays):
    pytest.importorskip("torch")
    mine, theirs = bl.minigrad_case(layer, arrays), bl.torch_case(layer, arrays)
    _close(mine.fn(), theirs.fn(), f"{layer[0]} forward")
    mine.run(True)
    theirs.run(True)
    assert len(mine.leaves) == len(theirs.leaves) == sum(layer[3])
    for i, (a, b) in enumerate(zip(mine.leaves, theirs.leaves)):
        grad_b = b.grad
        if layer[0] == "affine" and i == 1:                 # torch keeps W as (out, in)
            grad_b = b.grad.T
        _close(a.grad, grad_b, f"{layer[0]} gradient of input {i}")


def test_the_sets_and_only_pick_their_own_layers():
    args = bl.parse_args(["--set", "wide", "--only", "sigmoid,affine", "--threads", "1"])
    picked = bl.selected_layers(args.only, args.layer_set)
    assert [layer[0] for layer in picked] == ["affine", "sigmoid"]
    assert bl.selected_layers(None, "textbook") == list(bl.LAYERS)
    assert bl.selected_layers(None, "wide") == list(bl.WIDE_LAYERS)
    assert "--set" in bl.worker_command(args, "minigrad")
    with pytest.raises(SystemExit):        # a textbook layer is not in the wide set
        bl.parse_args(["--set", "wide", "--only", "batch_norm"])
    with pytest.raises(SystemExit):
        bl.parse_args(["--only", "sigmoid"])


def test_every_wide_layer_has_both_functions_and_its_inputs(arrays):
    for name, _, keys, grads in bl.WIDE_LAYERS:
        assert callable(bl.minigrad_fn(name))
        assert len(keys) == len(grads) and all(k in arrays for k in keys)
