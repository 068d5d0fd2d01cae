"""Optimisers: the textbook's four (SGD, Momentum, AdaGrad, Adam), PyTorch's RMSprop, AdamW and
Adadelta, with parameter groups; learning-rate schedules in ``minigrad.optim.lr_scheduler``.

Each takes the parameters to train (``model.parameters()``), or a list of parameter groups
(dicts with ``"params"`` and any hyperparameters that differ from the defaults, as in PyTorch),
and its ``step()`` moves every parameter that has a gradient, in place on ``p.data`` and in the
parameter's own dtype (float32 stays float32). Parameters whose ``.grad`` is None are skipped.
The hyperparameters of each group live in ``opt.param_groups``; ``state_dict()`` returns plain
nested dicts of numbers and arrays that ``minigrad.io.save`` writes, so training can stop and
resume exactly where it was, and ``load_state_dict`` checks everything before changing anything.

>>> import numpy as np
>>> from minigrad import nn
>>> w = nn.Parameter([1.0, -2.0])
>>> opt = SGD([w], lr=0.1)
>>> w.grad = np.array([0.5, 0.5], np.float32)
>>> opt.step()
>>> w.data
array([ 0.95, -2.05], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from minigrad.nn.module import Parameter
from minigrad.parallel import parallel_for
from minigrad.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Momentum", "AdaGrad", "Adam", "AdamW", "RMSprop", "Adadelta",
           "AdaDelta", "lr_scheduler"]

# Adam updates parameters larger than this many elements in blocks of this size: 64Ki float32
# per array (256 KiB; five arrays take 1.25 MiB) stay in a core's L2 cache across the update's
# dozen passes, where whole arrays of several MB would go to memory on every pass.
_BLOCK = 1 << 16

# What each hyperparameter may be: ("number", low, high, high_open), ("pair", ...) for two
# such numbers, ("flag",) for a bool. The constructors, add_param_group, attribute assignment
# and load_state_dict all check through this one table.
_SPECS: dict[str, tuple] = {
    "lr": ("number", 0.0, None, False),
    "momentum": ("number", 0.0, 1.0, True),
    "dampening": ("number", 0.0, 1.0, False),
    "weight_decay": ("number", 0.0, None, False),
    "nesterov": ("flag",),
    "eps": ("number", 0.0, None, False),
    "betas": ("pair", 0.0, 1.0, True),
    "alpha": ("number", 0.0, 1.0, False),
    "centered": ("flag",),
    "rho": ("number", 0.0, 1.0, False),
}


def _number(value: Any, what: str, owner: str, low: float = 0.0, high: float | None = None,
            high_open: bool = False) -> float:
    """A hyperparameter as a float, checked to lie in [low, high] (or [low, high))."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {what} must be a number, got {value!r}")
    value = float(value)
    upper_ok = (high is None or (value < high if high_open else value <= high))
    if not (value >= low and upper_ok):  # also rejects NaN
        bound = "" if high is None else f" and {'<' if high_open else '≤'} {high}"
        raise ValueError(f"{owner}: {what} must be ≥ {low}{bound}, got {value}")
    return value


def _check(key: str, value: Any, owner: str) -> Any:
    """One hyperparameter checked against ``_SPECS`` and normalised (float, tuple or bool)."""
    kind, *bounds = _SPECS[key]
    if kind == "number":
        return _number(value, key, owner, *bounds)
    if kind == "flag":
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype == bool:
            value = bool(value)
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{owner}: {key} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(value, np.ndarray) and value.ndim != 1:
        value = None if value.ndim else value.item()
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
        raise TypeError(f"{owner}: {key} must be a pair ({key}[0], {key}[1]), got {value!r}")
    return tuple(_number(v, f"{key}[{i}]", owner, *bounds) for i, v in enumerate(value))


def _updated(p: Tensor) -> np.ndarray:
    """The array of ``p`` for an optimiser to write into: every in-place update goes through here.

    ``Tensor._writable`` counts the write in ``p``'s version counter (a backward through ops
    recorded before the step is then refused, instead of using the changed values) and lifts
    the read-only hold a recorded graph keeps on a saved leaf's array.
    """
    return p._writable()


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and the state dict.

    Subclasses name their hyperparameters in ``hyperparameters`` (each listed in ``_SPECS``),
    pass their defaults to ``Optimizer.__init__`` and write ``_update(p, grad, state, group)``,
    called by ``step()`` for each parameter with a gradient: ``p`` and ``grad`` are arrays,
    ``state`` is that parameter's dict of running values (empty on its first step) and
    ``group`` the dict of its parameter group. ``_state_keys(group)`` tells
    ``load_state_dict`` which running values a state entry must hold. A subclass that
    overrides ``step()`` itself adds 1 to ``_step_count`` per call: the schedulers in
    ``lr_scheduler`` read it to tell whether the optimiser stepped since they did.

    Attributes:
        param_groups: list of dicts, one per group: ``"params"`` (the Parameters) and every
            hyperparameter. Change a value there (``opt.param_groups[0]["lr"] = 1e-4``) and
            the next step uses it; a learning-rate scheduler does exactly this.
        defaults: the constructor's hyperparameters, which groups fall back on.
        params: every parameter, group after group; ``state[i]`` belongs to ``params[i]``.
        state: one dict of running values per parameter.

    Reading ``opt.lr`` (any hyperparameter) gives the value all groups share; assigning
    ``opt.lr = 0.01`` checks it and sets it in every group.
    """

    hyperparameters: tuple[str, ...] = ("lr",)
    # Running arrays a state entry may hold; True marks those that can never be negative.
    _state_arrays: dict[str, bool] = {}
    # Hyperparameters newer than the single-group state dicts of earlier versions, with the
    # values that reproduce what those versions did; filled in when loading such a dict.
    _added_later: dict[str, Any] = {}

    def __init__(self, params: Any, defaults: Mapping[str, Any]) -> None:
        name = type(self).__name__
        self.defaults = self._check_settings(defaults, name)
        self.param_groups: list[dict[str, Any]] = []
        self.params: list[Tensor] = []
        self.state: list[dict[str, Any]] = []
        self._index: dict[int, int] = {}
        # Work arrays reused from step to step, one per (shape, dtype): a fresh array of a few
        # MB each time would cost more in page faults than the arithmetic itself.
        self._scratch: dict[tuple, np.ndarray] = {}
        # step() calls so far; schedulers compare it to catch a step out of order.
        self._step_count = 0
        groups, grouped = self._as_groups(params, name)
        for i, group in enumerate(groups):
            where = f"param_groups[{i}]['params']" if grouped else "params"
            self._add_group(group, name, f"{name}: param_groups[{i}]", where)

    # ------------------------------------------------------------ groups
    def _check_settings(self, settings: Mapping[str, Any], owner: str) -> dict[str, Any]:
        checked = {k: _check(k, settings[k], owner) for k in self.hyperparameters
                   if k in settings}
        if len(checked) == len(self.hyperparameters):
            self._check_combination(checked, owner)
        return checked

    def _check_combination(self, group: Mapping[str, Any], owner: str) -> None:
        """Constraints between hyperparameters of one group (subclasses add theirs)."""

    @staticmethod
    def _as_groups(params: Any, name: str) -> tuple[list, bool]:
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Parameters, got a single "
                            f"{type(params).__name__}; pass [p] or model.parameters()")
        if hasattr(params, "parameters") and hasattr(params, "forward"):
            raise TypeError(f"{name}: got a {type(params).__name__} module; "
                            f"pass model.parameters()")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of Parameters, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: params is empty; nothing to optimise "
                             f"(did model.parameters() already get consumed?)")
        if all(isinstance(g, Mapping) for g in params):
            return params, True
        if any(isinstance(g, Mapping) for g in params):
            raise TypeError(f"{name}: params mixes parameter groups (dicts) and Parameters; "
                            f"give a list of Parameters or a list of dicts")
        return [{"params": params}], False

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with hyperparameters of its own (fine-tuning, unfreezing).

        Args:
            param_group: a dict with ``"params"`` (a Parameter or an iterable of them) and any
                of this optimiser's hyperparameters; missing ones take ``opt.defaults``.

        Raises:
            TypeError, ValueError: as the constructor: a bad parameter, one already in a group,
                an unknown key or a hyperparameter out of range.

        >>> from minigrad import nn
        >>> opt = SGD([nn.Parameter([1.0])], lr=0.1)
        >>> opt.add_param_group({"params": [nn.Parameter([2.0])], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        i = len(self.param_groups)
        name = type(self).__name__
        owner = f"{name}.add_param_group"
        self._add_group(param_group, owner, owner, f"param_groups[{i}]['params']")

    def _add_group(self, group: Any, caller: str, owner: str, where: str) -> None:
        """Check and append one group; errors about parameters name ``caller`` and ``where``
        (their position), errors about settings name ``owner`` (caller and group)."""
        if not isinstance(group, Mapping):
            raise TypeError(f"{owner}: a parameter group must be a dict, got "
                            f"{type(group).__name__}")
        if "params" not in group:
            raise KeyError(f"{owner}: a parameter group needs a 'params' entry; got keys "
                           f"{sorted(group)}")
        unknown = [k for k in group if k != "params" and k != "name"
                   and k not in self.hyperparameters]
        if unknown:
            raise ValueError(f"{owner}: unknown key(s) {unknown}; {type(self).__name__}'s "
                             f"hyperparameters are {list(self.hyperparameters)}")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif hasattr(params, "parameters") and hasattr(params, "forward"):
            raise TypeError(f"{owner}: 'params' is a {type(params).__name__} module; pass "
                            f"its .parameters()")
        else:
            try:
                params = list(params)
            except TypeError:
                raise TypeError(f"{owner}: 'params' must be a Parameter or an iterable of "
                                f"them, got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{owner}: the group's params are empty")
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{caller}: {where}[{i}] is a {type(p).__name__}, "
                                f"expected a Parameter")
            described = f"{where}[{i}] (shape {p.shape}" + (f", name {p.name!r}" if p.name
                                                              else "") + ")"
            # A frozen Parameter (requires_grad_(False)) is welcome: it gets no gradient, so
            # step() skips it until it is unfrozen, as in PyTorch.
            if not p.requires_grad and not isinstance(p, Parameter):
                raise ValueError(f"{caller}: {described} does not require grad, "
                                 f"so it can never be updated")
            if p.creator is not None:
                raise ValueError(f"{caller}: {described} is the result of an op, not a leaf; "
                                 f"optimise the Parameters it was computed from")
            if p.data.dtype.kind != "f":
                raise TypeError(f"{caller}: {where}[{i}] has dtype "
                                f"{p.data.dtype}; only floating-point parameters can be "
                                f"optimised")
            if id(p) in seen:
                raise ValueError(f"{caller}: {described} appears twice")
            if id(p) in self._index:
                raise ValueError(f"{caller}: {described} is already in another "
                                 f"parameter group")
            seen.add(id(p))
        settings = dict(self.defaults)
        settings.update(self._check_settings(group, owner))
        self._check_combination(settings, owner)
        new = {"params": params, **settings}
        if "name" in group:
            new["name"] = str(group["name"])
        self.param_groups.append(new)
        for p in params:
            self._index[id(p)] = len(self.params)
            self.params.append(p)
            self.state.append({})

    def __getattr__(self, key: str) -> Any:
        # Only reached when ordinary lookup fails: hyperparameters read as one value.
        if key in type(self).hyperparameters and "param_groups" in self.__dict__:
            values = [g[key] for g in self.param_groups]
            if all(v == values[0] for v in values):
                return values[0]
            raise AttributeError(f"{type(self).__name__}.{key}: the parameter groups differ "
                                 f"({values}); read opt.param_groups[i][{key!r}]")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in type(self).hyperparameters and "param_groups" in self.__dict__:
            owner = f"{type(self).__name__}.{key}"
            value = _check(key, value, owner)
            for group in self.param_groups:
                self._check_combination({**group, key: value}, owner)
            for group in self.param_groups:
                group[key] = value
            return
        super().__setattr__(key, value)

    # ------------------------------------------------------------ stepping
    def _work(self, p: np.ndarray, owner: int = 0) -> np.ndarray:
        """A scratch array shaped like ``p`` (its contents are garbage), one per ``owner`` (the
        first block of a run that one thread updates while others update theirs; negative
        owners are further scratch arrays of one update)."""
        key = (p.shape, p.dtype, owner)
        work = self._scratch.get(key)
        if work is None:
            work = self._scratch[key] = np.empty_like(p)
        return work

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the parameters: set ``.grad`` to None (the default), or to
        zeros where there is one (``set_to_none=False``, as PyTorch)."""
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.grad)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        self._step_count += 1
        state, index = self.state, self._index
        for group in self.param_groups:
            items = []
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                # backward() gives arrays; a gradient assigned by hand may be a NumPy scalar,
                # which has no memory to update in place (running values would not accumulate).
                grad = np.asarray(grad)
                if grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: parameter {p.name or ''} "
                                     f"has shape {p.data.shape} but its grad has shape "
                                     f"{grad.shape}")
                items.append((_updated(p), grad, state[index[id(p)]]))
            if items:
                self._update_group(items, group)

    def _update_group(self, items: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]],
                      group: dict[str, Any]) -> None:
        """Update the parameters of one group that have a gradient: ``(p, grad, state)``
        each. One ``_update`` per parameter; a subclass may update several at once."""
        for p, grad, state in items:
            self._update(p, grad, state, group)

    def _update(self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}._update is not written")

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The entries a parameter's state must hold once it has stepped, under ``group``."""
        return tuple(self._state_arrays)

    # ------------------------------------------------------------ resuming
    def state_dict(self) -> dict[str, Any]:
        """Each group's hyperparameters and each parameter's running state, as nested dicts.

        ``{"param_groups": {"0": {"lr": ..., ..., "params": array([0, 1])}, ...},
        "state": {"0": {"step": ..., "m": ...}, ...}}``: parameters numbered in the order they
        were given (group after group), state only for those that have stepped. Arrays are
        copies. ``minigrad.io.save`` writes it as it is.
        """
        groups = {}
        first = 0
        for g, group in enumerate(self.param_groups):
            n = len(group["params"])
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = np.arange(first, first + n)
            groups[str(g)] = saved
            first += n
        return {
            "param_groups": groups,
            "state": {str(i): {k: (v.copy() if isinstance(v, np.ndarray) else v)
                               for k, v in s.items()}
                      for i, s in enumerate(self.state) if s},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and running state saved by ``state_dict``, all or nothing.

        Accepts the nested dict, the flat dotted one ``minigrad.io.load`` returns, and the
        single-group layout of earlier versions (``{"hyperparameters": ..., "state": ...}``).
        Every hyperparameter goes through the constructor's checks; every running array must
        have its parameter's shape, a real dtype and finite values (squared averages ≥ 0);
        ``step`` must be a whole number ≥ 0. Arrays are cast to each parameter's dtype. If
        anything is wrong, nothing changes.

        Raises:
            KeyError: an entry is missing, or names a parameter or key this optimiser lacks.
            ValueError, TypeError: a value is out of range, of the wrong kind or shape, or the
                groups do not match this optimiser's.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: expected a dict, got {type(state_dict).__name__}")
        if any("." in k for k in state_dict):
            from minigrad.io import unflatten

            state_dict = unflatten(state_dict)
        if "param_groups" in state_dict:
            saved_groups = state_dict["param_groups"]
            if not isinstance(saved_groups, Mapping):
                saved_groups = {str(i): g for i, g in enumerate(saved_groups)}
        elif "hyperparameters" in state_dict:  # one group, parameters numbered in order
            if len(self.param_groups) != 1:
                raise ValueError(f"{name}: the state dict has one group of hyperparameters but "
                                 f"this optimiser has {len(self.param_groups)} groups")
            saved_groups = {"0": {**self._added_later, **state_dict["hyperparameters"],
                                  "params": np.arange(len(self.params))}}
        else:
            raise KeyError(f"{name}: no 'param_groups' entry; got keys {sorted(state_dict)}")
        expected = [str(i) for i in range(len(self.param_groups))]
        if sorted(saved_groups, key=str) != sorted(expected):
            raise ValueError(f"{name}: the state dict has parameter groups "
                             f"{sorted(saved_groups, key=str)} but this optimiser has "
                             f"{expected}")
        new_groups = []
        saved_index: dict[int, int] = {}
        first = 0
        for g, group in enumerate(self.param_groups):
            saved = saved_groups[str(g)]
            where = f"{name}: param_groups[{g}]"
            missing = [k for k in self.hyperparameters if k not in saved]
            if missing:
                raise KeyError(f"{where}: hyperparameters {missing} are missing (got "
                               f"{sorted(saved)}); was it saved by a different optimiser?")
            new = self._check_settings(saved, where)
            for k, v in saved.items():
                if k in new or k == "params":
                    continue
                v = np.asarray(v)
                if v.dtype.kind in "US":
                    new[k] = str(v)
                elif v.dtype.kind in "iuf" and v.ndim <= 1:
                    new[k] = tuple(float(x) for x in v) if v.ndim else float(v)
                else:
                    raise TypeError(f"{where}: entry {k!r} must be a number, a pair of numbers "
                                    f"or a string, got an array of dtype {v.dtype} and shape "
                                    f"{v.shape}")
            n = len(group["params"])
            ids = np.asarray(saved.get("params", np.arange(first, first + n))).reshape(-1)
            if ids.size != n or ids.dtype.kind not in "iu":
                raise ValueError(f"{where}: the state dict's group has {ids.size} parameters "
                                 f"but this optimiser's has {n}")
            for j, saved_id in enumerate(ids.tolist()):
                if saved_id in saved_index:
                    raise ValueError(f"{where}: parameter number {saved_id} appears twice")
                saved_index[saved_id] = first + j
            new_groups.append(new)
            first += n
        group_of = [g for g, group in enumerate(self.param_groups) for _ in group["params"]]
        new_state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, entry in state_dict.get("state", {}).items():
            try:
                i = saved_index[int(key)]
            except (ValueError, KeyError):
                raise KeyError(f"{name}: state entry '{key}' names no parameter (this "
                               f"optimiser has {len(self.params)})") from None
            new_state[i] = self._load_entry(name, key, entry, self.params[i].data,
                                            new_groups[group_of[i]])
        for group, new in zip(self.param_groups, new_groups):
            params = group["params"]
            group.clear()
            group["params"] = params
            group.update(new)
        self.state = new_state

    def _load_entry(self, name: str, key: str, entry: Any, p: np.ndarray,
                    group: Mapping[str, Any]) -> dict[str, Any]:
        """One parameter's state entry, checked and converted (nothing is stored here)."""
        if not isinstance(entry, Mapping):
            raise TypeError(f"{name}: state '{key}' must be a dict, got {type(entry).__name__}")
        required = self._state_keys(group)
        missing = [k for k in required if k not in entry]
        if missing:
            raise KeyError(f"{name}: state '{key}' has no {missing} (it holds {sorted(entry)}); "
                           f"{type(self).__name__} needs {list(required)}")
        unknown = [k for k in entry if k != "step" and k not in self._state_arrays]
        if unknown:
            raise KeyError(f"{name}: state '{key}' has unexpected entries {unknown}; was it "
                           f"saved by a different optimiser?")
        out: dict[str, Any] = {}
        for k, v in entry.items():
            v = np.asarray(v)
            if k == "step":
                if (v.ndim or v.dtype.kind not in "iuf" or not np.isfinite(v)
                        or v != np.floor(v) or v < 0):
                    raise ValueError(f"{name}: state '{key}.step' must be a whole number ≥ 0, "
                                     f"got {v!r}")
                out[k] = int(v)
                continue
            if v.dtype.kind not in "iuf":
                raise TypeError(f"{name}: state '{key}.{k}' has dtype {v.dtype}; expected "
                                f"real numbers")
            if v.shape != p.shape:
                raise ValueError(f"{name}: state '{key}.{k}' has shape {v.shape} but parameter "
                                 f"{key} has shape {p.shape}")
            if not np.isfinite(v).all():
                raise ValueError(f"{name}: state '{key}.{k}' holds NaN or infinite values")
            if self._state_arrays[k] and (v < 0).any():
                raise ValueError(f"{name}: state '{key}.{k}' is an average of squares but has "
                                 f"negative values (min {v.min()})")
            out[k] = v.astype(p.dtype, copy=True)
        return out

    def __repr__(self) -> str:
        def settings(group):
            return ", ".join(f"{k}={group[k]!r}" for k in self.hyperparameters)

        if len(self.param_groups) == 1:
            return (f"{type(self).__name__}({len(self.params)} parameters, "
                    f"{settings(self.param_groups[0])})")
        groups = "; ".join(f"[{len(g['params'])}: {settings(g)}]" for g in self.param_groups)
        return f"{type(self).__name__}({len(self.params)} parameters in groups {groups})"


def _with_weight_decay(opt: Optimizer, p: np.ndarray, grad: np.ndarray,
                       weight_decay: float) -> np.ndarray:
    """g + λ·w in a scratch array of its own (``grad`` itself is never written)."""
    work = opt._work(p, owner=-1)
    np.multiply(p, p.dtype.type(weight_decay), out=work)
    work += grad
    return work


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay,
    as torch.optim.SGD computes it.

        g ← ∇L + λ·w
        v ← μ·v + (1 − τ)·g     (v = g on the first step; only when μ > 0)
        g ← g + μ·v  (Nesterov)  or  g ← v
        w ← w − η·g

    With a constant η and τ = 0 this is the textbook's Momentum: its v' = α·v' − η·g equals −η·v.

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0.
        momentum: μ in [0, 1).
        dampening: τ in [0, 1].
        nesterov: Nesterov momentum (needs μ > 0 and τ = 0).
        weight_decay: λ ≥ 0.

    State per parameter: ``v`` (torch's ``momentum_buffer``), once μ > 0.
    """

    hyperparameters = ("lr", "momentum", "dampening", "nesterov", "weight_decay")
    _state_arrays = {"v": False}
    _added_later = {"dampening": 0.0, "nesterov": False}

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "nesterov": nesterov, "weight_decay": weight_decay})

    def _check_combination(self, group: Mapping[str, Any], owner: str) -> None:
        if group.get("nesterov") and (group.get("momentum", 0.0) <= 0
                                      or group.get("dampening", 0.0) != 0):
            raise ValueError(f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group.get('momentum')}, "
                             f"dampening={group.get('dampening')}")

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("v",) if group["momentum"] else ()

    def _update(self, p, grad, state, group) -> None:
        f = p.dtype.type
        if group["weight_decay"]:
            grad = _with_weight_decay(self, p, grad, group["weight_decay"])
        momentum = group["momentum"]
        if momentum:
            v = state.get("v")
            if v is None:
                v = state["v"] = np.array(grad, dtype=p.dtype)  # an array even for 0-d p
            else:
                v *= f(momentum)
                if group["dampening"]:
                    damped = self._work(p, owner=-2)
                    np.multiply(grad, f(1 - group["dampening"]), out=damped)
                    v += damped
                else:
                    v += grad
            if group["nesterov"]:
                ahead = self._work(p, owner=-2)
                np.multiply(v, f(momentum), out=ahead)
                ahead += grad
                grad = ahead
            else:
                grad = v
        work = self._work(p)
        np.multiply(grad, f(group["lr"]), out=work)
        p -= work


class Momentum(SGD):
    """SGD with momentum μ = 0.9 by default (the textbook's ``Momentum``); see :class:`SGD`."""

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.9,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         nesterov=nesterov, weight_decay=weight_decay)


class AdaGrad(Optimizer):
    """Per-element learning rates shrinking with the gradients seen so far (Duchi et al.).

        g ← ∇L + λ·w
        h ← h + g ⊙ g
        w ← w − η · g / (√h + ε)

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0.
        eps: ε ≥ 0, keeps the first steps finite.
        weight_decay: λ ≥ 0.

    State per parameter: ``h`` (torch's ``sum``).
    """

    hyperparameters = ("lr", "eps", "weight_decay")
    _state_arrays = {"h": True}
    _added_later = {"weight_decay": 0.0}

    def __init__(self, params: Any, lr: float = 0.01, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay})

    def _update(self, p, grad, state, group) -> None:
        f = p.dtype.type
        if group["weight_decay"]:
            grad = _with_weight_decay(self, p, grad, group["weight_decay"])
        h = state.get("h")
        if h is None:
            h = state["h"] = np.zeros_like(p)
        work = self._work(p)
        np.multiply(grad, grad, out=work)
        h += work
        np.sqrt(h, out=work)
        work += f(group["eps"])
        np.divide(grad, work, out=work)
        work *= f(group["lr"])
        p -= work


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as torch.optim.Adam computes it.

        g ← ∇L + λ·w                       (L2 weight decay, when λ > 0)
        m ← β₁·m + (1 − β₁)·g              v ← β₂·v + (1 − β₂)·g ⊙ g
        m̂ = m / (1 − β₁ᵗ)                  v̂ = v / (1 − β₂ᵗ)
        w ← w − η · m̂ / (√v̂ + ε)

    t counts the steps this parameter has taken. The parameters of a group are updated
    together, as one flat array (``_update_group``), in cache-sized blocks over minigrad's
    threads; ``_update`` is the same arithmetic for one parameter, element by element, and
    gives the same bits.

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε ≥ 0.
        weight_decay: λ ≥ 0.

    State per parameter: ``step`` (t), ``m`` and ``v`` (torch's ``exp_avg``, ``exp_avg_sq``).
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay")
    _state_arrays = {"m": False, "v": True}
    # AdamW: the weight decay shrinks w directly instead of entering the gradient.
    _decoupled = False
    # Update the parameters of a group together where they allow it (``_update_group``);
    # False updates each on its own (``_update``), the plain path the tests compare with.
    _packed = True

    def __init__(self, params: Any, lr: float = 0.001,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})
        self._packs: dict[int, _Pack] = {}     # per parameter group (by id)

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("step", "m", "v")

    def _update(self, p, grad, state, group) -> None:
        f = p.dtype.type
        lr, weight_decay = group["lr"], group["weight_decay"]
        decay = 1.0
        if weight_decay and self._decoupled:
            decay = 1 - lr * weight_decay
        elif weight_decay:
            decayed = np.multiply(p, f(weight_decay))
            decayed += grad
            grad = decayed
        if not state:
            state["step"] = 0
            state["m"] = np.zeros_like(p)
            state["v"] = np.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        settings = (t, lr, group["betas"], group["eps"])
        arrays = (p, grad, m, v)
        if p.size > _BLOCK and all(a.flags.c_contiguous for a in arrays):
            # The same passes block by block, each block small enough to stay in the CPU's
            # cache through all of them: the result is identical, element by element.
            # Runs of blocks go to minigrad's threads, each run with its own scratch block.
            p, grad, m, v = (a.reshape(-1) for a in arrays)

            def blocks(first, last):
                work = self._work(p[:_BLOCK], owner=first)
                for lo in range(first * _BLOCK, min(last * _BLOCK, p.size), _BLOCK):
                    block = slice(lo, lo + _BLOCK)
                    self._adam(p[block], grad[block], m[block], v[block],
                               work[:p[block].size], *settings, decay)

            parallel_for(-(-p.size // _BLOCK), blocks, work=4 * p.size)
            return
        self._adam(p, grad, m, v, self._work(p), *settings, decay)

    @staticmethod
    def _adam(p, grad, m, v, work, t, lr, betas, eps, decay) -> None:
        """The moment updates and the step on arrays of one shape; ``work`` is scratch."""
        Adam._moments(grad, m, v, work, t, lr, betas, eps)
        if decay != 1.0:
            p *= p.dtype.type(decay)
        p -= work

    @staticmethod
    def _moments(grad, m, v, work, t, lr, betas, eps) -> None:
        """m and v updated in place from ``grad``, and the step η·m̂/(√v̂ + ε) left in ``work``
        (all arrays of one shape and dtype but ``grad``, which may be of another)."""
        f = m.dtype.type
        beta1, beta2 = betas
        np.multiply(grad, f(1 - beta1), out=work)
        m *= f(beta1)
        m += work
        np.multiply(grad, grad, out=work)
        work *= f(1 - beta2)
        v *= f(beta2)
        v += work
        # η·m̂/(√v̂ + ε) = (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε), as torch evaluates it.
        np.sqrt(v, out=work)
        work *= f(1 / math.sqrt(1 - beta2 ** t))
        work += f(eps)
        np.divide(m, work, out=work)
        work *= f(lr / (1 - beta1 ** t))

    def _update_group(self, items, group) -> None:
        """Several parameters in one run of passes, when they allow it.

        The parameters of the group that are C-contiguous, share a dtype with their gradients
        and have taken the same number of steps are updated together (``_Pack``): their
        gradients are gathered into one flat array, m and v are views of one flat array each,
        the dozen passes of ``_moments`` run once over all of them (block by block over
        minigrad's threads, as ``_update`` does for one large parameter), and each parameter
        takes its share of the step. Every element goes through the same operations with the
        same constants as in ``_update``, so the result is identical to updating them one by
        one; one pass costs about 1 µs of NumPy overhead, which is most of the update of a
        bias or of a 100×100 weight. The others take ``_update``.
        """
        if not self._packed or len(items) < 2:
            super()._update_group(items, group)
            return
        p0, _, state0 = items[0]
        dtype, t = p0.dtype, state0.get("step", 0)
        members, alone = [], []
        for item in items:
            p, grad, state = item
            together = (p.dtype == dtype and grad.dtype == dtype and p.flags.c_contiguous
                        and grad.flags.c_contiguous and state.get("step", 0) == t)
            (members if together else alone).append(item)
        if len(members) < 2:
            alone, members = items, []
        for p, grad, state in alone:
            self._update(p, grad, state, group)
        if members:
            self._update_pack(members, group)

    def _update_pack(self, members, group) -> None:
        pack = self._packs.get(id(group))
        if pack is None or not pack.holds(members):
            live = {id(g) for g in self.param_groups}
            self._packs = {k: v for k, v in self._packs.items() if k in live}
            pack = self._packs[id(group)] = _Pack(members)
        g, m, v, work = pack.grad, pack.m, pack.v, pack.work
        f = m.dtype.type
        lr, weight_decay = group["lr"], group["weight_decay"]
        np.concatenate([grad.reshape(-1) for _, grad, _ in members], out=g)
        decay = 1.0
        if weight_decay and self._decoupled:
            decay = 1 - lr * weight_decay
        elif weight_decay:                 # g ← g + λ·w
            np.concatenate([p.reshape(-1) for p, _, _ in members], out=work)
            work *= f(weight_decay)
            g += work
        t = members[0][2]["step"] + 1
        for _, _, state in members:
            state["step"] = t
        settings = (t, lr, group["betas"], group["eps"])

        # Blocks of equal size, at most _BLOCK elements each (so that threads get equal shares).
        count = -(-g.size // _BLOCK)
        bounds = [g.size * i // count for i in range(count + 1)]

        def blocks(first, last):           # cache-sized blocks first..last−1, on one thread
            for lo, hi in zip(bounds[first:last], bounds[first + 1:last + 1]):
                self._moments(g[lo:hi], m[lo:hi], v[lo:hi], work[lo:hi], *settings)

        parallel_for(count, blocks, work=4 * g.size)
        for (p, _, _), lo, hi in zip(members, pack.bounds, pack.bounds[1:]):
            if decay != 1.0:
                p *= f(decay)
            p -= work[lo:hi].reshape(p.shape)


class _Pack:
    """Flat running averages for several parameters of one group, updated in one run.

    Each member's ``state["m"]`` and ``state["v"]`` are views of ``m`` and ``v`` (member i
    owns elements ``bounds[i]`` to ``bounds[i + 1]``); ``grad`` and ``work`` are scratch of
    the same size. A pack stays valid while the same parameters step together and their
    states still hold its views; otherwise a new one is made, the running values copied in
    (``load_state_dict`` replaces the states, a skipped parameter leaves the group).
    """

    __slots__ = ("states", "bounds", "m", "v", "grad", "work")

    def __init__(self, members: list) -> None:
        sizes = [p.size for p, _, _ in members]
        self.bounds = [0]
        for n in sizes:
            self.bounds.append(self.bounds[-1] + n)
        dtype, total = members[0][0].dtype, self.bounds[-1]
        self.m, self.v = np.zeros(total, dtype), np.zeros(total, dtype)
        self.grad, self.work = np.empty(total, dtype), np.empty(total, dtype)
        self.states = [state for _, _, state in members]
        for (p, _, state), lo, hi in zip(members, self.bounds, self.bounds[1:]):
            for key in ("m", "v"):
                view = getattr(self, key)[lo:hi].reshape(p.shape)
                if key in state:
                    view[...] = state[key]
                state[key] = view
            state.setdefault("step", 0)

    def holds(self, members: list) -> bool:
        """True while ``members`` ((p, grad, state) each) are this pack's, states and all."""
        if len(members) != len(self.states):
            return False
        m, v = self.m, self.v
        for (p, _, state), mine, lo, hi in zip(members, self.states, self.bounds,
                                               self.bounds[1:]):
            if (state is not mine or p.size != hi - lo or state.get("m") is None
                    or state["m"].base is not m or state.get("v") is None
                    or state["v"].base is not v):
                return False
        return True


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW.

        w ← w · (1 − η·λ)                  (before the Adam step; the gradient is left alone)
        m, v, m̂, v̂ and the step as in :class:`Adam`, from g = ∇L

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε ≥ 0.
        weight_decay: λ ≥ 0 (1e-2 by default, as PyTorch).
    """

    _decoupled = True

    def __init__(self, params: Any, lr: float = 0.001,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centred and with momentum, as torch.optim.RMSprop.

        g ← ∇L + λ·w
        s ← α·s + (1 − α)·g ⊙ g
        a ← α·a + (1 − α)·g,  d = √(s − a ⊙ a) + ε     (centered)   or   d = √s + ε
        b ← μ·b + g / d,      w ← w − η·b              (μ > 0)      or   w ← w − η·g / d

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0.
        alpha: α in [0, 1].
        eps: ε ≥ 0.
        weight_decay: λ ≥ 0.
        momentum: μ in [0, 1).
        centered: divide by an estimate of the gradient's variance instead of its second moment.

    State per parameter (torch's names): ``step``, ``square_avg`` (s), ``momentum_buffer`` (b,
    when μ > 0), ``grad_avg`` (a, when centered).
    """

    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _state_arrays = {"square_avg": True, "momentum_buffer": False, "grad_avg": False}

    def __init__(self, params: Any, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "momentum": momentum,
                                  "centered": centered})

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return (("step", "square_avg") + (("momentum_buffer",) if group["momentum"] else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _update(self, p, grad, state, group) -> None:
        f = p.dtype.type
        alpha = group["alpha"]
        if group["weight_decay"]:
            grad = _with_weight_decay(self, p, grad, group["weight_decay"])
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
        state["step"] += 1
        square_avg = state["square_avg"]
        work = self._work(p)
        square_avg *= f(alpha)
        np.multiply(grad, grad, out=work)
        work *= f(1 - alpha)
        square_avg += work
        if group["centered"]:
            grad_avg = state.get("grad_avg")
            if grad_avg is None:
                grad_avg = state["grad_avg"] = np.zeros_like(p)
            np.subtract(grad, grad_avg, out=work)     # a + (1 − α)(g − a), torch's lerp
            work *= f(1 - alpha)
            grad_avg += work
            np.multiply(grad_avg, grad_avg, out=work)
            np.subtract(square_avg, work, out=work)
            np.sqrt(work, out=work)
        else:
            np.sqrt(square_avg, out=work)
        work += f(group["eps"])
        np.divide(grad, work, out=work)
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(p)
            buf *= f(group["momentum"])
            buf += work
            np.multiply(buf, f(group["lr"]), out=work)
        else:
            work *= f(group["lr"])
        p -= work


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as torch.optim.Adadelta: steps scaled by past steps, not by η alone.

        g ← ∇L + λ·w
        s ← ρ·s + (1 − ρ)·g ⊙ g
        Δ = √(u + ε) / √(s + ε) ⊙ g
        u ← ρ·u + (1 − ρ)·Δ ⊙ Δ
        w ← w − η·Δ

    DeZero calls it ``AdaDelta``, which is the same class here.

    Args:
        params: the parameters to update, or a list of parameter groups.
        lr: η ≥ 0 (1.0 by default, as in the paper and PyTorch).
        rho: ρ in [0, 1].
        eps: ε ≥ 0.
        weight_decay: λ ≥ 0.

    State per parameter (torch's names): ``step``, ``square_avg`` (s), ``acc_delta`` (u).
    """

    hyperparameters = ("lr", "rho", "eps", "weight_decay")
    _state_arrays = {"square_avg": True, "acc_delta": True}

    def __init__(self, params: Any, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps,
                                  "weight_decay": weight_decay})

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg", "acc_delta")

    def _update(self, p, grad, state, group) -> None:
        f = p.dtype.type
        rho, eps = f(group["rho"]), f(group["eps"])
        if group["weight_decay"]:
            grad = _with_weight_decay(self, p, grad, group["weight_decay"])
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            state["acc_delta"] = np.zeros_like(p)
        state["step"] += 1
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        work, std = self._work(p), self._work(p, owner=-2)
        square_avg *= rho
        np.multiply(grad, grad, out=work)
        work *= f(1 - group["rho"])
        square_avg += work
        np.add(square_avg, eps, out=std)
        np.sqrt(std, out=std)
        np.add(acc_delta, eps, out=work)
        np.sqrt(work, out=work)
        work /= std
        work *= grad                                  # work = Δ
        acc_delta *= rho
        np.multiply(work, work, out=std)
        std *= f(1 - group["rho"])
        acc_delta += std
        work *= f(group["lr"])
        p -= work


AdaDelta = Adadelta

from minigrad.optim import lr_scheduler  # noqa: E402  (the schedulers import Optimizer)
