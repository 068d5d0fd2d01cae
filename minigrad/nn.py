"""Layers with parameters, composed into networks: ``Parameter``, ``Module`` and the usual layers.

A :class:`Module` holds :class:`Parameter` tensors and other modules as attributes; assigning
one registers it under the attribute's name, so ``model.parameters()`` finds every weight and
``model.state_dict()`` names them with dotted paths (``conv1.weight``, ``layers.0.bias``). Every
module's ``name`` is its own dotted path from the root module and every parameter's ``name`` is
its dotted name: drawn graphs label weights and group ops by module with them.

>>> import minigrad
>>> from minigrad import nn
>>> nn.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> [(name, p.shape) for name, p in net.named_parameters()]
[('0.weight', (4, 3)), ('0.bias', (3,)), ('2.weight', (3, 2)), ('2.bias', (2,))]
>>> net(minigrad.Tensor(np.ones((5, 4), np.float32))).shape
(5, 2)

Initialisation: weights are drawn from a normal distribution with standard deviation
``sqrt(2 / fan_in)`` (He et al., suited to ReLU networks), where ``fan_in`` is the number of
inputs of one output unit (``in_features`` for ``Linear``, ``C·FH·FW`` for ``Conv2d``). Pass
``init="xavier"`` for ``sqrt(1 / fan_in)`` (the textbook's Xavier, suited to sigmoid and tanh
networks) or a number for a fixed standard deviation (the textbook's ``weight_init_std=0.01``).
Biases start at zero. The draws come from a ``np.random.Generator``: pass ``rng=`` to a layer,
or call :func:`manual_seed` to reseed the generators that layers and dropout use by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from minigrad import functional as F
from minigrad.function import _module_scope
from minigrad.tensor import Tensor, _as_number_array

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "StateDictError", "IncompatibleKeys",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Sigmoid", "Tanh", "Flatten",
    "Dropout", "manual_seed", "default_rng", "init_std",
]

# ----------------------------------------------------------------------------------------------
# Random initialisation

_rng = np.random.default_rng()


def manual_seed(seed: int | None) -> None:
    """Reseed the random draws of nn: initial weights (for layers given no ``rng=``) and
    dropout masks (for dropout given no ``rng=``, as ``minigrad.functional.manual_seed`` does).

    The two get independent streams spawned from one ``np.random.SeedSequence(seed)``.

    Args:
        seed: an int, or None for fresh entropy.

    >>> manual_seed(1); a = Linear(2, 2).weight.data
    >>> manual_seed(1); b = Linear(2, 2).weight.data
    >>> bool((a == b).all())
    True
    """
    global _rng
    init_seed, dropout_seed = np.random.SeedSequence(seed).spawn(2)
    _rng = np.random.default_rng(init_seed)
    F.manual_seed(dropout_seed)


def default_rng() -> np.random.Generator:
    """The generator layers use when they are given no ``rng=`` (reseeded by ``manual_seed``)."""
    return _rng


def init_std(init: str | float, fan_in: int) -> float:
    """Standard deviation of the initial weights for an ``init`` choice and a fan-in.

    Args:
        init: ``"he"`` (sqrt(2 / fan_in)), ``"xavier"`` (sqrt(1 / fan_in)) or a positive number
            used as it is.
        fan_in: inputs per output unit.

    Returns:
        The standard deviation.

    >>> init_std("he", 50), init_std("xavier", 100), init_std(0.01, 100)
    (0.2, 0.1, 0.01)
    """
    if isinstance(init, str):
        key = init.lower()
        if key == "he":
            return float(np.sqrt(2.0 / fan_in))
        if key == "xavier":
            return float(np.sqrt(1.0 / fan_in))
        raise ValueError(f"init: expected 'he', 'xavier' or a positive number, got {init!r}")
    if isinstance(init, bool) or not isinstance(init, (int, float, np.floating, np.integer)):
        raise TypeError(f"init: expected 'he', 'xavier' or a positive number, "
                        f"got {type(init).__name__}")
    if not init > 0:
        raise ValueError(f"init: a standard deviation must be positive, got {init}")
    return float(init)


def _normal(shape: tuple[int, ...], std: float, rng: np.random.Generator | None,
            dtype: Any) -> np.ndarray:
    rng = _rng if rng is None else rng
    return (rng.standard_normal(shape) * std).astype(dtype)


# ----------------------------------------------------------------------------------------------
# Parameter and Module


class Parameter(Tensor):
    """A tensor that a module learns: it requires grad, and a module that holds it finds it.

    Args:
        data: the initial value (copied into a new array).
        name: its display name; set to the dotted name when assigned to a module.
        dtype: float32 unless given (gradient checks use ``np.float64``).

    >>> w = Parameter(np.zeros((2, 3)))
    >>> w.requires_grad, w.dtype, w.shape
    (True, dtype('float32'), (2, 3))
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None, dtype: Any = np.float32) -> None:
        value = data.data if isinstance(data, Tensor) else data
        array = _as_number_array("Parameter", value).astype(dtype, copy=True)
        super().__init__(array, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__().removeprefix("Tensor")


class StateDictError(KeyError):
    """The names in a state dict do not match the model's (a KeyError that prints its message
    as written, over several lines)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class Module:
    """Base class of layers and networks: subclass it, build the parts in ``__init__``, write
    ``forward``.

    Parameters and sub-modules assigned as attributes are registered (also inside a
    :class:`ModuleList` or :class:`Sequential`); call ``super().__init__()`` first. Calling the
    module runs ``forward`` and records the module on every op it performs (``fn.scope``), so a
    drawn graph can group the ops by module.

    Attributes:
        training: True in training mode (dropout active); set by ``train()`` and ``eval()``.
        name: the dotted path from the root module ("" for a root), kept up to date when the
            module is assigned into another.

    >>> class TwoLayer(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = Linear(3, 4)
    ...         self.fc2 = Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc2(F.relu(self.fc1(x)))
    >>> net = TwoLayer()
    >>> net.fc2.name, net.fc2.weight.name
    ('fc2', 'fc2.weight')
    >>> sorted(net.state_dict())
    ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "name", "")

    # ------------------------------------------------------------ registration
    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, (Parameter, Module)) and "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: cannot assign {type(value).__name__} '{key}' before "
                f"Module.__init__() has run; call super().__init__() first in "
                f"{type(self).__name__}.__init__")
        registries = self.__dict__.get("_parameters"), self.__dict__.get("_modules")
        for registry in registries:
            if registry is not None:
                registry.pop(key, None)
        if isinstance(value, Parameter):
            self._parameters[key] = value
            value.name = _join(self.name, key)
        elif isinstance(value, Module):
            self._modules[key] = value
            value._set_name(_join(self.name, key))
        elif (isinstance(value, (list, tuple)) and value
              and any(isinstance(v, (Module, Parameter)) for v in value)):
            raise TypeError(
                f"{type(self).__name__}: '{key}' is a {type(value).__name__} of modules or "
                f"parameters, which would not be registered; use nn.ModuleList(...) or "
                f"nn.Sequential(...) for modules")
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        self._parameters.pop(key, None)
        self._modules.pop(key, None)
        object.__delattr__(self, key)

    def _set_name(self, name: str) -> None:
        """Rename this module and everything under it (it was assigned into a parent)."""
        object.__setattr__(self, "name", name)
        for key, p in self._parameters.items():
            p.name = _join(name, key)
        for key, m in self._modules.items():
            m._set_name(_join(name, key))

    # ------------------------------------------------------------ running
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _module_scope.append(self)
        try:
            return self.forward(*args, **kwargs)
        finally:
            _module_scope.pop()

    # ------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their attribute names."""
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module under it, depth first, each once, with dotted names."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(_join(name, key), m) for key, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (``conv1.weight``), in registration order.

        A parameter shared by several modules is given once, under its first name, unless
        ``remove_duplicate`` is False.
        """
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for key, p in module._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield _join(module_name, key), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter once, in registration order (give them to an optimiser)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def num_parameters(self) -> int:
        """The number of learnable numbers.

        >>> Linear(784, 10).num_parameters()
        7850
        """
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------ state
    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode here and in every sub-module."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout passes its input through unchanged."""
        return self.train(False)

    def to(self, dtype: Any) -> Module:
        """Convert every parameter to ``dtype`` (``np.float64`` for gradient checks).

        Gradients are dropped. Do it before creating the optimiser, whose running state has
        the dtype the parameters had then.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.to: parameters must be floating point, "
                            f"got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's values, by dotted name.

        >>> sd = Linear(3, 2).state_dict()
        >>> {k: v.shape for k, v in sd.items()}
        {'weight': (3, 2), 'bias': (2,)}
        """
        return {name: p.data.copy()
                for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters, by dotted name, casting to each parameter's dtype.

        Args:
            state: name to array, as ``state_dict()`` or ``minigrad.io.load`` give.
            strict: raise when a parameter has no entry or an entry names no parameter.

        Returns:
            ``(missing_keys, unexpected_keys)``; both empty when ``strict``.

        Raises:
            StateDictError: (a KeyError) ``strict`` and some names do not match; the message
                lists each missing and unexpected name with its shape.
            ValueError: an entry's shape differs from its parameter's (both are named).
        """
        params = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        where = type(self).__name__
        if strict and (missing or unexpected):
            lines = [f"{where}.load_state_dict: the state dict does not match the model"]
            lines += [f"  missing key '{k}' (parameter shape {_shape_str(params[k].shape)})"
                      for k in missing]
            lines += [f"  unexpected key '{k}' (shape {_shape_str(np.shape(state[k]))})"
                      for k in unexpected]
            raise StateDictError("\n".join(lines))
        values = {}
        for key, p in params.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            if value.shape != p.shape:
                raise ValueError(
                    f"{where}.load_state_dict: '{key}' has shape {_shape_str(p.shape)} in the "
                    f"model but {_shape_str(value.shape)} in the state dict")
            values[key] = value
        for key, value in values.items():  # only once every entry has been checked
            params[key].data[...] = value.astype(params[key].dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ display
    def extra_repr(self) -> str:
        """The settings shown between the parentheses of ``repr``."""
        return ""

    def __repr__(self) -> str:
        own = "  ".join(f"{key} {_shape_str(p.shape)}" + ("" if p.dtype == np.float32
                                                          else f" {p.dtype}")
                        for key, p in self._parameters.items() if p is not None)
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")" + (f"  [{own}]" if own else "")
        lines = [head]
        for key, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({key}): {child}")
        if own:
            lines.append(f"  [{own}]")
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered under their indices (``layers.0.weight``).

    >>> layers = ModuleList([Linear(2, 2) for _ in range(3)])
    >>> len(layers), layers[1].name, [name for name, _ in layers.named_parameters()][:2]
    (3, '1', ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def _check(self, module: Any) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: items must be Modules, "
                            f"got {type(module).__name__}")
        return module

    @classmethod
    def _view(cls, named: list[tuple[str, Module]]) -> ModuleList:
        """A container of some of these modules that leaves their names as they are (a slice
        must not rename the layers of the network it was cut from)."""
        view = cls.__new__(cls)
        Module.__init__(view)
        for key, m in named:
            view._modules[key] = m
            object.__setattr__(view, key, m)
        return view

    def _reindex(self, items: list[Module]) -> None:
        for key in list(self._modules):
            object.__delattr__(self, key)
        self._modules.clear()
        for i, m in enumerate(items):
            setattr(self, str(i), m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), self._check(module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, self._check(module))
        self._reindex(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList._view([(str(i), m) for i, m in enumerate(items[index])])
        try:
            return items[index]
        except IndexError:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for "
                             f"{len(items)} modules") from None

    def __setitem__(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items[index] = self._check(module)
        self._reindex(items)

    def __delitem__(self, index: int | slice) -> None:
        items = list(self._modules.values())
        del items[index]
        self._reindex(items)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ModuleList has no forward: iterate over it in the parent's forward "
            "(or use nn.Sequential to chain the modules)")


class Sequential(ModuleList):
    """Modules applied one after the other; indexable, iterable, with a length.

    Pass the modules, named ``0``, ``1``, ... in order, or one dict of name to module.

    >>> manual_seed(0)
    >>> net = Sequential({"fc": Linear(4, 2), "act": Sigmoid()})
    >>> net
    Sequential(
      (fc): Linear(in_features=4, out_features=2, bias=True)  [weight (4, 2)  bias (2,)]
      (act): Sigmoid()
    )
    >>> net(Tensor(np.zeros((3, 4), np.float32))).data
    array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], dtype=float32)
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            Module.__init__(self)
            for key, m in modules[0].items():
                setattr(self, str(key), self._check(m))
        else:
            super().__init__(modules)

    def __getitem__(self, index: int | slice | str) -> Any:
        if isinstance(index, str):
            return self._modules[index]
        if isinstance(index, slice):
            return Sequential._view(list(self._modules.items())[index])
        return super().__getitem__(index)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


# ----------------------------------------------------------------------------------------------
# Layers


def _pair(value: Any, what: str, layer: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ minimum, as a pair."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise TypeError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {what} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _count(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {what} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value}")
    return int(value)


def _show(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else str(pair)


class Linear(Module):
    """Affine layer: y = x·W + b with W of shape (in_features, out_features), as the textbook.

    Inputs of shape (N, ...) are flattened to (N, in_features) first, so a Linear layer may
    follow a convolution or pooling layer directly.

    Args:
        in_features, out_features: D and M in x:(N, D), W:(D, M), b:(M,).
        bias: learn b (otherwise y = x·W).
        init: ``"he"`` (default), ``"xavier"`` or a standard deviation (see the module doc).
        rng: the generator for the initial weights (default: the one ``manual_seed`` sets).
        dtype: of the parameters.

    >>> layer = Linear(784, 100)
    >>> layer.weight.shape, layer.bias.shape, float(layer.bias.data.max())
    ((784, 100), (100,), 0.0)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 init: str | float = "he", rng: np.random.Generator | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_features = _count(in_features, "in_features", "Linear")
        self.out_features = _count(out_features, "out_features", "Linear")
        std = init_std(init, self.in_features)
        self.weight = Parameter(_normal((self.in_features, self.out_features), std, rng, dtype),
                                dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_features), dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        features = int(np.prod(shape[1:])) if len(shape) >= 2 else None
        if features != self.in_features:
            got = (f"input has {features} features" if features is not None
                   else f"input has {len(shape)} dimension(s), expected (N, ...)")
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): {got}, "
                             f"expected {self.in_features}; x.shape={shape}")
        return F.affine(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution (cross-correlation, as the textbook and PyTorch compute it).

    x:(N, C, H, W) → y:(N, FN, OH, OW), with weight (FN, C, FH, FW), bias (FN,),
    OH = (H + 2·PH − FH) // SH + 1 and likewise OW.

    Args:
        in_channels, out_channels: C and FN.
        kernel_size: FH = FW, or (FH, FW).
        stride, padding: an int or a pair (rows, columns).
        bias: learn a bias per output channel.
        init, rng, dtype: as for :class:`Linear`; fan_in = C·FH·FW.

    >>> conv = Conv2d(1, 30, kernel_size=5)
    >>> conv
    Conv2d(1, 30, kernel_size=5, stride=1, padding=0)  [weight (30, 1, 5, 5)  bias (30,)]
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, *, init: str | float = "he",
                 rng: np.random.Generator | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_channels = _count(in_channels, "in_channels", "Conv2d")
        self.out_channels = _count(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        FH, FW = self.kernel_size
        std = init_std(init, self.in_channels * FH * FW)
        shape = (self.out_channels, self.in_channels, FH, FW)
        self.weight = Parameter(_normal(shape, std, rng, dtype), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_channels), dtype=dtype) if bias else None

    def _short(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)})")

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"{self._short()}: expected input (N, C, H, W), got "
                             f"{len(shape)} dimension(s); x.shape={shape}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{self._short()}: input has {shape[1]} channels, expected "
                             f"{self.in_channels}; x.shape={shape}")
        (FH, FW), (PH, PW) = self.kernel_size, self.padding
        if shape[2] + 2 * PH < FH or shape[3] + 2 * PW < FW:
            raise ValueError(f"{self._short()}: the padded input ({shape[2] + 2 * PH}, "
                             f"{shape[3] + 2 * PW}) is smaller than the kernel ({FH}, {FW}); "
                             f"x.shape={shape}, padding={_show(self.padding)}")
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}, "
                f"padding={_show(self.padding)}")
        return text if self.bias is not None else text + ", bias=False"


class _Pool2d(Module):
    _function = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", layer, 1)
        self.padding = _pair(padding, "padding", layer, 0)

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"{type(self).__name__}(kernel_size={_show(self.kernel_size)}): "
                             f"expected input (N, C, H, W), got {len(shape)} dimension(s); "
                             f"x.shape={shape}")
        return type(self)._function(x, self.kernel_size, stride=self.stride,
                                    padding=self.padding)

    def extra_repr(self) -> str:
        text = f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}"
        return text + (f", padding={_show(self.padding)}" if any(self.padding) else "")


class MaxPool2d(_Pool2d):
    """Max pooling over KH×KW windows (stride defaults to the kernel size).

    >>> MaxPool2d(2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data[0, 0]
    array([[ 5.,  7.], [13., 15.]])
    """

    _function = staticmethod(F.max_pool2d)


class AvgPool2d(_Pool2d):
    """Average pooling over KH×KW windows (stride defaults to the kernel size).

    >>> AvgPool2d(2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data[0, 0]
    array([[ 2.5,  4.5], [10.5, 12.5]])
    """

    _function = staticmethod(F.avg_pool2d)


class ReLU(Module):
    """y = max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Sigmoid(Module):
    """y = 1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """y = tanh x, elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Flatten(Module):
    """(N, ...) → (N, everything else), e.g. between the conv layers and the affine layers."""

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x)


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the rest by
    1 / (1 − p) (inverted dropout: nothing to rescale at test time); in eval mode, y = x.

    Args:
        p: the drop probability, in [0, 1).
        rng: the generator for the masks (default: the one ``manual_seed`` sets).

    >>> drop = Dropout(0.5).eval()
    >>> drop(Tensor([1.0, 2.0])).data
    array([1., 2.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, p=self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
