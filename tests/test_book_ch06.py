"""The chapter-6 scripts (examples/book/ch06_*.py) run with tiny settings and write their
figures, and the chapter's robust claims hold at a small size, seed by seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

BOOK = Path(__file__).resolve().parents[1] / "examples" / "book"
SEEDS = [0, 1, 2]


def load(name: str):
    """Import examples/book/<name>.py as a module (its main is not run)."""
    if str(BOOK) not in sys.path:
        sys.path.insert(0, str(BOOK))
    spec = importlib.util.spec_from_file_location(f"book_{name}", BOOK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A tiny MNIST run for every script: a few iterations of a small net on a few images.
TINY_NET = ["--hidden", "10", "--layers", "3", "--batch-size", "16", "--train", "200"]


def assert_figures(result, out: Path, names: list[str]) -> None:
    assert sorted(Path(p).name for p in result["figures"]) == sorted(names)
    for name in names:
        path = out / name
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


# ------------------------------------------------------------------------------ optimisers
def test_optimizers_script_writes_its_figures(tmp_path):
    script = load("ch06_optimizers")
    result = script.main(["--out", str(tmp_path), "--iterations", "4", *TINY_NET])
    assert_figures(result, tmp_path, ["ch06_optimizers_path.png", "ch06_optimizers_mnist.png"])
    assert set(result["losses"]) == {"SGD", "Momentum", "AdaGrad", "Adam"}
    assert all(loss.shape == (4,) and np.isfinite(loss).all()
               for loss in result["losses"].values())


@pytest.mark.parametrize("name", ["SGD", "Momentum", "AdaGrad", "Adam"])
def test_each_path_ends_near_the_minimum(name):
    script = load("ch06_optimizers")
    path = script.trajectory(name, script.PATH_LRS[name])
    start, end = np.hypot(*path[0]), np.hypot(*path[-1])
    assert path.shape == (31, 2) and tuple(path[0]) == script.START
    assert end < 0.2 * start, (name, path[-1])


def test_sgd_zigzags_across_the_valley():
    # With lr 0.95, y ← y − 0.95·2y = −0.9·y: y changes sign at every step (figure 6-8's zigzag)
    # while x creeps towards 0 from one side.
    script = load("ch06_optimizers")
    path = script.trajectory("SGD", 0.95)
    assert (np.sign(path[1:, 1]) == -np.sign(path[:-1, 1])).all()
    np.testing.assert_allclose(path[1:, 1], -0.9 * path[:-1, 1], rtol=1e-12)
    assert (path[:, 0] < 0).all() and (np.diff(path[:, 0]) > 0).all()


# ------------------------------------------------------------------------------ initialisation
def test_init_script_writes_its_figures(tmp_path):
    script = load("ch06_init")
    result = script.main(["--out", str(tmp_path), "--inputs", "50", "--units", "20",
                          "--iterations", "4", *TINY_NET])
    assert_figures(result, tmp_path,
                   ["ch06_init_sigmoid.png", "ch06_init_relu.png", "ch06_init_mnist.png"])
    assert all(len(layers) == 5 for layers in result["activations"].values())


@pytest.mark.parametrize("seed", SEEDS)
def test_he_keeps_relu_activations_spread_and_std_001_collapses_them(seed):
    script = load("ch06_init")
    last = {init: script.activations("relu", init, inputs=200, units=50, seed=seed)[-1]
            for init in ("he", "xavier", 0.01)}
    assert last["he"].std() > 0.4
    assert last[0.01].std() < 1e-4
    # Xavier sits between: ReLU halves the variance it keeps at each layer.
    assert last[0.01].std() < last["xavier"].std() < last["he"].std()


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_activations_saturate_at_std_1_and_sit_at_one_half_at_std_001(seed):
    script = load("ch06_init")
    wide = script.activations("sigmoid", 1.0, inputs=200, units=50, seed=seed)[-1]
    narrow = script.activations("sigmoid", 0.01, inputs=200, units=50, seed=seed)[-1]
    xavier = script.activations("sigmoid", "xavier", inputs=200, units=50, seed=seed)[-1]
    saturated = ((wide < 0.05) | (wide > 0.95)).mean()
    assert saturated > 0.3
    assert np.abs(narrow - 0.5).max() < 0.05
    assert ((xavier < 0.05) | (xavier > 0.95)).mean() < 0.05 < saturated


# ------------------------------------------------------------------------------ regularisation
def test_regularization_script_writes_its_figures(tmp_path):
    script = load("ch06_regularization")
    result = script.main(["--out", str(tmp_path), "--train", "50", "--test", "100",
                          "--epochs", "3", "--dropout-epochs", "4", "--hidden", "10",
                          "--layers", "3", "--batch-size", "25"])
    assert_figures(result, tmp_path,
                   ["ch06_overfit.png", "ch06_weight_decay.png", "ch06_dropout.png"])
    assert len(result["weight_decay"]["train_acc"]) == 4
    assert len(result["dropout"]["test_acc"]) == 5 == len(result["plain"]["test_acc"])


def test_weight_decay_groups_decay_only_the_linear_weights():
    common = load("ch06_common")
    net = common.mlp((6, 5, 3), rng=np.random.default_rng(0))
    decayed, rest = common.weight_decay_groups(net, 0.1)
    assert [p.shape for p in decayed["params"]] == [(6, 5), (5, 3)]
    assert [p.shape for p in rest["params"]] == [(5,), (3,)]
    assert (decayed["weight_decay"], rest["weight_decay"]) == (0.1, 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_weight_decay_narrows_the_gap_between_train_and_test_accuracy(seed):
    # The textbook's over-fitting set-up at a small size: 200 training images, 4 layers of 40
    # units, 50 epochs; weight decay λ = 0.1 on the weights. Without it the net learns its
    # 200 images perfectly; with it the train-test gap (mean of the last 5 epochs) shrinks.
    script = load("ch06_regularization")
    common = load("ch06_common")
    x, t, x_test, t_test = common.mnist(200)
    data = (x, t, x_test[:1000], t_test[:1000])
    settings = dict(epochs=50, hidden=40, layers=4, lr=0.05, batch_size=50, seed=seed)
    plain = script.gap(script.run(data, **settings), last=5)
    decayed = script.gap(script.run(data, weight_decay=0.1, **settings), last=5)
    assert plain[0] > 0.99
    assert decayed[0] < plain[0]
    assert decayed[2] < plain[2] - 0.03, (plain, decayed)


# ------------------------------------------------------------------------------ random search
def test_hyperparam_script_writes_its_figures_and_ranks_the_trials(tmp_path):
    script = load("ch06_hyperparam")
    result = script.main(["--out", str(tmp_path), "--trials", "4", "--images", "60",
                          "--epochs", "2", "--hidden", "10", "--layers", "3",
                          "--batch-size", "20", "--show", "3"])
    assert_figures(result, tmp_path, ["ch06_hyperparam.png", "ch06_hyperparam_scatter.png"])
    results = result["results"]
    finals = [r["val_acc"][-1] for r in results]
    assert len(results) == 4 and finals == sorted(finals, reverse=True)
    for r in results:
        assert 1e-6 <= r["lr"] <= 1e-2 and 1e-8 <= r["weight_decay"] <= 1e-4
        assert len(r["val_acc"]) == len(r["train_acc"]) == 3


def test_the_validation_split_is_apart_from_the_training_part():
    script = load("ch06_hyperparam")
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    t = np.arange(50)
    x_train, t_train, x_val, t_val = script.split(x, t, 0.2, np.random.default_rng(0))
    assert len(x_val) == 10 and len(x_train) == 40
    assert sorted(np.concatenate([t_train, t_val]).tolist()) == list(range(50))
    np.testing.assert_array_equal(x_train[:, 0], t_train)  # rows and labels stay paired


# ------------------------------------------------------------------------------ BatchNorm
needs_batchnorm = pytest.mark.skipif(not load("ch06_common").has_batch_norm(),
                                     reason="this minigrad has no Batch Normalization layer")


@needs_batchnorm
def test_batchnorm_script_writes_its_figures(tmp_path):
    script = load("ch06_batchnorm")
    result = script.main(["--out", str(tmp_path), "--train", "100", "--epochs", "2",
                          "--hidden", "10", "--layers", "3", "--batch-size", "50",
                          "--scales", "3"])
    assert_figures(result, tmp_path, ["ch06_batchnorm.png", "ch06_batchnorm_grid.png"])
    assert len(result["normal"]) == len(result["batchnorm"]) == 3
    assert all(len(c["train_acc"]) == 3 for c in result["batchnorm"])


@needs_batchnorm
@pytest.mark.parametrize("seed", SEEDS)
def test_batchnorm_learns_from_a_bad_init_where_the_plain_net_does_not(seed):
    # Weights of std 0.01 through 5 layers: without BatchNorm the signal (and the gradient)
    # vanishes and the loss stays at log 10 ≈ 2.30; with it the first 30 iterations already
    # take the loss well below.
    script = load("ch06_batchnorm")
    common = load("ch06_common")
    x, t, _, _ = common.mnist(300)
    data = (x, t, x[:10], t[:10])
    settings = dict(epochs=5, hidden=30, layers=5, lr=0.1, batch_size=50, seed=seed)
    plain = script.run(data, 0.01, False, **settings)["loss"]
    normed = script.run(data, 0.01, True, **settings)["loss"]
    assert len(plain) == len(normed) == 30
    assert plain[-10:].mean() > 2.25
    assert normed[-10:].mean() < plain[-10:].mean() - 0.5, (plain[-10:], normed[-10:])


def test_the_textbook_batchnorm_module_normalises_and_keeps_running_statistics():
    pytest.importorskip("minigrad.book")
    from minigrad import Tensor

    common = load("ch06_common")
    layer = common.BookBatchNorm(3, eps=1e-6)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert sorted(layer.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    x = np.random.default_rng(0).normal(2.0, 3.0, (50, 3)).astype(np.float32)
    y = layer(Tensor(x)).data
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1, rtol=1e-4)
    # The book's momentum 0.9 keeps 90% of the old running value (zeros here).
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.running_var, 0.1 * x.var(axis=0), rtol=1e-4)
    layer.eval()
    expected = (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-6)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)
