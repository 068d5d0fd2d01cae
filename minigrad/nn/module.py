"""Parameters and modules: ``Parameter``, ``Module``, ``ModuleList``, ``Sequential``.

A :class:`Module` holds :class:`Parameter` tensors and other modules as attributes; assigning
one registers it under the attribute's name, so ``model.parameters()`` finds every weight and
``model.state_dict()`` names them with dotted paths (``conv1.weight``, ``layers.0.bias``). Every
module's ``name`` is its own dotted path from the root module and every parameter's ``name`` is
its dotted name: drawn graphs label weights and group ops by module with them.

A module also holds buffers (``register_buffer``): plain arrays that are part of its state
(saved by ``state_dict``, restored by ``load_state_dict``) but are not learned, such as the
running statistics of batch normalisation. Forward hooks (``register_forward_pre_hook``,
``register_forward_hook``) see, and may replace, a module's inputs and output on every call.

The package docstring (:mod:`minigrad.nn`) shows a small network built from them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from minigrad.function import _module_scope
from minigrad.tensor import Tensor, _as_number_array

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "StateDictError", "IncompatibleKeys",
    "RemovableHandle", "ModuleDict",
]



class Parameter(Tensor):
    """A tensor that a module learns: it requires grad, and a module that holds it finds it.

    Args:
        data: the initial value (copied into a new array).
        name: its display name; set to the dotted name when assigned to a module.
        dtype: float32 unless given (gradient checks use ``np.float64``).
        requires_grad: False for a frozen parameter (see ``Module.requires_grad_``).

    >>> w = Parameter(np.zeros((2, 3)))
    >>> w.requires_grad, w.dtype, w.shape
    (True, dtype('float32'), (2, 3))
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None, dtype: Any = np.float32, *,
                 requires_grad: bool = True) -> None:
        value = data.data if isinstance(data, Tensor) else data
        array = _as_number_array("Parameter", value).astype(dtype, copy=True)
        super().__init__(array, requires_grad=requires_grad, name=name)

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


class RemovableHandle:
    """What ``register_forward_hook`` and ``register_forward_pre_hook`` return: ``remove()``
    unregisters the hook; as a context manager, the hook is removed on leaving the block.

    >>> from minigrad.nn import ReLU
    >>> relu, seen = ReLU(), []
    >>> with relu.register_forward_hook(lambda m, inputs, y: seen.append(y.shape)):
    ...     _ = relu(Tensor(np.ones((2, 3))))
    >>> _ = relu(Tensor(np.ones((4, 3))))
    >>> seen
    [(2, 3)]
    """

    _ids = itertools.count()

    def __init__(self, hooks: dict[int, Callable[..., Any]]) -> None:
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        """Unregister the hook (removing it twice does nothing)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class Module:
    """Base class of layers and networks: subclass it, build the parts in ``__init__``, write
    ``forward``.

    Parameters and sub-modules assigned as attributes are registered (also inside a
    :class:`ModuleList` or :class:`Sequential`); call ``super().__init__()`` first. Buffers
    (arrays that are state but are not learned) are registered with ``register_buffer``.
    Calling the module runs the forward pre-hooks, ``forward`` and the forward hooks, and records
    the module on every op it performs (``fn.scope``), so a drawn graph can group the ops by
    module.

    Attributes:
        training: True in training mode (dropout active); set by ``train()`` and ``eval()``.
        name: the dotted path from the root module ("" for a root), kept up to date when the
            module is assigned into another.

    >>> from minigrad import functional as F
    >>> from minigrad.nn import Linear
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
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "name", "")

    # ------------------------------------------------------------ registration
    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, (Parameter, Module)) and "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: cannot assign {type(value).__name__} '{key}' before "
                f"Module.__init__() has run; call super().__init__() first in "
                f"{type(self).__name__}.__init__")
        buffers = self.__dict__.get("_buffers")
        if (buffers is not None and key in buffers
                and not isinstance(value, (Parameter, Module))):
            # assigning to a buffer's name replaces the buffer's array
            buffers[key] = self._check_buffer(key, value)
            object.__setattr__(self, key, value)
            return
        for registry in (self.__dict__.get("_parameters"), buffers,
                         self.__dict__.get("_modules")):
            if registry is not None:
                registry.pop(key, None)
        if buffers is not None:
            self._non_persistent_buffers.discard(key)
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
        self._buffers.pop(key, None)
        self._non_persistent_buffers.discard(key)
        self._modules.pop(key, None)
        object.__delattr__(self, key)

    def _check_buffer(self, key: str, value: Any) -> np.ndarray | None:
        if value is not None and (not isinstance(value, np.ndarray) or isinstance(value, Tensor)):
            raise TypeError(
                f"{type(self).__name__}: buffer '{key}' must be a NumPy array or None, got "
                f"{type(value).__name__}" + (" (give its .data)" if isinstance(value, Tensor)
                                             else " (wrap it in np.asarray)"))
        return value

    def register_buffer(self, name: str, tensor: np.ndarray | None,
                        persistent: bool = True) -> None:
        """Add an array that is part of the module's state but is not learned.

        The buffer is an attribute (``self.<name>``, a plain ``np.ndarray``); ``state_dict``
        saves it and ``load_state_dict`` restores it when ``persistent``, ``to(dtype)``
        converts it when it is floating point, and ``parameters()`` does not list it.
        Assigning an array to the attribute later replaces the buffer: update running values
        that way (``self.running_mean = ...``), since an array that an op has read stays
        read-only while that op's graph may still run backward.

        Args:
            name: the attribute name (no dots).
            tensor: the array, or None (a buffer that is not set yet and is not saved).
            persistent: include it in ``state_dict``.

        >>> m = Module()
        >>> m.register_buffer("running_mean", np.zeros(3))
        >>> m.running_mean, list(m.state_dict()), list(m.parameters())
        (array([0., 0., 0.]), ['running_mean'], [])
        """
        where = f"{type(self).__name__}.register_buffer"
        if "_buffers" not in self.__dict__:
            raise AttributeError(f"{where}: call super().__init__() first in "
                                 f"{type(self).__name__}.__init__")
        if not isinstance(name, str):
            raise TypeError(f"{where}: the name must be a str, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{where}: the name must be non-empty and contain no '.', "
                           f"got {name!r}")
        if name in self._parameters or name in self._modules:
            kind = "parameter" if name in self._parameters else "sub-module"
            raise KeyError(f"{where}: '{name}' is already a {kind}")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"{where}: '{name}' is already an attribute")
        self._buffers[name] = self._check_buffer(name, tensor)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def _check_name(self, what: str, name: Any) -> None:
        where = f"{type(self).__name__}.{what}"
        if not isinstance(name, str):
            raise TypeError(f"{where}: the name must be a str, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{where}: the name must be non-empty and contain no '.', "
                           f"got {name!r}")
        registered = (name in self._parameters or name in self._modules
                      or name in self._buffers)
        if not registered and hasattr(self, name):
            raise KeyError(f"{where}: '{name}' is already an attribute")

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` under ``name`` (as ``setattr(self, name, module)`` does, for
        names that are made at run time).

        >>> m = Module()
        >>> m.add_module("fc0", Module())
        >>> [name for name, _ in m.named_children()]
        ['fc0']
        """
        self._check_name("add_module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: '{name}' must be a Module or "
                            f"None, got {type(module).__name__}")
        setattr(self, name, module)

    register_module = add_module

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (None: an absent parameter, e.g. no bias)."""
        self._check_name("register_parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: '{name}' must be a "
                            f"Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path ("" is this module).

        >>> from minigrad.nn import Linear, Sequential
        >>> net = Sequential(Sequential(Linear(2, 2)))
        >>> net.get_submodule("0.0")
        Linear(in_features=2, out_features=2, bias=True)  [weight (2, 2)  bias (2,)]
        """
        module: Module = self
        if target == "":
            return module
        walked = []
        for part in target.split("."):
            child = module._modules.get(part)
            if child is None:
                here = ".".join(walked) or type(self).__name__
                raise AttributeError(f"{type(self).__name__}.get_submodule: {here} has no "
                                     f"sub-module '{part}' (looking for '{target}'); it has "
                                     f"{list(module._modules) or 'none'}")
            walked.append(part)
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted path (``"encoder.0.weight"``)."""
        return self._get_entry(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> np.ndarray:
        """The buffer at a dotted path (``"bn.running_mean"``)."""
        return self._get_entry(target, "_buffers", "buffer")

    def _get_entry(self, target: str, table: str, kind: str) -> Any:
        """The entry of the submodule's ``table`` (``_parameters``, ``_buffers``) at ``target``."""
        path, _, name = target.rpartition(".")
        entries = getattr(self.get_submodule(path), table)
        entry = entries.get(name)
        if entry is None:
            raise AttributeError(f"{type(self).__name__}.get_{kind}: '{path or 'the model'}' "
                                 f"has no {kind} '{name}'; it has "
                                 f"{[k for k, v in entries.items() if v is not None]}")
        return entry

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
        # The hook tables are looked at, not copied, when they are empty: most modules have
        # no hooks, and this call runs once per layer per forward pass.
        hooks = self.__dict__.get("_forward_pre_hooks")
        scope = _module_scope.stack   # this thread's list of running modules
        scope.append(self)
        try:
            if hooks:
                for hook in list(hooks.values()):
                    result = hook(self, args)
                    if result is not None:
                        args = result if isinstance(result, tuple) else (result,)
            output = self.forward(*args, **kwargs)
            hooks = self.__dict__.get("_forward_hooks")
            if hooks:
                for hook in list(hooks.values()):
                    result = hook(self, args, output)
                    if result is not None:
                        output = result
            return output
        finally:
            scope.pop()

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before every ``forward``.

        ``inputs`` is the tuple of positional arguments. The hook returns None to leave them
        as they are, or replacements: a tuple, or a single value (made a 1-tuple). Hooks run in
        the order they were registered.

        Returns:
            A handle whose ``remove()`` unregisters the hook (also a context manager).

        >>> from minigrad.nn import ReLU
        >>> relu = ReLU()
        >>> handle = relu.register_forward_pre_hook(lambda m, inputs: -inputs[0])
        >>> relu(Tensor([1.0, -2.0])).data
        array([0., 2.], dtype=float32)
        >>> handle.remove()
        """
        return self._add_hook("_forward_pre_hooks", "register_forward_pre_hook", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every ``forward``.

        ``inputs`` is the tuple of positional arguments (after the pre-hooks). The hook returns
        None to leave the output as it is, or a replacement output, which later hooks and the
        caller receive. Hooks run in the order they were registered.

        Returns:
            A handle whose ``remove()`` unregisters the hook (also a context manager).

        >>> from minigrad.nn import Linear
        >>> layer, shapes = Linear(3, 2), []
        >>> handle = layer.register_forward_hook(lambda m, inputs, y: shapes.append(y.shape))
        >>> _ = layer(Tensor(np.ones((4, 3))))
        >>> handle.remove(); _ = layer(Tensor(np.ones((5, 3))))
        >>> shapes
        [(4, 2)]
        """
        return self._add_hook("_forward_hooks", "register_forward_hook", hook)

    def _add_hook(self, registry: str, what: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}.{what}: the hook must be callable, got "
                            f"{type(hook).__name__}")
        if registry not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.{what}: call super().__init__() first "
                                 f"in {type(self).__name__}.__init__")
        hooks = self.__dict__[registry]
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

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

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        """Every buffer that is set (not None) with its dotted name, in registration order,
        persistent or not; a buffer shared by several modules once unless
        ``remove_duplicate`` is False."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for key, b in module._buffers.items():
                if b is None or (remove_duplicate and id(b) in seen):
                    continue
                seen.add(id(b))
                yield _join(module_name, key), b

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        """Every buffer that is set, once, in registration order."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self) -> int:
        """The number of learnable numbers.

        >>> from minigrad.nn import Linear
        >>> Linear(784, 10).num_parameters()
        7850
        """
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------ state
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: set ``.grad`` to None (the default), or to zeros
        where there is one (``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.grad)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (``False``) or unfreeze every parameter: a frozen parameter gets no
        ``.grad`` from ``backward`` and optimisers, which skip parameters whose ``.grad`` is
        None, leave it as it is. Returns the module.

        >>> from minigrad.nn import Linear, Sequential
        >>> net = Sequential(Linear(3, 4), Linear(4, 2))
        >>> _ = net[0].requires_grad_(False)
        >>> [name for name, p in net.named_parameters() if p.requires_grad]
        ['1.weight', '1.bias']
        """
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn(module)`` on every sub-module (children first, depth first) and then on
        this module, e.g. to initialise the weights; returns this module.

        >>> from minigrad.nn import Linear, Sequential, init
        >>> def zero_biases(m):
        ...     if isinstance(m, Linear):
        ...         init.zeros_(m.bias)
        >>> net = Sequential(Linear(3, 4), Linear(4, 2)).apply(zero_biases)
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode here and in every sub-module."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout passes its input through unchanged."""
        return self.train(False)

    def to(self, dtype: Any) -> Module:
        """Convert every parameter and every floating-point buffer to ``dtype`` (``np.float64``
        for gradient checks); integer buffers (counters) stay as they are.

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
        for m in self.modules():
            for key, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    setattr(m, key, b.astype(dtype))
        return self

    def _named_state(self) -> Iterator[tuple[str, str, Module, str, np.ndarray]]:
        """(dotted name, "parameter" or "buffer", owner, attribute, array) of every entry of
        the state dict: each module's parameters, then its persistent buffers, depth first."""
        for module_name, module in self.named_modules():
            for key, p in module._parameters.items():
                if p is not None:
                    yield _join(module_name, key), "parameter", module, key, p.data
            for key, b in module._buffers.items():
                if b is not None and key not in module._non_persistent_buffers:
                    yield _join(module_name, key), "buffer", module, key, b

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's and every persistent buffer's values, by dotted name.

        >>> from minigrad.nn import Linear
        >>> sd = Linear(3, 2).state_dict()
        >>> {k: v.shape for k, v in sd.items()}
        {'weight': (3, 2), 'bias': (2,)}
        """
        return {name: array.copy() for name, _, _, _, array in self._named_state()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and persistent buffers, by dotted name, casting to
        each one's dtype; all or nothing (every entry is checked before any is copied).

        Args:
            state: name to array, as ``state_dict()`` or ``minigrad.io.load`` give.
            strict: raise when a parameter or buffer has no entry or an entry names none.

        Returns:
            ``(missing_keys, unexpected_keys)``; both empty when ``strict``.

        Raises:
            StateDictError: (a KeyError) ``strict`` and some names do not match; the message
                lists each missing and unexpected name with its shape.
            ValueError: an entry's shape differs from its parameter's or buffer's (both are
                named).
        """
        entries = {name: (kind, module, key, array)
                   for name, kind, module, key, array in self._named_state()}
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        where = type(self).__name__
        if strict and (missing or unexpected):
            lines = [f"{where}.load_state_dict: the state dict does not match the model"]
            lines += [f"  missing key '{k}' ({entries[k][0]} shape "
                      f"{_shape_str(entries[k][3].shape)})" for k in missing]
            lines += [f"  unexpected key '{k}' (shape {_shape_str(np.shape(state[k]))})"
                      for k in unexpected]
            raise StateDictError("\n".join(lines))
        values = {}
        for key, (_, _, _, array) in entries.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            if value.shape != array.shape:
                raise ValueError(
                    f"{where}.load_state_dict: '{key}' has shape {_shape_str(array.shape)} in "
                    f"the model but {_shape_str(value.shape)} in the state dict")
            values[key] = value
        for key, value in values.items():  # only once every entry has been checked
            kind, module, attribute, array = entries[key]
            if kind == "parameter":  # an in-place change of the parameter, as a step is
                array = module._parameters[attribute]._writable()
            elif not array.flags.writeable:
                # a graph still holds this buffer (an op read it): give the module a new array
                # and leave the recorded one as the graph saw it
                setattr(module, attribute, value.astype(array.dtype, copy=True))
                continue
            array[...] = value.astype(array.dtype, copy=False)
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

    >>> from minigrad.nn import Linear
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

    >>> from minigrad.nn import Linear, Sigmoid, manual_seed
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


class ModuleDict(Module):
    """Modules by name, registered under their keys (``heads.cls.weight``); ordered like a dict.

    >>> from minigrad.nn import Linear, ReLU
    >>> heads = ModuleDict({"cls": Linear(4, 10), "box": Linear(4, 4)})
    >>> heads["act"] = ReLU()
    >>> list(heads), len(heads), "box" in heads
    (['cls', 'box', 'act'], 3, True)
    >>> heads["box"].weight.name
    'box.weight'
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None,
                 ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _key(self, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be str, got {type(key).__name__}")
        if "." in key or key == "":
            raise KeyError(f"ModuleDict: keys must be non-empty and contain no '.', got {key!r}")
        if key not in self._modules and hasattr(self, key):
            raise KeyError(f"ModuleDict: the key {key!r} would hide ModuleDict.{key}; choose "
                           f"another name")
        return key

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict: no module {key!r}; the keys are "
                           f"{list(self._modules)}") from None

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: values must be Modules, got {type(module).__name__} "
                            f"for {key!r}")
        setattr(self, self._key(key), module)

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (the KeyError names the keys)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        return list(self._modules)

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ModuleDict has no forward: pick its modules by name in the parent's forward")
