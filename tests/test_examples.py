"""The examples run: as modules with tiny settings, and as scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    env.pop("MINIGRAD_DATA", None)
    env["HOME"] = str(cwd)  # no full MNIST from the cache: the subset, quickly
    done = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_custom_network_learns(load_example, capsys):
    example = load_example("custom_network")
    accuracy = example.main(["--epochs", "1", "--limit", "2000"])
    printed = capsys.readouterr().out
    assert "(conv2): Conv2d(16, 32, kernel_size=3, stride=2, padding=1)" in printed
    assert "Dropout(p=0.25)" in printed and "epoch 1: train loss" in printed
    assert accuracy > 0.7  # chance is 0.1


def test_custom_network_dropout_follows_the_mode(load_example):
    import numpy as np

    from minigrad import Tensor

    net = load_example("custom_network").StridedNet()
    x = Tensor(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    net.eval()
    np.testing.assert_array_equal(net(x).data, net(x).data)
    net.train()
    assert not np.array_equal(net(x).data, net(x).data)


def test_custom_op_checks_hold(load_example):
    example = load_example("custom_op")
    example.test_swish()  # the hypothesis test defined in the example


def test_custom_op_swish_matches_torch_silu(load_example):
    torch = pytest.importorskip("torch")
    import numpy as np

    from minigrad import Tensor

    example = load_example("custom_op")
    x = np.linspace(-6, 6, 25)
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.silu(t).sum().backward()
    mx = Tensor(x, requires_grad=True)
    y = example.swish(mx)
    y.sum().backward()
    np.testing.assert_allclose(y.data, torch.nn.functional.silu(t).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(mx.grad, t.grad.numpy(), rtol=1e-12)


def test_custom_op_runs_as_a_script(tmp_path):
    printed = run_script("custom_op", cwd=tmp_path)
    assert "gradcheck (float64, β = 1.5): True" in printed
    assert "(1): SwishLayer(beta=1.0)" in printed


def test_train_mnist_runs_as_a_script(tmp_path):
    printed = run_script("train_mnist", "--limit", "100", "--epochs", "1", "--out", "run",
                         cwd=tmp_path)
    assert "Data: the MNIST subset shipped with minigrad" in printed
    assert (tmp_path / "run" / "checkpoint.npz").is_file()


def test_custom_op_takes_its_arguments(tmp_path):
    printed = run_script("custom_op", "--help", cwd=tmp_path)
    assert printed.startswith("usage: custom_op.py") and "--examples N" in printed
    assert "gradcheck" not in printed  # --help does not run the demo
    printed = run_script("custom_op", "--beta", "0.5", "--examples", "5", cwd=tmp_path)
    assert "gradcheck (float64, β = 0.5): True" in printed
    assert "hypothesis: forward and gradient hold on 5 drawn inputs" in printed


@pytest.mark.parametrize("args, message", [
    (["--examples", "0"], "--examples must be a positive integer, got 0"),
    (["--beta", "nan"], "--beta must be a finite number, got nan"),
    (["--seed", "-2"], "--seed must be an integer >= 0, got -2"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_custom_op_refuses_bad_arguments(load_example, capsys, args, message):
    with pytest.raises(SystemExit):
        load_example("custom_op").main(args)
    assert message in capsys.readouterr().err


NUMBER_WORDS = {"four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def test_draw_graph_writes_the_graphs_its_docstring_lists(load_example, tmp_path, monkeypatch):
    import re

    example = load_example("draw_graph")
    first = example.__doc__.splitlines()[0]
    count = NUMBER_WORDS[re.search(r"(\w+) ways\.$", first).group(1)]
    listed = re.findall(r"^\d\. ``(graph_\w+)``", example.__doc__, re.M)
    assert len(listed) == count
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))  # no dot: the DOT text is written
    example.main(["--out", str(tmp_path / "out"), "--batch", "2"])
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == sorted(listed)
