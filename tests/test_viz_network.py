"""Tests of minigrad.viz.network and minigrad.viz.activations: filters, feature maps, the
misclassified images, and the activation recorder with its histograms."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

import minigrad
from minigrad import models, nn, viz


def image_axes(figure):
    """The axes that show an image."""
    return [ax for ax in figure.axes if ax.images]


@pytest.fixture
def cnn():
    nn.manual_seed(0)
    return models.SimpleConvNet(input_dim=(1, 10, 10), filter_num=6, filter_size=3,
                                hidden_size=8, output_size=4)


# ---------------------------------------------------------------------------- show_filters
@pytest.mark.parametrize("FN, ncols, rows", [(30, 8, 4), (5, 8, 1), (6, 3, 2)])
def test_show_filters_one_axes_per_filter(FN, ncols, rows):
    w = np.random.default_rng(0).normal(size=(FN, 1, 5, 5))
    fig = viz.show_filters(w, ncols=ncols)
    assert len(fig.axes) == len(image_axes(fig)) == FN
    grid_rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes}
    assert len(grid_rows) == rows


def test_show_filters_normalises_each_filter_on_its_own():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 1, 4, 4))
    w[1] *= 1e-4            # a tiny filter still spans the whole scale
    w[2] = 7.0              # a constant one is mid-grey
    fig = viz.show_filters(w)
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes]
    for k in (0, 1):
        assert shown[k].min() == 0.0 and shown[k].max() == 1.0
        np.testing.assert_allclose(shown[k], (w[k, 0] - w[k, 0].min()) / np.ptp(w[k, 0]))
    np.testing.assert_array_equal(shown[2], 0.5)


def test_show_filters_of_a_module_with_channels():
    conv = nn.Conv2d(3, 4, 3)
    fig = viz.show_filters(conv)                     # a row of 3 channels per filter
    assert len(fig.axes) == 12
    assert len(viz.show_filters(conv.weight, channel=2).axes) == 4
    with pytest.raises(ValueError, match=r"channel 3 is out of range .*\(4, 3, 3, 3\)"):
        viz.show_filters(conv.weight, channel=3)
    with pytest.raises(ValueError, match=r"show_filters: expected .*\(FN, C, FH, FW\), got "
                                         r"shape \(4, 9\)"):
        viz.show_filters(np.zeros((4, 9)))


def test_show_filters_saves_and_leaves_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    before, backend = plt.get_fignums(), matplotlib.get_backend()
    path = tmp_path / "img" / "filters.png"
    viz.show_filters(np.ones((2, 1, 3, 3)), path=path, title="filters")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert os.listdir(path.parent) == ["filters.png"]
    assert plt.get_fignums() == before and matplotlib.get_backend() == backend


# ---------------------------------------------------------------------------- misclassified
class Fixed(nn.Module):
    """Predicts the class stored in the first pixel; counts its calls and its mode."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        x = x.data if isinstance(x, minigrad.Tensor) else np.asarray(x)
        classes = x.reshape(len(x), -1)[:, 0].astype(int)
        return minigrad.Tensor(np.eye(4, dtype=np.float32)[classes])


def digits(predicted, seed=0):
    """Images (N, 1, 6, 6) of noise whose first pixel is the class Fixed predicts."""
    x = np.random.default_rng(seed).random((len(predicted), 1, 6, 6)).astype(np.float32)
    x[:, 0, 0, 0] = predicted
    return x


def test_misclassified_picks_exactly_the_wrong_predictions():
    predicted = np.array([0, 1, 2, 3, 1, 1, 0, 2])
    t = np.array([0, 2, 2, 3, 0, 1, 3, 2])
    model = Fixed()
    wrong, pred = viz.misclassified(model, digits(predicted), t, batch_size=3)
    np.testing.assert_array_equal(wrong, np.flatnonzero(predicted != t))
    np.testing.assert_array_equal(pred, predicted[predicted != t])
    assert model.modes == [False] * 3 and model.training  # eval inside, training restored
    wrong_onehot, _ = viz.misclassified(model, digits(predicted), np.eye(4)[t])
    np.testing.assert_array_equal(wrong_onehot, wrong)


def test_plot_misclassified_draws_the_wrong_ones_with_both_labels(tmp_path):
    predicted = np.array([0, 1, 2, 3, 1, 1, 0, 2])
    t = np.array([0, 2, 2, 3, 0, 1, 3, 2])
    x = digits(predicted)
    path = tmp_path / "wrong.png"
    fig = viz.plot_misclassified(Fixed(), x, t, path=path)
    axes = image_axes(fig)
    assert len(axes) == 3
    for ax, i in zip(axes, np.flatnonzero(predicted != t)):
        np.testing.assert_array_equal(ax.images[0].get_array(), x[i, 0])
        assert [text.get_text() for text in ax.texts] == [str(t[i]), str(predicted[i])]
    assert "3 of 8 misclassified (accuracy 62.50%)" in fig.get_suptitle()
    assert path.read_bytes().startswith(b"\x89PNG")
    assert len(image_axes(viz.plot_misclassified(Fixed(), x, t, max_images=2))) == 2
    model = Fixed()
    fig = viz.plot_misclassified(model, x, t, predicted=predicted)  # the model is not run
    assert model.modes == [] and len(image_axes(fig)) == 3
    with pytest.raises(ValueError, match=r"predicted has shape \(7,\), the labels \(8,\)"):
        viz.plot_misclassified(model, x, t, predicted=predicted[:7])


def test_plot_misclassified_flat_images_and_all_correct():
    predicted = np.array([1, 2, 3])
    x = digits(predicted).reshape(3, 36)
    fig = viz.plot_misclassified(Fixed(), x, np.array([1, 0, 3]))
    assert [ax.images[0].get_array().shape for ax in image_axes(fig)] == [(6, 6)]
    fig = viz.plot_misclassified(Fixed(), x, predicted)
    assert image_axes(fig) == [] and "every image" in fig.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match=r"misclassified: need as many labels as images"):
        viz.misclassified(Fixed(), x, predicted[:2])


# ---------------------------------------------------------------------------- record_activations
def hooks_on(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_record_activations_captures_each_layer_and_removes_its_hooks(cnn):
    x = np.random.default_rng(0).random((3, 1, 10, 10), dtype=np.float32)
    with viz.record_activations(cnn) as record:
        assert hooks_on(cnn) == 2 and record.active
        first = cnn(x).data
        cnn(x[:2])
    assert record.names == ["relu1", "relu2"]
    assert record["relu1"].shape == (5, 6, 8, 8) and record["relu2"].shape == (5, 8)
    assert [a.shape[0] for a in record.activations["relu2"]] == [3, 2]
    # relu2's output is what affine2 turns into the scores
    np.testing.assert_allclose(record["relu2"][:3] @ cnn.affine2.weight.data
                               + cnn.affine2.bias.data, first, rtol=1e-5, atol=1e-6)
    assert hooks_on(cnn) == 0 and not record.active
    cnn(x)
    assert record["relu1"].shape[0] == 5  # nothing recorded after the block


def test_record_activations_by_name_or_module_and_errors(cnn):
    x = np.zeros((2, 1, 10, 10), np.float32)
    record = viz.record_activations(cnn, ["pool1", cnn.conv1])
    cnn(x)
    record.remove()
    assert record.names == ["pool1", "conv1"]
    assert record["conv1"].shape == (2, 6, 8, 8) and record["pool1"].shape == (2, 6, 4, 4)
    assert hooks_on(cnn) == 0
    assert viz.record_activations(cnn, "affine1").names == ["affine1"]  # one name
    with pytest.raises(ValueError, match=r"no module 'conv9'; its modules are \['conv1',"):
        viz.record_activations(cnn, ["conv9"])
    with pytest.raises(ValueError, match=r"Conv2d is not a module of this SimpleConvNet"):
        viz.record_activations(cnn, [nn.Conv2d(1, 1, 1)])
    with pytest.raises(KeyError, match=r"no layer 'relu1'; recorded \['pool1', 'conv1'\]"):
        record["relu1"]


def test_record_activations_removes_hooks_when_the_forward_fails(cnn):
    with pytest.raises(ValueError, match="expected images"):
        with viz.record_activations(cnn):
            cnn(np.zeros((2, 1, 9, 9), np.float32))
    assert hooks_on(cnn) == 0


def test_record_activations_gradients_of_the_outputs(cnn):
    rng = np.random.default_rng(1)
    x, t = rng.random((4, 1, 10, 10), dtype=np.float32), np.array([0, 3, 1, 1])
    with viz.record_activations(cnn, grads=True) as record:
        loss = cnn.loss(x, t)
    loss.backward()
    logits = record["relu2"] @ cnn.affine2.weight.data + cnn.affine2.bias.data
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dlogits = (p - np.eye(4)[t]) / len(t)  # softmax cross-entropy, mean over the batch
    np.testing.assert_allclose(record.grad("relu2"), dlogits @ cnn.affine2.weight.data.T,
                               rtol=1e-4, atol=1e-7)
    assert record.grad("relu1").shape == record["relu1"].shape
    with pytest.raises(ValueError, match="grads=True"):
        viz.record_activations(cnn).grad("relu1")


# ---------------------------------------------------------------------------- histograms
def test_activation_histograms_one_axes_per_layer(cnn, tmp_path):
    x = np.random.default_rng(2).random((4, 1, 10, 10), dtype=np.float32)
    with viz.record_activations(cnn, ["conv1", "relu1", "pool1"]) as record:
        cnn(x)
    path = tmp_path / "hist.png"
    fig = viz.plot_activation_histograms(record, bins=12, range=(0, 1), path=path)
    assert [ax.get_title() for ax in fig.axes] == ["conv1", "relu1", "pool1"]
    for ax, name in zip(fig.axes, record.names):
        heights = [patch.get_height() for patch in ax.patches]
        expected, _ = np.histogram(record[name], bins=12, range=(0, 1))
        np.testing.assert_array_equal(heights, expected)
    assert path.read_bytes().startswith(b"\x89PNG")
    fig = viz.plot_activation_histograms({"a": np.ones(5), "b": np.zeros(3)}, ncols=1)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="nothing recorded"):
        viz.plot_activation_histograms(viz.record_activations(cnn))


def test_activation_histograms_of_gradients(cnn):
    x = np.random.default_rng(3).random((2, 1, 10, 10), dtype=np.float32)
    with viz.record_activations(cnn, grads=True) as record:
        cnn.loss(x, np.array([1, 2])).backward()
    fig = viz.plot_activation_histograms(record, grads=True, bins=5)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "dL/d(output)"
    assert sum(p.get_height() for p in fig.axes[1].patches) == record.grad("relu2").size


# ---------------------------------------------------------------------------- feature maps
@pytest.mark.parametrize("max_channels, per_layer", [(16, 6), (4, 4)])
def test_show_feature_maps_one_block_per_layer(cnn, max_channels, per_layer):
    image = np.random.default_rng(4).random((1, 10, 10), dtype=np.float32)
    cnn.train()
    fig = viz.show_feature_maps(cnn, image, max_channels=max_channels, ncols=3)
    assert len(image_axes(fig)) == 1 + 3 * per_layer   # the input, conv1, relu1, pool1
    titles = [sub.get_suptitle() for sub in fig.subfigs]
    assert titles[1].startswith("conv1 · Conv2d: 6×8×8") and titles[3].startswith("pool1")
    assert hooks_on(cnn) == 0 and cnn.training and cnn.relu1.training
    with viz.record_activations(cnn, "pool1") as record:
        cnn.eval()(image[None])
    pool = [ax for ax in image_axes(fig)][1 + 2 * per_layer]
    np.testing.assert_array_equal(pool.images[0].get_array(), record["pool1"][0, 0])
    channel = record["pool1"][0, 0]  # each channel on its own scale
    assert pool.images[0].get_clim() == (channel.min(), channel.max())


def test_show_feature_maps_chosen_layers_and_errors(cnn, tmp_path):
    image = np.zeros((10, 10), np.float32)
    path = tmp_path / "maps.png"
    fig = viz.show_feature_maps(cnn, image, layers=["pool1"], path=path)
    assert len(image_axes(fig)) == 1 + 6 and path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"layer 'affine1' outputs shape \(1, 8\), not feature"):
        viz.show_feature_maps(cnn, image, layers=["affine1"])
    with pytest.raises(ValueError, match=r"expected one image .* got shape \(2, 1, 10, 10\)"):
        viz.show_feature_maps(cnn, np.zeros((2, 1, 10, 10)))
    assert hooks_on(cnn) == 0


# ---------------------------------------------------------------------------- the package
def test_the_package_keeps_every_name_and_adds_the_new_ones():
    import importlib

    before = {"DotNotFoundError", "GradRecord", "draw_graph", "plot_history", "plot_lr_schedule",
              "record_grads", "render_graph", "save_dot", "save_graph"}
    new = {"ActivationRecord", "misclassified", "plot_activation_histograms",
           "plot_misclassified", "record_activations", "show_feature_maps", "show_filters"}
    assert set(viz.__all__) == before | new
    for name in viz.__all__:
        home = importlib.import_module(getattr(viz, name).__module__)
        assert getattr(home, name) is getattr(viz, name)
