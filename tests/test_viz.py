"""Tests of minigrad.viz: learning curves and graph drawing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from minigrad import viz


# ---------------------------------------------------------------------------- plot_history
def test_plot_history_axes_and_curves():
    history = {"train_loss": [2.3, 1.2, 0.7, 0.5], "test_loss": [2.1, 1.4, 0.9, 0.8],
               "train_acc": [0.3, 0.6, 0.8, 0.9], "test_acc": [0.2, 0.5, 0.7, 0.85],
               "epoch": [1, 2, 3, 4]}
    fig = viz.plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["test_loss", "train_loss"]
    assert sorted(line.get_label() for line in acc_ax.get_lines()) == ["test_acc", "train_acc"]
    line = next(line for line in acc_ax.get_lines() if line.get_label() == "test_acc")
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(line.get_ydata(), [0.2, 0.5, 0.7, 0.85])
    assert loss_ax.get_xlabel() == "epoch"


def test_plot_history_per_step_loss_with_per_epoch_accuracy():
    history = {"train_loss": list(np.linspace(2, 0.1, 12)), "step": list(range(0, 120, 10)),
               "test_acc": [0.5, 0.7, 0.9], "epoch": [1, 2, 3]}
    fig = viz.plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "step" and acc_ax.get_xlabel() == "epoch"
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), range(0, 120, 10))


def test_plot_history_missing_keys_give_one_axis():
    fig = viz.plot_history({"loss": [1.0, 0.5]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]
    fig = viz.plot_history({"test_accuracy": [0.1, 0.5, 0.7], "lr": [0.1, 0.1, 0.01]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])


@pytest.mark.parametrize("history, message", [
    ({}, "nothing to draw"),
    ({"epoch": [1, 2], "lr": [0.1, 0.1]}, "nothing to draw"),
    ({"train_loss": []}, "'train_loss'] is empty"),
    ({"train_loss": [1.0, 0.5, 0.2], "epoch": [1, 2]}, "matches no x key"),
    ({"train_loss": [1.0, 0.5, 0.2], "test_loss": [1.0, 0.4]}, "different lengths"),
    ({"train_loss": [[1.0, 0.5]]}, "flat list"),
    ({"train_loss": ["a", "b"]}, "list of numbers"),
])
def test_plot_history_errors(history, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_history(history)


def test_plot_history_does_not_touch_pyplot():
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    before = plt.get_fignums()
    viz.plot_history({"loss": [1.0, 0.5]})
    assert plt.get_fignums() == before
    assert matplotlib.get_backend() == backend


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_history_saves_atomically(tmp_path, suffix, magic):
    path = tmp_path / "sub" / f"curves{suffix}"
    viz.plot_history({"train_loss": [1.0, 0.5], "test_acc": [0.5, 0.9]}, path=path)
    assert path.read_bytes().startswith(magic)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_plot_history_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "curves.notaformat"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError):
        viz.plot_history({"loss": [1.0, 0.5]}, path=path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == [path.name]
