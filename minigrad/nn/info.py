"""``summary(model, input_shape)``: every layer's output shape and parameter count, as
torchinfo prints them, found by running one forward pass with forward hooks.

>>> from minigrad import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
>>> info = summary(net, (1, 1, 28, 28), verbose=False)
>>> [(row.name, row.output_shape, row.num_params) for row in info.rows]
[('', (1, 10), 0), ('0', (1, 4, 26, 26), 40), ('1', (1, 4, 26, 26), 0),
 ('2', (1, 2704), 0), ('3', (1, 10), 27050)]
>>> info.total_params == net.num_parameters() == 27090
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minigrad.nn.module import Module
from minigrad.tensor import Tensor, no_grad

__all__ = ["summary", "ModelSummary", "LayerRow"]


class LayerRow(NamedTuple):
    """One call of one module during the summary's forward pass."""

    name: str               # dotted path from the model ("" for the model itself)
    type: str               # the module's class name
    depth: int              # 0 for the model, 1 for its children, ...
    output_shape: Any       # a shape, or a list of shapes for several outputs
    num_params: int         # the module's own parameters (not its sub-modules')
    trainable: bool         # all of the module's own parameters require grad


def _shape_of(output: Any) -> Any:
    if isinstance(output, (Tensor, np.ndarray)):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return [_shape_of(o) for o in output]
    if isinstance(output, dict):
        return {k: _shape_of(v) for k, v in output.items()}
    return type(output).__name__


class ModelSummary:
    """The result of :func:`summary`: ``rows`` (one :class:`LayerRow` per module call, in
    call order, each parent before its children) and the totals, counted once per parameter:
    ``total_params``, ``trainable_params``, ``non_trainable_params``, ``total_buffers`` (the
    number of elements of every buffer); ``str()`` is the table."""

    def __init__(self, model: Module, rows: list[LayerRow], input_shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.model_name = type(model).__name__
        self.rows = rows
        self.input_shape = input_shape
        self.dtype = dtype
        params = list(model.parameters())
        self.total_params = sum(p.size for p in params)
        self.trainable_params = sum(p.size for p in params if p.requires_grad)
        self.non_trainable_params = self.total_params - self.trainable_params
        self.total_buffers = sum(b.size for b in model.buffers())
        self.param_bytes = sum(p.data.nbytes for p in params)
        self.buffer_bytes = sum(b.nbytes for b in model.buffers())

    def __str__(self) -> str:
        heads = ("Layer (type)", "Output Shape", "Param #")
        body = []
        for row in self.rows:
            label = "  " * row.depth + (f"{row.name} ({row.type})" if row.name else row.type)
            count = f"{row.num_params:,}" if row.num_params else "--"
            if row.num_params and not row.trainable:
                count = f"({count})"   # frozen, as torchinfo marks them
            body.append((label, str(row.output_shape), count))
        widths = [max(len(r[i]) for r in [heads, *body]) for i in range(3)]

        def line(cells: tuple[str, str, str]) -> str:
            return (f"{cells[0]:<{widths[0]}}   {cells[1]:<{widths[1]}}   "
                    f"{cells[2]:>{widths[2]}}").rstrip()

        rule = "=" * len(line(heads))
        mb = (self.param_bytes + self.buffer_bytes) / 1e6
        lines = [rule, line(heads), rule, *(line(r) for r in body), rule,
                 f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Non-trainable params: {self.non_trainable_params:,}",
                 f"Buffers (elements): {self.total_buffers:,}",
                 f"Input shape: {self.input_shape} {self.dtype}; "
                 f"parameters and buffers: {mb:.2f} MB",
                 rule]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def summary(model: Module, input_shape: tuple[int, ...], dtype: Any = np.float32, *,
            verbose: bool = True, rng: np.random.Generator | int | None = 0) -> ModelSummary:
    """Run one forward pass of ``model`` on a random input and tabulate every layer.

    The pass runs in eval mode (dropout off; batch statistics are not updated) without
    recording a graph, with a forward pre-hook and a forward hook on every module; the mode
    is restored and the hooks are removed afterwards, even if the forward pass fails.

    Args:
        model: the network.
        input_shape: the input's shape, batch axis included, e.g. (1, 1, 28, 28).
        dtype: the input's dtype.
        verbose: print the table.
        rng: the generator (or seed) of the standard-normal input.

    Returns:
        A :class:`ModelSummary` (its ``str()`` is the printed table).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a Module, got {type(model).__name__}")
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                       for n in input_shape)):
        raise ValueError(f"summary: input_shape must be a tuple of positive sizes with the "
                         f"batch axis first, got {input_shape!r}")
    input_shape = tuple(int(n) for n in input_shape)
    dtype = np.dtype(dtype)
    names = {id(m): name for name, m in model.named_modules()}
    depth_of = {id(m): (name.count(".") + 1 if name else 0) for name, m in model.named_modules()}
    rows: list[LayerRow | None] = []
    open_calls: list[int] = []   # indices into rows of the calls still running

    def enter(module: Module, inputs: tuple) -> None:
        own = [p for p in module._parameters.values() if p is not None]
        rows.append(LayerRow(names.get(id(module), module.name), type(module).__name__,
                             depth_of.get(id(module), 0), None, sum(p.size for p in own),
                             all(p.requires_grad for p in own)))
        open_calls.append(len(rows) - 1)

    def leave(module: Module, inputs: tuple, output: Any) -> None:
        i = open_calls.pop()
        rows[i] = rows[i]._replace(output_shape=_shape_of(output))

    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    x = Tensor(generator.standard_normal(input_shape).astype(dtype))
    handles = []
    was_training = model.training
    modes = {id(m): m.training for m in model.modules()}
    try:
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(enter))
            handles.append(m.register_forward_hook(leave))
        model.eval()
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            object.__setattr__(m, "training", modes.get(id(m), was_training))
    result = ModelSummary(model, [r for r in rows if r is not None], input_shape, dtype)
    if verbose:
        print(result)
    return result
