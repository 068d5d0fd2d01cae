"""Activations: what each layer outputs during forward passes, and their distributions.

``record_activations(model)`` puts a forward hook on layers of a model and keeps a copy of every
output they produce (and, with ``grads=True``, the gradient that reaches each output during
backward); ``plot_activation_histograms(record)`` draws one histogram per layer, the book's
figures 6-10 to 6-14 (how weight initialisation and batch normalisation shape the activations).

>>> import numpy as np
>>> from minigrad import nn
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU())
>>> with record_activations(net) as record:
...     _ = net(np.ones((5, 4), np.float32))
>>> record.names, record["1"].shape
(['1', '3'], (5, 3))
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from minigrad.viz._figures import new_figure, save_figure

__all__ = ["ActivationRecord", "plot_activation_histograms", "record_activations"]

# The layers recorded by default: the activation functions (the book's figures 6-10...6-14
# show the distribution after each one).
ACTIVATION_LAYERS = ("ReLU", "Sigmoid", "Tanh")


def _resolve(model: Any, modules: Any) -> list[tuple[str, Any]]:
    """(dotted name, module) of each module to record, in the model's order."""
    named = [(name, m) for name, m in model.named_modules()]
    if modules is None:
        chosen = [(n, m) for n, m in named if type(m).__name__ in ACTIVATION_LAYERS]
        if not chosen:  # no activation layers: every leaf module
            chosen = [(n, m) for n, m in named if n and not any(True for _ in m.children())]
        return chosen
    if isinstance(modules, (str, bytes)) or not isinstance(modules, Sequence):
        modules = [modules]
    by_name = dict(named)
    by_id = {id(m): n for n, m in reversed(named)}
    chosen = []
    for item in modules:
        if isinstance(item, str):
            if item not in by_name:
                known = [n for n in by_name if n]
                raise ValueError(f"record_activations: the model has no module {item!r}; "
                                 f"its modules are {known}")
            chosen.append((item, by_name[item]))
        elif id(item) in by_id:
            chosen.append((by_id[id(item)] or type(item).__name__, item))
        else:
            raise ValueError(f"record_activations: {type(item).__name__} is not a module of "
                             f"this {type(model).__name__}; give modules of the model or their "
                             f"dotted names")
    return chosen


class ActivationRecord:
    """The outputs of some layers of a model, recorded by forward hooks.

    Made by :func:`record_activations`; the hooks are on from creation until ``remove()`` or
    the end of the ``with`` block. Every forward pass appends a copy of each layer's output;
    ``record[name]`` joins them along the batch axis.

    Attributes:
        names: the recorded layers' dotted names, in the model's order.
        modules: name -> module.
        activations: name -> list of arrays, one per forward pass.
    """

    def __init__(self, model: Any, modules: Any = None, *, grads: bool = False) -> None:
        chosen = _resolve(model, modules)
        self.names = [name for name, _ in chosen]
        self.modules = dict(chosen)
        self.activations: dict[str, list[np.ndarray]] = {name: [] for name in self.names}
        self.record_grads = grads
        self._outputs: dict[str, list[Any]] = {name: [] for name in self.names}
        self._handles = [module.register_forward_hook(self._hook(name))
                         for name, module in chosen]

    def _hook(self, name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            from minigrad.tensor import Tensor

            data = output.data if isinstance(output, Tensor) else np.asarray(output)
            self.activations[name].append(np.array(data, copy=True))
            if self.record_grads and isinstance(output, Tensor) and output.requires_grad:
                output.retain_grad()
                self._outputs[name].append(output)
        return hook

    @property
    def active(self) -> bool:
        """Whether the hooks are still on."""
        return bool(self._handles)

    def remove(self) -> None:
        """Take the hooks off the model (the recorded arrays stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> ActivationRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def clear(self) -> None:
        """Forget what was recorded (the hooks stay on)."""
        for name in self.names:
            self.activations[name] = []
            self._outputs[name] = []

    def _check(self, name: str) -> None:
        if name not in self.activations:
            raise KeyError(f"ActivationRecord: no layer {name!r}; recorded {self.names}")

    def __getitem__(self, name: str) -> np.ndarray:
        """The outputs of layer ``name`` over all recorded forward passes, (N, ...)."""
        self._check(name)
        arrays = self.activations[name]
        if not arrays:
            raise ValueError(f"ActivationRecord: layer {name!r} has not run since recording "
                             f"began")
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, outputs) of each layer that ran."""
        for name in self.names:
            if self.activations[name]:
                yield name, self[name]

    def grad(self, name: str) -> np.ndarray:
        """dL/d(output) of layer ``name``, joined over the recorded passes that had a backward.

        Needs ``record_activations(..., grads=True)`` and a ``backward()`` after the forward.
        """
        self._check(name)
        if not self.record_grads:
            raise ValueError("ActivationRecord.grad: record with record_activations(..., "
                             "grads=True) to keep the gradients of the outputs")
        grads = [t.grad for t in self._outputs[name] if t.grad is not None]
        if not grads:
            raise ValueError(f"ActivationRecord.grad: no gradient reached layer {name!r}; "
                             f"run backward() on a loss computed while recording (outside "
                             f"no_grad)")
        return grads[0] if len(grads) == 1 else np.concatenate(grads)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: {self[n].shape}" if self.activations[n] else f"{n}: -"
                           for n in self.names)
        return f"ActivationRecord({shapes}{'' if self.active else '; hooks removed'})"


def record_activations(model: Any, modules: Any = None, *, grads: bool = False
                       ) -> ActivationRecord:
    """Record the outputs of layers of ``model`` during forward passes.

    Hooks go on at once and come off at the end of the ``with`` block (or on ``remove()``);
    the model is not otherwise changed.

    Args:
        model: an ``nn.Module``.
        modules: the layers to record: modules of the model or their dotted names
            (``["conv1", "relu1"]``), or one of them. By default every ``ReLU``, ``Sigmoid`` and
            ``Tanh`` module, or every leaf module when the model has none of those.
        grads: also keep dL/d(output) of each layer: each recorded output tensor (and with it
            its graph) is kept until the record is cleared; read with ``record.grad(name)``
            after ``backward()``.

    Returns:
        An :class:`ActivationRecord`, also a context manager.

    Raises:
        ValueError: a name or module that is not part of ``model``.
    """
    return ActivationRecord(model, modules, grads=grads)


def plot_activation_histograms(record: ActivationRecord | Mapping[str, Any], *, bins: int = 30,
                               range: tuple[float, float] | None = None, log: bool = False,
                               grads: bool = False, ncols: int = 5, title: str | None = None,
                               path: str | os.PathLike | None = None, dpi: int = 100) -> Any:
    """One histogram per layer of its recorded outputs (or their gradients), side by side.

    With the book's settings (``bins=30, range=(0, 1)`` after sigmoid layers) this is figure
    6-10: with weights of standard deviation 1 the activations crowd at 0 and 1 (gradients
    vanish), with 0.01 they crowd at 0.5 (every unit alike), with Xavier or He initialisation
    they spread out.

    Args:
        record: an :class:`ActivationRecord`, or a mapping of layer names to arrays.
        bins: bars per histogram.
        range: the value range of every histogram; by default each layer's own.
        log: count on a logarithmic axis (after ReLU, where the zeros dwarf the rest).
        grads: draw the recorded gradients of the outputs instead (``grads=True`` when
            recording).
        ncols: histograms per row.
        title: a title above the histograms.
        path: if given, the figure is also saved there (format from the suffix), atomically.
        dpi: resolution of a saved PNG.

    Returns:
        The ``matplotlib.figure.Figure``: one axes per layer that ran.

    Raises:
        ValueError: nothing recorded.
    """
    if isinstance(record, ActivationRecord):
        if grads:
            layers = [(n, record.grad(n)) for n in record.names
                      if any(t.grad is not None for t in record._outputs[n])]
        else:
            layers = list(record.items())
    else:
        layers = [(str(n), np.asarray(v)) for n, v in record.items()]
    if not layers:
        raise ValueError("plot_activation_histograms: nothing recorded; run a forward pass "
                         "while recording")
    count = len(layers)
    cols = min(count, max(1, ncols))
    rows = -(-count // cols)
    figure = new_figure(2.3 * cols + 0.3, 2.0 * rows + (0.4 if title else 0.1))
    what = "dL/d(output)" if grads else "activation"
    for k, (name, values) in enumerate(layers):
        ax = figure.add_subplot(rows, cols, k + 1)
        ax.hist(np.asarray(values, dtype=np.float64).ravel(), bins=bins, range=range,
                color="#4292c6", log=log)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(what, fontsize=8)
        ax.tick_params(labelsize=7)
        if k % cols:
            ax.set_yticks([])
    if title:
        figure.suptitle(title)
    save_figure(figure, path, dpi)
    return figure
