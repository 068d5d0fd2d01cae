"""End to end: SimpleConvNet learns on the embedded subset; examples/train_mnist.py writes every
artifact, resumes exactly and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad import nn, optim
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


def read_checkpoint(out: Path) -> dict:
    return minigrad.load(out / "checkpoint.npz")


@pytest.fixture
def without_dot(tmp_path_factory, monkeypatch):
    """PATH as it is, but with Graphviz's dot hidden: symlinks to every other program."""
    hidden = tmp_path_factory.mktemp("path-without-dot")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = hidden / entry.name
            # lexists: a link of the same name made for an earlier folder may be broken or
            # loop, which exists() would report as missing.
            if entry.name != "dot" and not os.path.lexists(target):
                target.symlink_to(entry.path)
    monkeypatch.setenv("PATH", str(hidden))
    assert shutil.which("dot") is None


@pytest.mark.parametrize("graphviz", ["with dot", "without dot"])
def test_main_writes_every_artifact(train_mnist, tmp_path, capsys, request, graphviz):
    if graphviz == "with dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if graphviz == "without dot":
        request.getfixturevalue("without_dot")
    out = tmp_path / "run"
    history = train_mnist.main([*TINY, "--epochs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Data: the MNIST subset shipped with minigrad: 200 training and 200 test" in printed
    assert "epoch 2/2: train loss" in printed
    # the model summary: every layer with its output shape, and the total
    assert re.search(r"conv1 \(Conv2d\) +\(1, 30, 24, 24\) +780\n", printed)
    assert "Total params: 433,890" in printed
    assert max(len(line) for line in printed.replace(str(out), "runs/mnist").splitlines()) <= 100
    assert read_history(out) == history and history["epoch"] == [1, 2]
    assert set(history) >= {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert all(0 <= a <= 1 for a in history["test_acc"] + history["train_acc"])
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if graphviz == "with dot":
        svg = (out / "graph.svg").read_text()
        assert "<svg" in svg and "conv1.weight" in svg and "affine2" in svg
        assert not (out / "graph.dot").exists()
    else:
        assert "graph.dot\n      (Graphviz's dot program is missing" in printed
        assert (out / "graph.dot").read_text().startswith("digraph")
        assert not (out / "graph.svg").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.npz", "best.npz", "history.json", "history.png",
         "graph.svg" if graphviz == "with dot" else "graph.dot"])
    assert "lr 0.001, " in printed and "lr 0.0005, " in printed  # cosine over two epochs
    assert history["lr"] == [1e-3, 5e-4]

    flat = read_checkpoint(out)
    model = SimpleConvNet()
    model.load_state_dict(train_mnist.section(flat, "model"))  # strict: exactly the model's names
    opt = optim.Adam(model.parameters())
    opt.load_state_dict(train_mnist.section(flat, "optimizer"))
    assert opt.state[0]["step"] == 2 * 4  # 200 images / 50 per batch, two epochs
    assert int(flat["trainer.epoch"]) == 2
    assert train_mnist.array_text(flat["trainer.history"]) == history
    assert flat["loader.rng"].dtype == np.uint8
    assert "dropout.rng" not in flat  # SimpleConvNet has no dropout

    best_epoch = int(np.argmax(history["test_acc"])) + 1  # the first of equals
    assert history["best"] == {"epoch": best_epoch, "test_acc": max(history["test_acc"])}
    assert (f"Best test accuracy {max(history['test_acc']):.4f} at epoch {best_epoch}: its "
            f"weights are in {out / 'best.npz'}") in printed
    best = minigrad.load(out / "best.npz")
    assert int(best["epoch"]) == best_epoch and float(best["test_acc"]) == history["best"][
        "test_acc"]
    model.load_state_dict(train_mnist.section(best, "model"))


def test_best_npz_holds_the_best_epochs_weights(train_mnist, tmp_path, monkeypatch):
    """Test accuracies 0.5, 0.75, 0.75: best.npz holds the weights after epoch 2."""
    accuracies = iter([0.5, 0.75, 0.75])
    weights = []
    real_evaluate = train_mnist.evaluate

    def evaluate(model, x, t):
        weights.append({k: v.copy() for k, v in model.state_dict().items()})
        return real_evaluate(model, x, t)[0], next(accuracies)

    monkeypatch.setattr(train_mnist, "evaluate", evaluate)
    out = tmp_path / "run"
    history = train_mnist.main([*TINY, "--epochs", "3", "--out", str(out)])
    assert history["best"] == {"epoch": 2, "test_acc": 0.75}
    best = minigrad.load(out / "best.npz")
    assert int(best["epoch"]) == 2 and float(best["test_acc"]) == 0.75
    saved = train_mnist.section(best, "model")
    assert saved.keys() == weights[1].keys()
    for key in saved:
        np.testing.assert_array_equal(saved[key], weights[1][key], err_msg=key)
    assert not np.array_equal(saved["affine2.weight"], weights[2]["affine2.weight"])


def test_a_stale_graph_of_the_other_kind_is_removed(train_mnist, tmp_path, without_dot):
    (tmp_path / "graph.svg").write_text("<svg>an older run's</svg>")
    x, t = load_mnist(subset=True)[0]
    drawn = train_mnist.save_graph(SimpleConvNet(), x[:2], t[:2], tmp_path)
    assert drawn.startswith("graph.dot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot"]


def assert_same_run(a: Path, b: Path) -> None:
    """The runs in folders a and b are the same to the bit, but for the seconds they took."""
    history_a, history_b = read_history(a), read_history(b)
    del history_a["seconds"], history_b["seconds"]
    assert history_a == history_b
    for name in ("checkpoint.npz", "best.npz"):
        flat_a, flat_b = minigrad.load(a / name), minigrad.load(b / name)
        assert list(flat_a) == list(flat_b)
        for key in flat_a:  # weights, optimiser moments and step, loader, schedule, dropout...
            if key != "trainer.history":  # holds the seconds (compared above without them)
                np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=f"{name} {key}")


@pytest.mark.parametrize("model, schedule", [("simple", "cosine"), ("simple", "step"),
                                             ("simple", "constant"), ("deep", "cosine")])
def test_resume_continues_bit_for_bit(train_mnist, tmp_path, capsys, model, schedule):
    """Two epochs straight, and one, Ctrl-C, then --resume give the same run."""
    tiny = ["--subset", "--limit", "100", "--batch-size", "25"]  # 4 steps per epoch
    run = [*tiny, "--model", model, "--schedule", schedule, "--epochs", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_mnist.main([*run, "--out", str(straight)])

    real_step = optim.Adam.step
    calls = []

    def interrupted_step(self):
        calls.append(1)
        if len(calls) == 6:  # in the second epoch (4 steps per epoch)
            raise KeyboardInterrupt
        real_step(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optim.Adam, "step", interrupted_step)
        assert train_mnist.main([*run, "--out", str(resumed)])["epoch"] == [1]
    half = tmp_path / "half"
    shutil.copytree(resumed, half)
    capsys.readouterr()
    history = train_mnist.main([*tiny, "--out", str(resumed), "--resume"])  # model, schedule,
    assert history["epoch"] == [1, 2]                         # epochs: the checkpoint's
    assert "changes the" not in capsys.readouterr().out
    assert_same_run(straight, resumed)
    assert history["lr"] == pytest.approx(
        [1e-3, {"cosine": 5e-4, "step": 1e-4, "constant": 1e-3}[schedule]])
    if model == "deep":  # the dropout masks matter: without their generator's state, they differ
        assert "dropout.rng" in read_checkpoint(half)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(train_mnist.DropoutRNG, "load_state_dict", lambda self, state: None)
            train_mnist.main([*run, "--out", str(half), "--resume"])
        assert read_history(half)["train_loss"][1] != history["train_loss"][1]


@pytest.mark.parametrize("option, message", [
    (["--batch-size", "40"], r"'batch_size': \(50, 40\)"),
    (["--schedule", "step"], r"'schedule': \('cosine', 'step'\)"),
    (["--schedule", "constant"], r"'schedule': \('cosine', 'constant'\)"),
    (["--model", "deep"], r"'model': \('simple', 'deep'\)"),
])
def test_resume_refuses_other_settings(train_mnist, tmp_path, capsys, one_epoch_run, option,
                                       message):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    before = read_checkpoint(out)
    args = ["--subset", "--limit", "200", "--batch-size", "50", *option]
    with pytest.raises(SystemExit, match=f"different settings.*{message}.*resume with the saved "
                                         "ones .* or use --overwrite or another --out"):
        train_mnist.main([*args, "--epochs", "2", "--out", str(out), "--resume"])
    after = read_checkpoint(out)
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], before[k]) for k in before)
    history = train_mnist.main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    assert history["epoch"] == [1]
    assert "Already trained for 1 epoch;" in capsys.readouterr().out


def test_resume_takes_the_checkpoints_options_unless_given(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--schedule", "step", "--epochs", "1", "--out", str(out)])
    capsys.readouterr()
    history = train_mnist.main([*TINY, "--out", str(out), "--resume"])  # not 10 epochs
    assert history["epoch"] == [1]
    assert "Already trained for 1 epoch;" in capsys.readouterr().out
    history = train_mnist.main([*TINY, "--out", str(out), "--resume", "--epochs", "2"])
    printed = capsys.readouterr().out
    assert "Learning rate: step schedule" in printed and "SimpleConvNet" in printed
    assert history["lr"] == pytest.approx([1e-3, 1e-4])  # divided by 10 after each epoch
    assert "changes the" not in printed  # a step of one epoch for one epoch, and for two


def test_resume_with_other_epochs_replans_the_cosine_and_says_so(train_mnist, tmp_path, capsys):
    """A finished one-epoch cosine (the rate at 0) continued to three epochs takes, from epoch
    2 on, the rates of a three-epoch cosine."""
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(out)])
    capsys.readouterr()
    history = train_mnist.main([*TINY, "--epochs", "3", "--out", str(out), "--resume"])
    printed = capsys.readouterr().out
    assert ("Resume: --epochs 3 changes the cosine schedule planned over 1 epoch: from epoch 2 "
            "on,\n        the rate is that of a 3-epoch run (epoch 2: lr 0.00075 instead of 0)"
            ) in printed
    assert max(len(line) for line in printed.replace(str(out), "runs/mnist").splitlines()) <= 100
    opt = optim.Adam([nn.Parameter(np.zeros(1))], lr=1e-3)  # the rates of a three-epoch run
    three = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    rates = [opt.lr]
    for _ in range(2):
        opt.step()
        three.step()
        rates.append(opt.lr)
    assert history["lr"] == [1e-3, rates[1], rates[2]]  # bit for bit from epoch 2
    saved = train_mnist.section(read_checkpoint(out), "schedule")
    assert int(saved["T_max"]) == 3 and int(saved["last_epoch"]) == 3
    assert train_mnist.array_text(read_checkpoint(out)["trainer.config"])["epochs"] == 3
    train_mnist.main([*TINY, "--out", str(out), "--resume"])
    assert "changes the" not in capsys.readouterr().out


def test_the_dropout_generator_as_a_checkpoint_part(train_mnist, tmp_path, without_dot):
    from minigrad.models import DeepConvNet
    from minigrad.ops.dropout import generator

    nn.manual_seed(0)
    part = train_mnist.DropoutRNG()
    saved = minigrad.io.unflatten(part.state_dict())
    first = generator().random(5)
    part.load_state_dict(saved)
    np.testing.assert_array_equal(generator().random(5), first)  # the same draws again
    before = generator().bit_generator.state
    with pytest.raises(ValueError, match="dropout.rng is not the state of a PCG64 generator"):
        part.load_state_dict({"rng": train_mnist.text_array({"bit_generator": "MT19937"})})
    assert generator().bit_generator.state == before  # unchanged

    x, t = load_mnist(subset=True)[0]
    train_mnist.save_graph(DeepConvNet(), x[:2], t[:2], tmp_path)  # draws one batch's masks
    assert generator().bit_generator.state == before  # and puts the generator back


def test_resume_refuses_a_new_learning_rate_under_a_schedule(train_mnist, tmp_path,
                                                             one_epoch_run):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    with pytest.raises(SystemExit, match="--lr 0.0005 cannot replace the learning rate of a "
                                         "--schedule cosine run"):
        train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume", "--lr", "5e-4"])


def test_resume_applies_a_new_learning_rate_and_says_so(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--schedule", "constant", "--epochs", "1", "--out", str(out)])
    train_mnist.main([*TINY, "--schedule", "constant", "--epochs", "2", "--out", str(out),
                      "--resume", "--lr", "5e-4"])
    assert "learning rate 0.001 (checkpoint) -> 0.0005 (--lr)" in capsys.readouterr().out
    assert float(read_checkpoint(out)["optimizer.param_groups.0.lr"]) == 5e-4
    train_mnist.main([*TINY, "--schedule", "constant", "--epochs", "3", "--out", str(out),
                      "--resume"])
    printed = capsys.readouterr().out
    assert "learning rate" not in printed and "Adam(lr=0.0005)" in printed  # kept
    assert float(read_checkpoint(out)["optimizer.param_groups.0.lr"]) == 5e-4


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
    assert int(read_checkpoint(out)["trainer.epoch"]) == 1
    monkeypatch.setattr(optim.Adam, "step", real_step)
    history = train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume"])
    assert history["epoch"] == [1, 2]


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "--lr: must be a finite positive number, got nan"),
    (["--lr", "inf"], "--lr: must be a finite positive number, got inf"),
    (["--lr=-1e-3"], "--lr: must be a finite positive number, got -1e-3"),
    (["--lr", "0"], "--lr: must be a finite positive number, got 0"),
    (["--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["--epochs", "0"], "--epochs: must be a positive integer, got 0"),
    (["--epochs", "2.5"], "--epochs: expected a positive integer, got '2.5'"),
    (["--threads", "0"], "--threads: must be a positive integer, got 0"),
    (["--batch-size", "-5"], "--batch-size: must be a positive integer, got -5"),
    (["--limit", "0"], "--limit: must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
    (["--resume", "--overwrite"], "--overwrite: not allowed with argument --resume"),
    (["--subset", "--data-dir", "."], "--data-dir and --subset exclude each other"),
])
def test_bad_arguments_stop_with_a_message(train_mnist, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        train_mnist.main([*args, "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_folders_stop_with_a_message(train_mnist, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_mnist.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "does not hold the four MNIST files" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        train_mnist.main(["--out", str(tmp_path / "file")])
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_second_run_needs_resume_or_overwrite(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(out)])
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit, match="is not empty .* pass --resume to continue a run, "
                                         "--overwrite to start afresh"):
        train_mnist.main([*TINY, "--epochs", "1", "--seed", "1", "--out", str(out)])
    assert (out / "checkpoint.npz").read_bytes() == before
    (out / "notes.txt").write_text("mine")
    (out / "model.npz").write_bytes(b"an earlier version's checkpoint")
    history = train_mnist.main([*TINY, "--epochs", "1", "--seed", "1", "--out", str(out),
                                "--overwrite"])
    assert "Overwrite: removed checkpoint.npz, history.json" in capsys.readouterr().out
    assert history["epoch"] == [1] and (out / "notes.txt").read_text() == "mine"
    assert not (out / "model.npz").exists()
    assert train_mnist.array_text(read_checkpoint(out)["trainer.config"])["seed"] == 1


def test_threads_option_sets_minigrad_threads(train_mnist, tmp_path, capsys):
    before = minigrad.get_num_threads()
    try:
        train_mnist.main(["--limit", "100", "--epochs", "1", "--threads", "1",
                          "--out", str(tmp_path / "run")])
        assert minigrad.get_num_threads() == 1
        assert "batch 100, 1 epoch, 1 thread\n" in capsys.readouterr().out
    finally:
        minigrad.set_num_threads(before)


def test_without_full_mnist_it_says_it_falls_back(train_mnist, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "empty"))
    train_mnist.main(["--limit", "100", "--epochs", "1", "--out", str(tmp_path / "run")])
    printed = capsys.readouterr().out
    assert "full MNIST not found: pass --data-dir or set MINIGRAD_DATA" in printed
    assert max(len(line) for line in printed.replace(str(tmp_path), "~").splitlines()) <= 100


def test_mnist_files_that_do_not_verify_stop_the_run(train_mnist, tmp_path, monkeypatch):
    import gzip

    from minigrad.data import FILES

    folder = tmp_path / "not-mnist"
    folder.mkdir()
    for name in FILES.values():  # well-formed IDX files of one zero image, one zero label
        shape = (1, 28, 28) if "images" in name else (1,)
        header = bytes([0, 0, 8, len(shape)]) + np.asarray(shape, ">u4").tobytes()
        (folder / name).write_bytes(gzip.compress(header + bytes(int(np.prod(shape)))))
    monkeypatch.setenv("MINIGRAD_DATA", str(folder))
    with pytest.raises(SystemExit, match=f"Data: load_mnist: {folder}.* is not the published"):
        train_mnist.main(["--epochs", "1", "--out", str(tmp_path / "run")])


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"full MNIST is not at {MNIST_DIR}")
def test_uses_full_mnist_when_found(train_mnist, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(MNIST_DIR))
    train_mnist.main(["--limit", "100", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert f"Data: full MNIST from {MNIST_DIR}: 100 training" in capsys.readouterr().out


def test_resume_without_a_checkpoint(train_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    history = train_mnist.main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    assert history["epoch"] == [1]
    assert "no checkpoint in" in capsys.readouterr().out
    (out / "checkpoint.npz").unlink()
    with pytest.raises(SystemExit, match="holds no checkpoint.npz to resume from"):
        train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume"])


@pytest.fixture(scope="module")
def one_epoch_run(train_mnist, tmp_path_factory) -> Path:
    """The output folder of one tiny epoch, for tests to copy."""
    out = tmp_path_factory.mktemp("one-epoch") / "run"
    train_mnist.main([*TINY, "--epochs", "1", "--out", str(out)])
    return out


def damaged(flat: dict, how: str, train_mnist) -> dict | bytes:
    flat = dict(flat)
    if how == "garbage":
        return b"PK\x03\x04 not really a zip"
    if how == "no optimizer state":
        return {k: v for k, v in flat.items() if not k.startswith("optimizer.")}
    if how == "no history":
        del flat["trainer.history"]
    elif how == "history not JSON":
        flat["trainer.history"] = np.frombuffer(b"{garbage", np.uint8)
    elif how == "history too short":
        flat["trainer.history"] = train_mnist.text_array({"epoch": []})
    elif how == "weights of another shape":
        flat["model.conv1.weight"] = np.zeros(3, np.float32)
    elif how == "best epoch beyond the epoch":
        history = train_mnist.array_text(flat["trainer.history"])
        flat["trainer.history"] = train_mnist.text_array(
            {**history, "best": {"epoch": 2, "test_acc": 0.5}})
    elif how == "no schedule state":
        flat = {k: v for k, v in flat.items() if not k.startswith("schedule.")}
    elif how == "unknown schedule":
        config = train_mnist.array_text(flat["trainer.config"])
        flat["trainer.config"] = train_mnist.text_array({**config, "schedule": "linear"})
    return flat


@pytest.mark.parametrize("how", ["garbage", "no optimizer state", "no history",
                                 "history not JSON", "history too short",
                                 "weights of another shape", "best epoch beyond the epoch",
                                 "no schedule state", "unknown schedule"])
def test_resume_from_a_damaged_checkpoint_says_so_in_one_line(train_mnist, tmp_path, how,
                                                               one_epoch_run):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    path = out / "checkpoint.npz"
    broken = damaged(read_checkpoint(out), how, train_mnist)
    if isinstance(broken, bytes):
        path.write_bytes(broken)
    else:
        minigrad.save(broken, path)
    (out / "history.json").write_text("{not json")  # not read by --resume: the checkpoint is
    with pytest.raises(SystemExit) as info:
        train_mnist.main([*TINY, "--epochs", "2", "--out", str(out), "--resume"])
    message = str(info.value)
    assert message.startswith(f"Resume: {path} is not a usable checkpoint (")
    assert "\n" not in message
