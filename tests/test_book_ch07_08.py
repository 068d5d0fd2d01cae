"""The chapter 7 and 8 book scripts run with tiny settings and write their figures."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad import nn
from minigrad.data import load_mnist
from minigrad.models import DeepConvNet

BOOK = Path(__file__).resolve().parents[1] / "examples" / "book"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"book_{name}", BOOK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_full_mnist(tmp_path, monkeypatch):
    """Only the subset shipped with minigrad is found."""
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def is_png(path):
    return Path(path).read_bytes().startswith(b"\x89PNG")


def test_ch07_filters_tiny(tmp_path, capsys):
    result = load_script("ch07_filters").main(
        ["--epochs", "1", "--train-images", "200", "--test-images", "50", "--digit", "3",
         "--out", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["ch07_activations.png", "ch07_feature_maps.png",
                                            "ch07_filters_after.png", "ch07_filters_before.png"]
    assert all(is_png(path) for path in result["written"])
    assert 0.0 <= result["accuracy"] <= 1.0
    printed = capsys.readouterr().out
    assert "epoch 1/1: train loss" in printed and "test accuracy" in printed


def test_ch08_trains_briefly_tiny(tmp_path, no_full_mnist, capsys):
    result = load_script("ch08_deep_convnet").main(
        ["--train-images", "100", "--test-images", "40", "--max-images", "5",
         "--out", str(tmp_path)])
    assert os.listdir(tmp_path) == ["ch08_subset_misclassified.png"]
    assert is_png(tmp_path / "ch08_subset_misclassified.png")
    assert result["test_images"] == 40
    assert result["wrong"] == round((1 - result["accuracy"]) * 40)
    assert "of the MNIST subset" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["train_mnist checkpoint", "model state dict",
                                  "the book's W1…W8, b1…b8"])
def test_ch08_loads_trained_weights(tmp_path, no_full_mnist, capsys, kind):
    nn.manual_seed(5)
    trained = DeepConvNet().eval()
    path = tmp_path / "run" / "weights.npz"
    path.parent.mkdir()
    state = {"train_mnist checkpoint": {"model": trained.state_dict(),
                                        "trainer": {"epoch": np.array(3)}},
             "model state dict": trained.state_dict(),
             "the book's W1…W8, b1…b8": trained.book_params()}[kind]
    minigrad.save(state, path)
    history = {"epoch": [1, 2, 3], "train_loss": [0.5, 0.2, 0.1], "test_acc": [0.9, 0.95, 0.97],
               "lr": [1e-3, 5e-4, None]}
    (path.parent / "history.json").write_text(json.dumps(history))
    out = tmp_path / "img"
    result = load_script("ch08_deep_convnet").main(
        ["--checkpoint", str(path), "--test-images", "30", "--out", str(out)])
    _, (x_test, t_test) = load_mnist(subset=True)
    assert result["accuracy"] == pytest.approx(trained.accuracy(x_test[:30], t_test[:30]))
    assert sorted(os.listdir(out)) == ["ch08_history.png", "ch08_misclassified.png"]
    assert is_png(out / "ch08_history.png") and is_png(out / "ch08_misclassified.png")
    assert f"DeepConvNet: {kind} from" in capsys.readouterr().out


def test_ch08_refuses_a_checkpoint_of_another_model(tmp_path, no_full_mnist):
    path = tmp_path / "simple.npz"
    minigrad.save({"model": {"conv1.weight": np.zeros((30, 1, 5, 5), np.float32)}}, path)
    with pytest.raises(SystemExit, match=r"does not hold DeepConvNet weights"):
        load_script("ch08_deep_convnet").main(["--checkpoint", str(path), "--out",
                                               str(tmp_path)])


@pytest.mark.parametrize("name", ["ch07_filters", "ch08_deep_convnet"])
def test_book_scripts_help(name):
    done = subprocess.run([sys.executable, str(BOOK / f"{name}.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "--out" in done.stdout and "--seed" in done.stdout
