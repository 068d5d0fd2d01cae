"""examples/book/ch04_two_layer_net.py and ch05_backprop.py (and profile_twins.py), with tiny
settings: they write their figures and their claims hold (the net learns; backpropagation equals
the numerical gradient; the book's and the fast network give the same loss)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    path = ROOT / "examples" / "book" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"book_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ch04_two_layer_net_learns_and_draws_its_curves(tmp_path, capsys):
    result = load("ch04_two_layer_net").main(
        ["--iters", "300", "--limit", "500", "--out", str(tmp_path), "--seed", "1"])
    history = result["history"]
    assert (tmp_path / "ch04_accuracy.png").stat().st_size > 0
    assert len(history["loss"]) == 300 and len(history["train_acc"]) == 60  # 5 steps an epoch
    assert history["loss"][-1] < history["loss"][0]
    assert history["test_acc"][-1] > 0.5                                 # chance is 0.1
    assert "final train acc" in capsys.readouterr().out


def test_ch04_is_seeded():
    example = load("ch04_two_layer_net")
    args = ["--iters", "5", "--limit", "100", "--out", os.devnull]
    first = example.train(example.parse_args(args))
    again = example.train(example.parse_args(args))
    assert first["loss"] == again["loss"]


def test_ch05_backprop_equals_the_numerical_gradient(tmp_path, capsys):
    result = load("ch05_backprop").main(
        ["--hidden", "2", "--batch", "2", "--out", str(tmp_path), "--weight-init-std", "0.1"])
    assert (tmp_path / "ch05_gradcheck.png").stat().st_size > 0
    assert result["graph"].stat().st_size > 0        # the PNG, or the DOT text without dot
    for delta, rows in result["results"].items():
        for key in ("W1", "b1", "W2", "b2"):
            assert rows[key]["mean_diff"] < 1e-6, (delta, key, rows[key])
            assert rows[key]["mean_abs_grad"] > 1e3 * rows[key]["mean_diff"], (delta, key)
    # Without δ only the central difference's error is left.
    assert max(r["mean_diff"] for r in result["results"][0.0].values()) < 1e-9
    printed = capsys.readouterr().out
    assert "| W1 | 1568 |" in printed and "δ = 1e-07:" in printed


@pytest.mark.parametrize("name", ["ch04_two_layer_net", "ch05_backprop", "profile_twins"])
def test_scripts_have_help(name):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "book" / f"{name}.py"),
                           "--help"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert "--out" in done.stdout and "--seed" in done.stdout


def test_profile_twins_profiles_both_networks_on_the_same_loss(tmp_path, capsys):
    result = load("profile_twins").main(
        ["--batches", "2", "--batch-size", "4", "--out", str(tmp_path)])
    assert (tmp_path / "profile_twins.png").stat().st_size > 0
    twin_losses, fast_losses = result["losses"]
    assert twin_losses == pytest.approx(fast_losses, rel=1e-4)
    ops = {row[1]: row[2] for row in result["rows"]} | {row[3]: row[4] for row in result["rows"]}
    for op in ("Convolution", "Pooling", "Affine", "Relu", "SoftmaxWithLoss", "Conv2d",
               "MaxPool2d", "ReLU", "SoftmaxCrossEntropy"):
        assert sum(ops[op]) > 0, op                  # each layer was timed, forward or back
    assert "Convolution" in capsys.readouterr().out
