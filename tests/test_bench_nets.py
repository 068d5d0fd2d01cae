"""benchmarks/bench_nets.py: its networks and their PyTorch twins agree, its FLOP counts, and the
structure of the smallest run (no timing is asserted)."""

import json
import os

import numpy as np
import pytest
from bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_nets")


def test_simple_convnet_counts_and_weights_match_bench_cnn(bench):
    layers = bench.NETS["simple"][1]
    common = bench._common
    assert bench.flops_per_image(layers) == (common.train_flops_per_image(),
                                             common.inference_flops_per_image())
    peers = common.init_params(0)
    ours = bench.init_params(layers, 0)
    for name, value in zip(("W1", "b1", "W2", "b2", "W3", "b3"), ours):
        np.testing.assert_array_equal(value, peers[name], err_msg=name)


def test_batch_orders_continue_the_peers_epochs(bench):
    import itertools

    expected = np.concatenate(bench._common.epoch_orders(300, 3, 5))
    got = np.stack(list(itertools.islice(bench.batch_orders(300, 5), 9)))
    np.testing.assert_array_equal(got, expected)


def test_mlp_flops_skip_the_first_dx(bench):
    # 784·100 + 3·100·100 + 100·10 multiply-adds forward; training adds dW for all, dX for all
    # but the first layer
    forward = 2 * (784 * 100 + 3 * 100 * 100 + 100 * 10)
    assert bench.flops_per_image(bench.NETS["mlp"][1]) == (3 * forward - 2 * 784 * 100, forward)


def test_mobile_flops_count_strides_and_groups(bench):
    # 28×28 → 14×14 (stride 2) → 7×7 (the second depthwise convolution's stride 2); a depthwise
    # convolution multiplies one input channel per filter
    first = 2 * 14 * 14 * 1 * 9 * 32
    rest = (2 * 14 * 14 * 9 * 32 + 2 * 14 * 14 * 32 * 64 + 2 * 7 * 7 * 9 * 64
            + 2 * 7 * 7 * 64 * 128 + 2 * 128 * 10)
    assert bench.flops_per_image(bench.NETS["mobile"][1]) == (2 * first + 3 * rest, first + rest)
    depthwise = [layer for layer in bench.NETS["mobile"][1] if layer[0] == "conv"][1]
    assert bench.param_specs([depthwise]) == [("weight", (32, 1, 3, 3), 9)]


def test_encoder_flops_count_every_product(bench):
    # 28 tokens of 28 pixels; per block q, k, v, o (128×128), the MLP 128→256→128, and the two
    # attention products (28×28 scores of 128 values, their weighted sum of the 28 values)
    tokens = 2 * 28 * 28 * 128
    block = 2 * 28 * (4 * 128 * 128 + 2 * 128 * 256) + 2 * (2 * 28 * 28 * 128)
    head = 2 * 128 * 10
    forward = tokens + 2 * block + head
    assert bench.flops_per_image(bench.NETS["encoder"][1]) == (3 * forward - tokens, forward)
    specs = bench.param_specs(bench.NETS["encoder"][1])
    assert sum(np.prod(shape) for _, shape, _ in specs) == 270218
    assert [kind for kind, _, _ in specs].count("matrix") == 1 + 2 * 6


NETS = ["simple", "deep", "mlp", "bn", "mobile", "encoder"]


@pytest.mark.parametrize("net", NETS)
def test_minigrad_network_holds_the_given_weights(bench, net):
    layers = bench.NETS[net][1]
    params = bench.init_params(layers, 1)
    model = bench.build_minigrad(net, params)
    got = [p.data for p in model.parameters()]
    assert len(got) == len(params)
    for g, p in zip(got, params):
        np.testing.assert_array_equal(g, p)
        assert g.dtype == np.float32
    if net == "deep":
        assert model.num_parameters() == 123552      # DeepConvNet's docstring
    assert model.eval()(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("net", NETS)
def test_torch_twin_computes_the_same_function(bench, net):
    torch = pytest.importorskip("torch")
    import minigrad
    from minigrad import functional as F

    layers = bench.NETS[net][1]
    params = bench.init_params(layers, 2)
    mg, tc = bench.build_minigrad(net, params), bench.build_torch(net, params)
    rng = np.random.default_rng(3)
    x = rng.random((6, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 6)
    has_dropout = any(layer[0] == "dropout" for layer in layers)
    if has_dropout:                 # masks are drawn differently: compare in eval mode
        mg.eval()
        tc.eval()
    loss = F.softmax_cross_entropy(mg(minigrad.Tensor(x)), t)
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(tc(torch.from_numpy(x)), torch.from_numpy(t))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-5
    specs = bench.param_specs(layers)
    for (name, p), q, (kind, _, _) in zip(mg.named_parameters(), tc.parameters(), specs):
        tgrad = q.grad.numpy()
        tgrad = tgrad.T if kind == "weight" and tgrad.ndim == 2 else tgrad  # Linear: (out, in)
        np.testing.assert_allclose(p.grad, tgrad, rtol=1e-3, atol=1e-5, err_msg=name)


def test_smallest_run_has_the_result_structure(bench, tmp_path):
    out = tmp_path / "nets.json"
    argv = ["--nets", "mlp", "--frameworks", "minigrad", "--images", "100", "--rounds", "1",
            "--warmup", "0", "--no-sgemm", "--latency-calls", "2", "--threads", "1",
            "--min-seconds", "0",
            "--subset", "--json", str(out)]
    result = bench.main(argv)
    assert json.loads(out.read_text())["config"] == result["config"]
    assert result["config"]["nets"] == ["mlp"] and result["config"]["threads"] == 1
    assert result["notes"] == blas_note(bench._common), result["notes"]
    run = result["runs"][0]["mlp"]["minigrad"]
    assert run["steps"] == 1 and run["dtype"] == "float32" and run["images"] == 100
    assert set(run["latency"]) == {"1", "8"}
    s = result["summary"]["mlp"]["frameworks"]["minigrad"]
    assert s["runs"] == 1
    for metric in bench.METRICS:
        assert s[metric] > 0, metric
    assert s["train_gflops"] == pytest.approx(
        s["train"] * bench.flops_per_image(bench.NETS["mlp"][1])[0] / 1e9)
    assert "ratio" not in result["summary"]["mlp"]       # no PyTorch run to compare with


def _child(fw, train, infer, b1, b8, rss):
    return {"framework": fw, "train_images_per_second": train,
            "inference_images_per_second": infer,
            "latency": {"1": {"ms_median": b1}, "8": {"ms_median": b8}}, "peak_rss_mb": rss,
            "test_accuracy": 0.9, "final_train_loss": 0.3, "first_loss": 2.3, "version": "x"}


def test_summary_ratios_point_the_stated_way(bench):
    # minigrad trains 1.5× as fast, infers at half the speed, answers batch 1 in half the time
    # (2× as fast) and batch 8 in the same time, with 0.8× PyTorch's memory
    runs = [{"mlp": {"minigrad": _child("minigrad", 150 * k, 50, 1.0, 4.0, 80),
                     "torch": _child("torch", 100 * k, 100, 2.0, 4.0, 100)}} for k in (1, 2, 3)]
    s = bench.summarise(runs, ["mlp"], ["minigrad", "torch"], peak_gflops=100.0)["mlp"]
    ratios = {m: s["ratio"][m]["median"] for m in bench.METRICS}
    assert ratios == pytest.approx({"train": 1.5, "infer": 0.5, "latency_1": 2.0,
                                    "latency_8": 1.0, "rss": 0.8})
    assert s["frameworks"]["minigrad"]["train"] == 300
    met = {t["metric"]: t["met"] for t in s["targets"]}
    assert met == {"train": True, "infer": False, "latency_1": True, "latency_8": True,
                   "rss": True}


def blas_note(common):
    """The only note a sound run leaves: the OpenBLAS overrides of this machine's environment
    (if it sets any), unset for the children."""
    found = [v for v in common.BLAS_OVERRIDE_VARS if v in os.environ]
    return [("unset for every child: " + ", ".join(f"{v}={os.environ[v]}" for v in found))
            ] if found else []
