"""End to end: SimpleConvNet learns on the embedded subset; examples/train_mnist.py writes every
artifact, resumes exactly and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad import io, nn, optim
from minigrad.data import DataLoader, load_mnist
from minigrad.models import SimpleConvNet

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


@pytest.fixture(scope="module")
def train_mnist(load_example):
    return load_example("train_mnist")


@pytest.fixture(autouse=True)
def no_full_mnist(monkeypatch, tmp_path):
    """Keep the tests off a full MNIST that $MINIGRAD_DATA or the cache may hold."""
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_simple_conv_net_learns_on_the_subset():
    (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)
    nn.manual_seed(0)
    model = SimpleConvNet(filter_num=10)  # the textbook's 30 filters learn alike, 3× slower
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(x_train[:6000], t_train[:6000], batch_size=30, seed=0)
    losses = []
    for x, t in loader:  # 200 steps
        loss = model.loss(x, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert len(losses) == 200
    assert np.mean(losses[-20:]) < 0.5 < np.mean(losses[:5])
    assert model.accuracy(x_test[:1000], t_test[:1000]) > 0.85  # chance is 0.1


TINY = ["--subset", "--limit", "200", "--batch-size", "50"]


def read_history(out: Path) -> dict:
    return json.loads((out / "history.json").read_text())


def test_main_writes_every_artifact(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    history = train_mnist.main([*TINY, "--epochs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Data: the MNIST subset shipped with minigrad: 200 training and 200 test" in printed
    assert "epoch 2/2: train loss" in printed
    assert read_history(out) == history and history["epoch"] == [1, 2]
    assert set(history) >= {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert all(0 <= a <= 1 for a in history["test_acc"] + history["train_acc"])
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (out / "graph.svg").read_text()
    assert "<svg" in svg and "conv1.weight" in svg and "affine2" in svg
    model = SimpleConvNet()
    model.load_state_dict(io.load(out / "model.npz"))  # strict: exactly the model's names
    state = io.unflatten(io.load(out / "optimizer.npz"))
    assert int(state["trainer"]["epoch"]) == 2
    opt = optim.Adam(model.parameters())
    opt.load_state_dict(state["optimizer"])
    assert opt.state[0]["step"] == 2 * 4  # 200 images / 50 per batch, two epochs


def test_resume_continues_exactly(train_mnist, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_mnist.main([*TINY, "--epochs", "3", "--out", str(straight)])
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(resumed)])
    history = train_mnist.main([*TINY, "--epochs", "3", "--out", str(resumed), "--resume"])
    assert history["epoch"] == [1, 2, 3]
    expected = read_history(straight)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert history[key] == expected[key], key
    a, b = io.load(straight / "model.npz"), io.load(resumed / "model.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_resume_refuses_other_settings(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"different settings.*'batch_size': \(50, 40\)"):
        train_mnist.main(["--subset", "--limit", "200", "--batch-size", "40", "--epochs", "2",
                          "--out", str(out), "--resume"])
    history = train_mnist.main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    assert history["epoch"] == [1]
    assert "Already trained for 1 epochs" in capsys.readouterr().out


def test_ctrl_c_keeps_the_last_epoch_and_resumes(train_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_step = optim.Adam.step
    calls = []

    def interrupted_step(self):
        calls.append(1)
        if len(calls) == 6:  # in the second epoch (4 steps per epoch)
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(optim.Adam, "step", interrupted_step)
    history = train_mnist.main([*TINY, "--epochs", "3", "--out", str(out)])
    assert history["epoch"] == [1]
    assert "Interrupted during epoch 2; the checkpoint of epoch 1" in capsys.readouterr().out
    assert int(io.load(out / "optimizer.npz")["trainer.epoch"]) == 1
    monkeypatch.setattr(optim.Adam, "step", real_step)
    history = train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume"])
    assert history["epoch"] == [1, 2]


def test_bad_arguments_stop_with_a_message(train_mnist, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_mnist.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "does not hold the four MNIST files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_mnist.main(["--epochs", "0"])
    assert "--epochs must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_mnist.main(["--threads", "0"])
    assert "--threads must be a positive integer, got 0" in capsys.readouterr().err


def test_threads_option_sets_minigrad_threads(train_mnist, tmp_path, capsys):
    before = minigrad.get_num_threads()
    try:
        train_mnist.main(["--limit", "100", "--epochs", "1", "--threads", "1",
                          "--out", str(tmp_path / "run")])
        assert minigrad.get_num_threads() == 1
        assert "batch 100, 1 epochs, 1 thread\n" in capsys.readouterr().out
    finally:
        minigrad.set_num_threads(before)


def test_without_full_mnist_it_says_it_falls_back(train_mnist, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "empty"))
    train_mnist.main(["--limit", "100", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert "full MNIST not found: pass --data-dir or set MINIGRAD_DATA" in capsys.readouterr().out


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"full MNIST is not at {MNIST_DIR}")
def test_uses_full_mnist_when_found(train_mnist, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(MNIST_DIR))
    train_mnist.main(["--limit", "100", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert f"Data: full MNIST from {MNIST_DIR}: 100 training" in capsys.readouterr().out


def test_without_graphviz_it_writes_the_dot_text(train_mnist, tmp_path, monkeypatch, capsys):
    from minigrad import viz

    def no_dot(graph, path, **kwargs):
        raise viz.DotNotFoundError("dot is not installed")

    monkeypatch.setattr(viz, "render_graph", no_dot)
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(out)])
    assert "graph.dot (Graphviz's dot program is missing" in capsys.readouterr().out
    assert not (out / "graph.svg").exists()
    assert (out / "graph.dot").read_text().startswith("digraph")


def test_resume_without_a_checkpoint(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    history = train_mnist.main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    assert history["epoch"] == [1]
    assert "no checkpoint in" in capsys.readouterr().out
    (out / "optimizer.npz").unlink()
    with pytest.raises(SystemExit, match="is incomplete: optimizer.npz missing"):
        train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume"])
