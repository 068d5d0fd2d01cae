"""Learning-rate schedules: sequences against torch.optim.lr_scheduler (one and two parameter
groups, momentum cycling), preview, resuming mid-schedule, step order, validation."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import io, optim
from minigrad.nn import Parameter
from minigrad.optim import lr_scheduler as mg_sched

# name, scheduler factory (given the scheduler module and the optimiser), optimiser, steps.
# The factories are written once and run against both libraries.
CASES = [
    ("StepLR", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), "SGD", 12),
    ("MultiStepLR", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     "SGD", 12),
    ("ExponentialLR", lambda m, o: m.ExponentialLR(o, gamma=0.9), "SGD", 30),
    ("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, T_max=10), "SGD", 12),
    ("CosineAnnealingLR-past-T_max", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
     "SGD", 30),
    ("LinearLR-warm-up", lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=4), "SGD", 8),
    ("LinearLR-decay", lambda m, o: m.LinearLR(o, 1.0, 0.2, total_iters=6), "SGD", 9),
    ("LambdaLR", lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e) ** 0.5), "SGD", 10),
    ("ConstantLR", lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=3), "SGD", 6),
    ("PolynomialLR", lambda m, o: m.PolynomialLR(o, total_iters=6, power=2.0), "SGD", 9),
    ("OneCycleLR-SGD", lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=20), "SGD", 20),
    ("OneCycleLR-Adam-linear-three-phase",
     lambda m, o: m.OneCycleLR(o, max_lr=0.5, epochs=4, steps_per_epoch=5,
                               anneal_strategy="linear", three_phase=True, pct_start=0.25),
     "Adam", 20),
    ("OneCycleLR-no-momentum",
     lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=15, cycle_momentum=False,
                               div_factor=10.0, final_div_factor=100.0), "RMSprop", 15),
    ("SequentialLR-warm-up-cosine",
     lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.2, total_iters=3),
                                     m.CosineAnnealingLR(o, T_max=10)], milestones=[3]),
     "SGD", 15),
    ("SequentialLR-three",
     lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, gamma=0.8),
                                     m.StepLR(o, step_size=2, gamma=0.5),
                                     m.MultiStepLR(o, milestones=[1, 3])], milestones=[3, 7]),
     "SGD", 12),
    ("SequentialLR-constant-polynomial",
     lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=4),
                                     m.PolynomialLR(o, total_iters=5)], milestones=[2]),
     "SGD", 9),
]
IDS = [c[0] for c in CASES]
GROUP_LRS = {1: [0.1], 2: [0.1, 0.02]}
SETTINGS = {"SGD": {"momentum": 0.9}, "Adam": {}, "RMSprop": {}}


def _optimiser(lib, name, groups):
    """An optimiser with ``groups`` parameter groups of different learning rates."""
    if lib == "torch":
        torch = pytest.importorskip("torch")
        params = [torch.zeros(2, requires_grad=True) for _ in range(groups)]
        cls = getattr(torch.optim, name)
    else:
        params = [Parameter(np.zeros(2)) for _ in range(groups)]
        cls = getattr(optim, name)
    return cls([{"params": [p], "lr": lr} for p, lr in zip(params, GROUP_LRS[groups])],
               **SETTINGS[name])


def _momentum(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _run(lib, factory, name, groups, steps):
    """The lr (and momentum) of each group after construction and after each step."""
    opt = _optimiser(lib, name, groups)
    if lib == "torch":
        import torch.optim.lr_scheduler as module
    else:
        module = mg_sched
    sched = factory(module, opt)
    lrs, momenta = [sched.get_last_lr()], [_momentum(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        momenta.append(_momentum(opt))
        assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    return lrs, momenta


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sequences_equal_torchs(case, groups):
    pytest.importorskip("torch")
    _, factory, name, steps = case
    ours, our_momenta = _run("minigrad", factory, name, groups, steps)
    theirs, their_momenta = _run("torch", factory, name, groups, steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)
    np.testing.assert_allclose(our_momenta, their_momenta, rtol=1e-15, atol=0)


def test_lambdas_per_group_equal_torchs():
    torch = pytest.importorskip("torch")
    import torch.optim.lr_scheduler as torch_sched

    lambdas = [lambda e: 0.9 ** e, lambda e: 1.0 / (e + 1)]
    sequences = []
    for module, lib in ((mg_sched, "minigrad"), (torch_sched, "torch")):
        opt = _optimiser(lib, "SGD", 2)
        sched = module.LambdaLR(opt, lambdas)
        seq = [sched.get_last_lr()]
        for _ in range(6):
            opt.step()
            sched.step()
            seq.append(sched.get_last_lr())
        sequences.append(seq)
    assert torch is not None
    np.testing.assert_allclose(*sequences, rtol=1e-15, atol=0)


# Plateau: metrics that improve, stall, wobble within the threshold, and improve again.
METRICS = [1.0, 0.9, 0.9, 0.95, 0.9, 0.8999999, 0.89, 0.7, 0.7, 0.7, 0.7, 0.7, 0.71, 0.5, 0.5,
           0.5, 0.5, 0.5, 0.5, 0.5]
PLATEAU = [
    {"patience": 1},
    {"patience": 2, "cooldown": 2, "factor": 0.5},
    {"mode": "max", "patience": 0, "threshold": 0.05},
    {"threshold_mode": "abs", "threshold": 0.05, "patience": 1, "min_lr": [0.01, 0.001]},
    {"patience": 0, "min_lr": 0.05, "eps": 1e-3},
]


@pytest.mark.parametrize("settings", PLATEAU, ids=[str(s) for s in PLATEAU])
def test_reduce_on_plateau_equals_torchs(settings):
    pytest.importorskip("torch")
    import torch.optim.lr_scheduler as torch_sched

    sequences = []
    for module, lib in ((mg_sched, "minigrad"), (torch_sched, "torch")):
        opt = _optimiser(lib, "SGD", 2)
        sched = module.ReduceLROnPlateau(opt, **settings)
        seq = [sched.get_last_lr()]
        for metric in METRICS:
            opt.step()
            sched.step(metric)
            seq.append(sched.get_last_lr())
        sequences.append(seq)
    np.testing.assert_allclose(*sequences, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------- preview

def _state(sched, opt):
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return groups, io.flatten(sched.state_dict())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_preview_is_the_coming_sequence_and_touches_nothing(case):
    _, factory, name, steps = case
    opt = _optimiser("minigrad", name, 2)
    sched = factory(mg_sched, opt)
    for _ in range(2):                     # preview from the middle of a schedule
        opt.step()
        sched.step()
    groups, state = _state(sched, opt)
    preview = sched.preview(steps - 1)
    assert preview.shape == (steps - 1, 2) and preview.dtype == np.float64
    after_groups, after_state = _state(sched, opt)
    assert after_groups == groups
    assert after_state.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(after_state[key], state[key])
    actual = [sched.get_last_lr()]
    for _ in range(steps - 2):
        opt.step()
        sched.step()
        actual.append(sched.get_last_lr())
    np.testing.assert_array_equal(preview, np.array(actual))


def test_plateau_preview_follows_the_metrics():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.ReduceLROnPlateau(opt, patience=1)
    preview = sched.preview(METRICS)
    assert opt.param_groups[0]["lr"] == 0.1 and sched.num_bad_epochs == 0
    actual = [sched.get_last_lr()]
    for metric in METRICS:
        opt.step()
        sched.step(metric)
        actual.append(sched.get_last_lr())
    np.testing.assert_array_equal(preview, np.array(actual))


# --------------------------------------------------------------------------- resuming

def _build(case, groups=2):
    _, factory, name, _ = case
    opt = _optimiser("minigrad", name, groups)
    return opt, factory(mg_sched, opt)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_resumed_schedule_equals_uninterrupted(case, tmp_path):
    steps, cut = case[3], case[3] // 2
    opt, sched = _build(case)
    expected = []
    for _ in range(steps):
        opt.step()
        sched.step()
        expected.append((sched.get_last_lr(), _momentum(opt)))
    opt, sched = _build(case)
    got = []
    for _ in range(cut):
        opt.step()
        sched.step()
        got.append((sched.get_last_lr(), _momentum(opt)))
    io.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
            tmp_path / "run.npz")
    opt, sched = _build(case)               # a new process: built afresh, then loaded
    state = io.unflatten(io.load(tmp_path / "run.npz"))
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    for _ in range(steps - cut):
        opt.step()
        sched.step()
        got.append((sched.get_last_lr(), _momentum(opt)))
    assert got == expected


def test_resumed_plateau_equals_uninterrupted(tmp_path):
    def build():
        opt = _optimiser("minigrad", "SGD", 2)
        return opt, mg_sched.ReduceLROnPlateau(opt, patience=1, cooldown=1)

    opt, sched = build()
    expected = []
    for metric in METRICS:
        opt.step()
        sched.step(metric)
        expected.append(sched.get_last_lr())
    opt, sched = build()
    got = []
    for metric in METRICS[:9]:
        opt.step()
        sched.step(metric)
        got.append(sched.get_last_lr())
    io.save({"o": opt.state_dict(), "s": sched.state_dict()}, tmp_path / "run.npz")
    opt, sched = build()
    state = io.unflatten(io.load(tmp_path / "run.npz"))
    opt.load_state_dict(state["o"])
    sched.load_state_dict(state["s"])
    for metric in METRICS[9:]:
        opt.step()
        sched.step(metric)
        got.append(sched.get_last_lr())
    assert got == expected


@pytest.mark.parametrize("make, corrupt, error, message", [
    (lambda o: mg_sched.StepLR(o, 2), lambda s: s.pop("gamma"), KeyError,
     r"StepLR.load_state_dict: entries \['gamma'\] are missing"),
    (lambda o: mg_sched.StepLR(o, 2), lambda s: s.update(step_size=0), ValueError,
     "step_size must be a whole number ≥ 1, got 0"),
    (lambda o: mg_sched.ExponentialLR(o, 0.5), lambda s: s.update(base_lrs=np.ones(3)),
     ValueError, r"base_lrs must hold one number per parameter group \(2\)"),
    (lambda o: mg_sched.ExponentialLR(o, 0.5), lambda s: s.update(last_lr=np.array([1, np.nan])),
     ValueError, r"last_lr\[1\] must be a finite number"),
    (lambda o: mg_sched.CosineAnnealingLR(o, 5), lambda s: s.update(last_epoch=-3),
     ValueError, "last_epoch must be a whole number ≥ -1"),
    (lambda o: mg_sched.ReduceLROnPlateau(o), lambda s: s.update(mode="up"), ValueError,
     r"mode must be one of \('min', 'max'\), got 'up'"),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.LinearLR(o), mg_sched.StepLR(o, 2)], [3]),
     lambda s: s["schedulers"]["1"].pop("step_size"), KeyError, r"\['step_size'\] are missing"),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.LinearLR(o), mg_sched.StepLR(o, 2)], [3]),
     lambda s: s.update(milestones=np.array([4])), ValueError, r"milestones \[4\] but"),
])
def test_bad_scheduler_states_are_refused_and_change_nothing(make, corrupt, error, message):
    opt = _optimiser("minigrad", "SGD", 2)
    sched = make(opt)
    for _ in range(4):
        opt.step()
        sched.step(1.0) if isinstance(sched, mg_sched.ReduceLROnPlateau) else sched.step()
    state = sched.state_dict()
    before = io.flatten(state)
    corrupt(state)
    with pytest.raises(error, match=message):
        sched.load_state_dict(state)
    after = io.flatten(sched.state_dict())
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


# --------------------------------------------------------------------------- step order

def test_scheduler_step_before_optimizer_step_is_refused():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.StepLR(opt, step_size=1, gamma=0.5)
    with pytest.raises(RuntimeError, match=r"StepLR.step: the optimiser has not stepped since "
                                           r"this scheduler was created; call optimizer.step\(\)"):
        sched.step()
    assert sched.get_last_lr() == [0.1] and sched.last_epoch == 0    # nothing shifted
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [0.05]


@pytest.mark.parametrize("make, step", [
    (lambda o: mg_sched.ExponentialLR(o, 0.5), lambda s: s.step()),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.LinearLR(o), mg_sched.StepLR(o, 2)], [2]),
     lambda s: s.step()),
    (lambda o: mg_sched.ReduceLROnPlateau(o, patience=0), lambda s: s.step(1.0)),
])
def test_two_scheduler_steps_per_optimizer_step_are_refused(make, step):
    opt = _optimiser("minigrad", "SGD", 1)
    sched = make(opt)
    opt.step()
    step(sched)
    lr, epoch = sched.get_last_lr(), sched.last_epoch
    with pytest.raises(RuntimeError, match="has not stepped since this scheduler last stepped"):
        step(sched)
    assert (sched.get_last_lr(), sched.last_epoch) == (lr, epoch)


def test_per_epoch_stepping_after_many_optimizer_steps_is_fine():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        for _ in range(5):
            opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.1 * 0.5 ** 3]


def test_a_resumed_scheduler_waits_for_the_optimizer():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.ExponentialLR(opt, 0.5)
    opt.step()
    sched.step()
    state = sched.state_dict()
    fresh = _optimiser("minigrad", "SGD", 1)
    fresh.load_state_dict(opt.state_dict())
    resumed = mg_sched.ExponentialLR(fresh, 0.5)
    resumed.load_state_dict(state)
    with pytest.raises(RuntimeError):
        resumed.step()
    fresh.step()
    resumed.step()
    assert resumed.get_last_lr() == [0.025]


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("make, error, message", [
    (lambda o: mg_sched.StepLR(o, step_size=0), ValueError, "StepLR: step_size must be a whole"),
    (lambda o: mg_sched.StepLR(o, 2, gamma=-1), ValueError, "StepLR: gamma must be a finite"),
    (lambda o: mg_sched.StepLR([1.0], 2), TypeError, "StepLR: expected a minigrad.optim"),
    (lambda o: mg_sched.MultiStepLR(o, [0, 2]), ValueError, r"milestones\[0\] must be a whole"),
    (lambda o: mg_sched.ExponentialLR(o, float("nan")), ValueError, "gamma must be a finite"),
    (lambda o: mg_sched.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be a whole"),
    (lambda o: mg_sched.LinearLR(o, start_factor=0), ValueError, "start_factor must be"),
    (lambda o: mg_sched.LinearLR(o, end_factor=2), ValueError, "end_factor must be"),
    (lambda o: mg_sched.ConstantLR(o, factor=1.5), ValueError, "ConstantLR: factor must be"),
    (lambda o: mg_sched.ConstantLR(o, factor=0), ValueError, "factor must be a finite number > 0"),
    (lambda o: mg_sched.PolynomialLR(o, total_iters=0), ValueError, "total_iters must be"),
    (lambda o: mg_sched.LambdaLR(o, [lambda e: 1.0] * 3), ValueError,
     "lr_lambda has 3 values but the optimiser has 2 parameter groups"),
    (lambda o: mg_sched.LambdaLR(o, 0.5), TypeError, r"lr_lambda\[0\] must be a function"),
    (lambda o: mg_sched.OneCycleLR(o, max_lr=1.0), ValueError, "give total_steps, or epochs"),
    (lambda o: mg_sched.OneCycleLR(o, 1.0, 10, anneal_strategy="cosine"), ValueError,
     "anneal_strategy must be 'cos' or 'linear'"),
    (lambda o: mg_sched.OneCycleLR(optim.AdaGrad(o.params), 1.0, 10), ValueError,
     "cycle_momentum=True needs an optimiser with momentum or betas"),
    (lambda o: mg_sched.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor must be"),
    (lambda o: mg_sched.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode must be one of"),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.ReduceLROnPlateau(o)], []), ValueError,
     "is a ReduceLROnPlateau"),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.LinearLR(o), mg_sched.LinearLR(o)], [2, 3]),
     ValueError, "2 schedulers need 1 milestones, got 2"),
    (lambda o: mg_sched.SequentialLR(o, [mg_sched.LinearLR(_optimiser("minigrad", "SGD", 2))],
                                     []), ValueError, "belongs to another optimiser"),
    (lambda o: mg_sched.StepLR(o, 2, last_epoch=3), KeyError, "has no 'initial_lr'"),
])
def test_bad_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make(_optimiser("minigrad", "SGD", 2))


def test_one_cycle_refuses_steps_past_its_end():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    opt.step()
    with pytest.raises(ValueError, match="stepped 4 times, but the cycle has total_steps=3"):
        sched.step()


def test_plateau_refuses_a_nan_metric():
    opt = _optimiser("minigrad", "SGD", 1)
    sched = mg_sched.ReduceLROnPlateau(opt)
    opt.step()
    with pytest.raises(ValueError, match="the metric is NaN"):
        sched.step(float("nan"))
    sched.step(1.0)                         # the refused call did not count as a step
    assert sched.last_epoch == 1


# --------------------------------------------------------------------------- the plot

def test_plot_lr_schedule_draws_the_preview(tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad.viz import plot_lr_schedule

    opt = _optimiser("minigrad", "SGD", 2)
    sched = mg_sched.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=30)
    groups_before = [dict(g, params=None) for g in opt.param_groups]
    fig = plot_lr_schedule(sched, 31, path=tmp_path / "lr.png", log=True)
    assert [dict(g, params=None) for g in opt.param_groups] == groups_before
    assert sched.last_epoch == 0
    ax = fig.axes[0]
    expected = sched.preview(31)
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_title() == "OneCycleLR"
    for g, line in enumerate(ax.lines):
        np.testing.assert_array_equal(line.get_ydata(), expected[:, g])
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plateau = mg_sched.ReduceLROnPlateau(opt, patience=0)
    line = plot_lr_schedule(plateau, METRICS).axes[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), plateau.preview(METRICS)[:, 0])
    line = plot_lr_schedule([0.1, 0.05, 0.025], title="halving").axes[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.05, 0.025])


@pytest.mark.parametrize("schedule, steps, error, message", [
    ("scheduler", None, TypeError, "give steps"),
    ([], None, ValueError, r"got shape \(0,\)"),
    ([0.1, float("nan")], None, ValueError, "non-empty finite"),
    (np.ones((2, 2, 2)), None, ValueError, r"got shape \(2, 2, 2\)"),
    ({"lr": 1}, None, TypeError, "expected a scheduler or a list"),
])
def test_plot_lr_schedule_errors(schedule, steps, error, message):
    pytest.importorskip("matplotlib")
    from minigrad.viz import plot_lr_schedule

    if isinstance(schedule, str):
        schedule = mg_sched.StepLR(_optimiser("minigrad", "SGD", 1), 2)
    with pytest.raises(error, match=message):
        plot_lr_schedule(schedule, steps)


# torch's other way to resume: a new scheduler built with last_epoch on an optimiser whose
# groups already hold initial_lr (and, for OneCycleLR, max_lr, min_lr and the momenta).
LAST_EPOCH = [
    ("StepLR", lambda m, o, e: m.StepLR(o, 3, 0.5, last_epoch=e)),
    ("CosineAnnealingLR", lambda m, o, e: m.CosineAnnealingLR(o, 10, last_epoch=e)),
    ("ExponentialLR", lambda m, o, e: m.ExponentialLR(o, 0.9, last_epoch=e)),
    ("LinearLR", lambda m, o, e: m.LinearLR(o, 0.2, total_iters=6, last_epoch=e)),
    ("OneCycleLR", lambda m, o, e: m.OneCycleLR(o, 1.0, total_steps=20, last_epoch=e)),
]


@pytest.mark.parametrize("make", [m for _, m in LAST_EPOCH], ids=[n for n, _ in LAST_EPOCH])
def test_last_epoch_resumes_as_torch(make):
    pytest.importorskip("torch")
    import torch.optim.lr_scheduler as torch_sched

    sequences = []
    for module, lib in ((mg_sched, "minigrad"), (torch_sched, "torch")):
        opt = _optimiser(lib, "SGD", 2)
        sched = make(module, opt, -1)
        for _ in range(4):
            opt.step()
            sched.step()
        resumed = make(module, opt, 4)
        seq = [resumed.get_last_lr()]
        for _ in range(5):
            opt.step()
            resumed.step()
            seq.append(resumed.get_last_lr())
        sequences.append(seq)
    np.testing.assert_allclose(*sequences, rtol=1e-15, atol=0)
