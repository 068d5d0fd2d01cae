"""benchmarks/bench_time_to_accuracy.py: its minigrad side is train_mnist's DeepConvNet run (same
weights, batches, rates, losses and accuracies), its PyTorch side gets the same, and the report
holds both (no timing is asserted)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_scripts import load_benchmark

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_time_to_accuracy")


def test_rates_are_train_mnist_cosine_schedule_stepped_per_epoch(bench):
    from minigrad import nn, optim

    tm = bench.train_mnist_module()
    epochs = tm.DEFAULT_EPOCHS
    # what train_mnist.main does: record opt.lr, train the epoch, then step the schedule
    opt = optim.Adam([nn.Parameter(np.zeros(3))], lr=tm.DEFAULT_LR)
    schedule = tm.make_schedule("cosine", opt, epochs)
    expected = []
    for _ in range(epochs):
        expected.append(opt.lr)
        opt.step()
        schedule.step()
    rates = bench.planned_rates("cosine", epochs)
    assert rates == expected
    closed = [1e-3 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    np.testing.assert_allclose(rates, closed, rtol=1e-12)
    assert rates[0] == 1e-3 and rates[epochs // 2] == pytest.approx(5e-4, rel=1e-12)
    assert bench.planned_rates("constant", 3) == [1e-3] * 3


def test_epoch_orders_are_the_data_loaders(bench):
    from minigrad.data import DataLoader

    n, seed = 250, 7
    loader = DataLoader(np.arange(n), batch_size=100, shuffle=True, seed=seed)
    expected = [np.concatenate(list(loader)) for _ in range(3)]
    np.testing.assert_array_equal(bench.epoch_orders(n, 3, seed), np.stack(expected))


def test_initial_weights_are_train_mnist_s_and_both_builds_hold_them(bench):
    import minigrad.models
    from minigrad import nn

    params = bench.train_mnist_params(3)
    nn.manual_seed(3)
    reference = minigrad.models.DeepConvNet()
    got = bench.bench_nets.build_minigrad("deep", params)
    assert isinstance(got, minigrad.models.DeepConvNet)
    for p, q, r in zip(params, got.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p, r.data)
        np.testing.assert_array_equal(q.data, r.data)
    torch = pytest.importorskip("torch")
    twin = bench.bench_nets.build_torch("deep", params).eval()
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(x)).numpy(), got.eval()(x).data,
                                   rtol=1e-4, atol=1e-5)


def test_small_run_is_train_mnist_s_run_and_reports_both(bench, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "tta.json"
    argv = ["--subset", "--limit", "200", "--epochs", "2", "--target", "0.1", "--threads", "1",
            "--no-stop-at-target", "--json", str(out)]
    result = bench.main(argv)
    assert json.loads(out.read_text())["config"] == result["config"]
    cfg = result["config"]
    assert cfg["train_images"] == 200 and cfg["schedule"] == "cosine"
    assert cfg["rates"] == bench.planned_rates("cosine", 2) == [1e-3, 5e-4]
    assert set(result["epochs"]) == {"minigrad", "torch"}
    assert result["machine"]["torch"].startswith("2.")
    assert result["notes"] == blas_note(bench._common), result["notes"]
    for fw, epochs in result["epochs"].items():
        assert [e["epoch"] for e in epochs] == [1, 2], fw
        assert [e["lr"] for e in epochs] == cfg["rates"], fw
        assert all(e["train_cpu_seconds"] > 0 and e["eval_seconds"] > 0 for e in epochs), fw
        assert epochs[1]["cumulative_train_seconds"] == pytest.approx(
            epochs[0]["train_seconds"] + epochs[1]["train_seconds"])
        assert epochs[1]["cumulative_seconds"] == pytest.approx(
            sum(e["train_seconds"] + e["eval_seconds"] for e in epochs))
        hit = next((e for e in epochs if e["test_accuracy"] >= 0.1), None)
        s = result["summary"]["frameworks"][fw]
        assert s["epoch"] == (hit["epoch"] if hit else None), fw
        assert s["train_seconds"] == (hit["cumulative_train_seconds"] if hit else None), fw
    mg, tc = (result["summary"]["frameworks"][fw]["train_seconds"] for fw in ("minigrad", "torch"))
    assert result["summary"]["ratio_train_seconds"] == (tc / mg if mg and tc else None)

    # the minigrad side is `train_mnist.py --model deep` step for step (run with one BLAS
    # thread too, in a process of its own as the benchmark's children)
    run = tmp_path / "run"
    subprocess.run([sys.executable, str(EXAMPLES / "train_mnist.py"), "--model", "deep",
                    "--subset", "--limit", "200", "--epochs", "2", "--threads", "1", "--out",
                    str(run)], env=bench._common.child_env(1, False), check=True,
                   capture_output=True, timeout=300)
    history = json.loads((run / "history.json").read_text())
    mine = result["epochs"]["minigrad"]
    assert [e["lr"] for e in mine] == history["lr"]
    assert [e["train_loss"] for e in mine] == history["train_loss"]
    assert [e["test_accuracy"] for e in mine] == history["test_acc"]
    # PyTorch started from the same weights on the same batches: close in the first epoch
    # (dropout masks differ)
    assert abs(result["epochs"]["torch"][0]["train_loss"] - mine[0]["train_loss"]) < 0.5


def test_a_framework_stops_at_the_target(bench):
    pytest.importorskip("torch")
    # one batch of 100; any accuracy is ≥ 1e-9 once one test image is right, which an
    # untrained 10-class network does on 100 images unless it is far worse than chance
    result = bench.main(["--subset", "--limit", "100", "--epochs", "3", "--target", "1e-9",
                         "--threads", "1"])
    for fw in ("minigrad", "torch"):
        s = result["summary"]["frameworks"][fw]
        assert s["epoch"] == 1 and s["epochs_run"] == 1, (fw, s)
        assert s["train_eval_seconds"] > s["train_seconds"] > 0


def blas_note(common):
    """The only note a sound run leaves: the OpenBLAS overrides of this machine's environment
    (if it sets any), unset for the children."""
    found = [v for v in common.BLAS_OVERRIDE_VARS if v in os.environ]
    return [("unset for every child: " + ", ".join(f"{v}={os.environ[v]}" for v in found))
            ] if found else []
