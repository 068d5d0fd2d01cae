"""Train the textbook's CNNs on MNIST with Adam, and keep everything it produces.

    python examples/train_mnist.py                      # full MNIST if found, else the subset
    python examples/train_mnist.py --model deep         # the book's chapter-8 DeepConvNet
    python examples/train_mnist.py --data-dir ~/mnist --epochs 10
    python examples/train_mnist.py --resume             # continue the run in runs/mnist
    python examples/train_mnist.py --resume --epochs 15 # ... up to epoch 15
    python examples/train_mnist.py --overwrite          # start runs/mnist afresh
    python examples/train_mnist.py --threads 1          # one core (default: all of them)
    python examples/train_mnist.py --schedule constant  # keep Adam's learning rate fixed

Full MNIST is used when its four files are found in ``--data-dir``, ``$MINIGRAD_DATA`` or
``~/.cache/minigrad/mnist`` (and match the published files); nothing is downloaded here
(``minigrad.data.load_mnist()`` does that). Otherwise the 10,000/2,000-image subset shipped with
minigrad is used. The first line printed says which.

Each epoch shows a progress bar (loss, running accuracy, images/s) and then the train and test
accuracy. The output folder (``--out``, default ``runs/mnist``) receives:

    checkpoint.npz  everything needed to continue: the model, the optimiser, the data loader's
                    shuffling state, the schedule, the dropout generator, the epoch, the
                    settings and the history, in one file
    best.npz        the model of the epoch with the best test accuracy (the first of equals),
                    with that epoch and accuracy
    history.json    per-epoch learning rate, train loss and accuracy (running averages over
                    the epoch), test loss and accuracy, and seconds; the best epoch under "best"
    history.png     the learning curves and the learning rate
    graph.svg       the graph of one batch's loss, grouped by layer (graph.dot without Graphviz)

The checkpoint is written after every epoch with ``minigrad.save``: to a temporary file, then
renamed over the previous one, so it always holds one whole epoch, never a mix of two. Its
entries are ``model.*`` (``model.load_state_dict`` reads them), ``optimizer.*``, ``loader.*``,
``schedule.*`` (not with ``--schedule constant``), ``dropout.*`` (for a model with dropout:
DeepConvNet) and ``trainer.*`` (epoch, settings and history as JSON text in uint8 arrays).
``best.npz`` is written the same way, before the checkpoint of the epoch that improved on it.

A run never overwrites another silently: a non-empty ``--out`` needs ``--resume`` (continue)
or ``--overwrite`` (remove the previous run's files and start again). ``--resume`` continues
bit for bit as if the run had not stopped: same weights, same optimiser state, same schedule,
same batch order, same dropout masks. ``--model``, ``--schedule`` and ``--epochs`` left out
take the checkpoint's values. The data, ``--limit``, ``--batch-size``, ``--seed``, ``--model``
and ``--schedule`` must be those of the checkpoint (a different value is refused).
``--epochs`` is the new total; under a cosine or step schedule, whose shape follows the total,
a new total replans the rest of the schedule: from the next epoch on the rate is that of an
uninterrupted run of the new total, and the run says so. ``--lr``, when given, replaces the
checkpoint's learning rate from the next step on, and the run says so (only with
``--schedule constant``: a schedule sets the rate itself). Ctrl-C stops cleanly: the last
completed epoch stays on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

try:
    import minigrad
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import minigrad

from minigrad import functional as F
from minigrad import io, nn, optim
from minigrad.data import DataLoader, find_mnist, load_mnist
from minigrad.models import DeepConvNet, SimpleConvNet
from minigrad.ops.dropout import generator as dropout_generator

DEFAULT_EPOCHS = 10
DEFAULT_LR = 1e-3
CHECKPOINT = "checkpoint.npz"
BEST = "best.npz"
# Everything a run writes into --out; --overwrite removes these (model.npz and optimizer.npz are
# the two-file checkpoint of earlier versions).
ARTIFACTS = (CHECKPOINT, "history.json", "history.png", "graph.svg", "graph.dot", BEST,
             "model.npz", "optimizer.npz")
# The settings a checkpoint must be resumed with: changing any would not continue the same run.
FIXED_SETTINGS = ("data", "train_images", "batch_size", "seed", "model", "schedule")
# --model: the book's chapter-7 SimpleConvNet or its chapter-8 DeepConvNet.
MODELS = {"simple": SimpleConvNet, "deep": DeepConvNet}
MODEL_NAMES = {key: cls.__name__ for key, cls in MODELS.items()}
# What a checkpoint made before a setting existed was made with.
SETTING_DEFAULTS = {"model": "simple", "schedule": "constant"}
# --schedule: how the learning rate moves from epoch to epoch (stepped once per epoch).
SCHEDULES = ("cosine", "step", "constant")
DEFAULT_SCHEDULE = "cosine"


def make_schedule(name: str, opt: optim.Optimizer, epochs: int):
    """The per-epoch learning-rate schedule ``name`` over ``epochs`` epochs, or None (constant).

    cosine: ``CosineAnnealingLR(T_max=epochs)``, from the initial rate down to 0 at the last
    epoch's end. step: ``StepLR`` dividing the rate by 10 after each third of the epochs
    (rounded up, so the rate takes at most three values: 5 epochs run 2, 2 and 1).
    """
    if name == "constant":
        return None
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if name == "step":
        return optim.lr_scheduler.StepLR(opt, step_size=-(-epochs // 3), gamma=0.1)
    raise ValueError(f"train_mnist: unknown schedule {name!r}; expected one of {SCHEDULES}")


def planned_schedule(name: str, lr: float, epochs: int, done: int):
    """The schedule ``name`` of an ``epochs``-epoch run starting at ``lr``, as it stands after
    ``done`` epochs, and the learning rate it sets for the next one.

    It is stepped on a stand-in optimiser, so its state and rates are bit for bit those of an
    uninterrupted run of ``epochs`` epochs at that point.
    """
    stand_in = optim.Adam([nn.Parameter(np.zeros(1))], lr=lr)
    schedule = make_schedule(name, stand_in, epochs)
    for _ in range(done):
        stand_in.step()  # no gradient, so nothing but the step count the schedule checks
        schedule.step()
    return schedule, stand_in.lr


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class DropoutRNG:
    """The generator dropout draws its masks from, as a checkpoint part.

    Dropout layers given no ``rng=`` (DeepConvNet's) share minigrad's dropout generator, which
    ``nn.manual_seed`` seeds; the masks of the epochs after a checkpoint depend on its state
    there. The state is kept as JSON text in a uint8 array, as the data loader keeps its own.
    """

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"rng": text_array(dropout_generator().bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        saved = array_text(state["rng"])
        bits = dropout_generator().bit_generator
        kind = type(bits).__name__
        if not isinstance(saved, dict) or saved.get("bit_generator") != kind:
            raise ValueError(f"dropout.rng is not the state of a {kind} generator")
        bits.state = saved


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text}")
    return value


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Train the textbook's CNN on MNIST (full set when found, else the subset).")
    ap.add_argument("--model", choices=sorted(MODELS), default=None,
                    help="simple: the book's SimpleConvNet (chapter 7, default); deep: its "
                         "DeepConvNet (chapter 8); with --resume, the checkpoint's")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help=f"train until this many epochs in total (default {DEFAULT_EPOCHS}; "
                         "with --resume, the checkpoint's)")
    ap.add_argument("--schedule", choices=SCHEDULES, default=None,
                    help="learning-rate schedule, stepped after each epoch: cosine anneals to 0 "
                         "over --epochs, step divides by 10 after each third, constant keeps "
                         f"--lr (default {DEFAULT_SCHEDULE}; with --resume, the checkpoint's)")
    ap.add_argument("--batch-size", type=positive_int, default=100,
                    help="images per step (default 100)")
    ap.add_argument("--lr", type=positive_float, default=None,
                    help=f"Adam's learning rate (default {DEFAULT_LR:g}; with --resume, the "
                         "checkpoint's unless given)")
    ap.add_argument("--data-dir", default=None,
                    help="folder holding the four MNIST files (default: $MINIGRAD_DATA, then "
                         "~/.cache/minigrad/mnist)")
    ap.add_argument("--subset", action="store_true",
                    help="use the 10,000/2,000-image subset shipped with minigrad")
    ap.add_argument("--limit", type=positive_int, default=None, metavar="N",
                    help="use only the first N training and N test images (quick checks)")
    ap.add_argument("--out", default="runs/mnist", help="output folder (default runs/mnist)")
    ap.add_argument("--seed", type=non_negative_int, default=0,
                    help="seeds the initial weights and the batch order (default 0)")
    ap.add_argument("--threads", type=positive_int, default=None, metavar="N",
                    help="threads minigrad splits its big ops over (default: "
                         "minigrad.get_num_threads(), one per core)")
    again = ap.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --out; the data, --limit, "
                            "--batch-size, --seed, --model and --schedule must be as before")
    again.add_argument("--overwrite", action="store_true",
                       help="remove a previous run's files from --out and start afresh")
    args = ap.parse_args(argv)
    if args.data_dir is not None and args.subset:
        ap.error("--data-dir and --subset exclude each other")
    if args.data_dir is not None:
        folder = Path(args.data_dir).expanduser()
        if find_mnist(folder) != folder:
            ap.error(f"--data-dir {folder} does not hold the four MNIST files "
                     f"(train-images-idx3-ubyte.gz, ...)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        ap.error(f"--out {out} is a file, not a folder")
    return args


def load_data(args: argparse.Namespace):
    """((x_train, t_train), (x_test, t_test)) and "full" or "subset"; prints where from."""
    folder = None if args.subset else find_mnist(args.data_dir)
    if folder is not None:
        try:
            (x_train, t_train), (x_test, t_test) = load_mnist(folder, download=False)
        except ValueError as exc:  # a file that is not MNIST's: say which, without a traceback
            raise SystemExit(f"Data: {exc}") from None
        source, note = f"full MNIST from {folder}", None
    else:
        (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)
        source, note = "the MNIST subset shipped with minigrad", None
        if not args.subset:
            note = ("full MNIST not found: pass --data-dir or set MINIGRAD_DATA; "
                    "load_mnist() downloads it")
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    print(f"Data: {source}: {len(x_train):,} training and {len(x_test):,} test images")
    if note:
        print(f"      ({note})")
    return (x_train, t_train), (x_test, t_test), "subset" if folder is None else "full"


def prepare_out(out: Path, args: argparse.Namespace) -> None:
    """Create ``out``; refuse to mix runs in it; with --overwrite remove the previous run."""
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:
        removed = [name for name in ARTIFACTS if (out / name).is_file()]
        for name in removed:
            (out / name).unlink()
        if removed:
            print(f"Overwrite: removed {', '.join(removed)} from {out}")
        return
    if (out / CHECKPOINT).is_file() and args.resume:
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        why = (f"it holds no {CHECKPOINT} to resume from" if args.resume
               else "it holds another run")
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise SystemExit(f"{out} is not empty ({shown}) and {why}: pass --resume to continue "
                         "a run, --overwrite to start afresh, or another --out")


@contextlib.contextmanager
def deferred_interrupt():
    """Hold Ctrl-C until the block ends, so a checkpoint is never half written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def evaluate(model: nn.Module, x: np.ndarray, t: np.ndarray,
             batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and accuracy over (x, t), without recording a graph."""
    model.eval()
    logits = model.predict(x, batch_size)
    with minigrad.no_grad():
        loss = F.softmax_cross_entropy(minigrad.Tensor(logits), t).item()
    return loss, float((logits.argmax(axis=1) == t).mean())


def save_graph(model: nn.Module, x: np.ndarray, t: np.ndarray, out: Path) -> str:
    """Draw one batch's loss, grouped by layer, as graph.svg (or graph.dot without Graphviz)."""
    from minigrad import viz

    model.train()
    rng = dropout_generator().bit_generator
    drawn_from = rng.state
    try:
        graph = viz.draw_graph(model.loss(x, t), group_modules=True)
    finally:  # the masks of this one batch must not shift the training's
        rng.state = drawn_from
    try:
        viz.render_graph(graph, out / "graph.svg")
        (out / "graph.dot").unlink(missing_ok=True)
        return "graph.svg"
    except viz.DotNotFoundError:
        viz.save_dot(graph, out / "graph.dot")
        (out / "graph.svg").unlink(missing_ok=True)
        return "graph.dot\n      (Graphviz's dot program is missing: install it to get graph.svg)"


def text_array(value) -> np.ndarray:
    """JSON text as a uint8 array: checkpoints hold numbers only."""
    return np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8).copy()


def array_text(array: np.ndarray):
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))


def section(flat: dict, name: str) -> dict:
    """The entries of ``flat`` under ``name.``, with that prefix removed."""
    prefix = name + "."
    return {key[len(prefix):]: value for key, value in flat.items() if key.startswith(prefix)}


def save_checkpoint(out: Path, parts: dict, epoch: int, config: dict, history: dict,
                    best: nn.Module | None = None) -> None:
    """Write ``best.npz`` when ``best`` is given (the model of a new best epoch), then
    ``checkpoint.npz`` (each one atomic file), then history.json and history.png."""
    from minigrad.viz import plot_history

    state = {name: part.state_dict() for name, part in parts.items()}
    state["trainer"] = {"epoch": epoch, "config": text_array(config),
                        "history": text_array(history)}
    with deferred_interrupt():
        if best is not None:  # first: a checkpoint never names a best epoch not yet on disk
            minigrad.save({"model": best.state_dict(), "epoch": epoch,
                           "test_acc": history["test_acc"][-1]}, out / BEST)
        minigrad.save(state, out / CHECKPOINT)
        tmp = out / ".history.json.tmp"  # a fixed name: a killed write leaves no pile-up
        tmp.write_text(json.dumps(history, indent=1))
        tmp.replace(out / "history.json")
    name = MODEL_NAMES[config["model"]]
    plot_history(history, out / "history.png", title=f"{name} on MNIST ({config['data']})",
                 lr_key="lr")


def unusable(path: Path, exc: Exception) -> SystemExit:
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyError):
        what = f"entry {exc} is missing"
    return SystemExit(f"Resume: {path} is not a usable checkpoint ({what}); use --overwrite or "
                      "another --out to start afresh")


LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError)


def read_checkpoint(out: Path) -> dict | None:
    """``out/checkpoint.npz``, checked, as {"path", "flat", "epoch", "config", "history"};
    None (and a note) when there is none."""
    path = out / CHECKPOINT
    if not path.is_file():
        print(f"Resume: no checkpoint in {out}; starting from scratch")
        return None
    try:
        flat = minigrad.load(path)
        trainer = section(flat, "trainer")
        saved = array_text(trainer["config"])
        epoch = int(trainer["epoch"])
        history = array_text(trainer["history"])
        if not isinstance(saved, dict) or not isinstance(history, dict):
            raise ValueError("trainer.config and trainer.history must be JSON objects")
        best = history.pop("best", None)
        short = [k for k, v in history.items() if not isinstance(v, list) or len(v) < epoch]
        if epoch < 0 or short:
            raise ValueError(f"epoch {epoch} but the history of {short} is shorter")
        if best is not None and not (isinstance(best, dict)
                                     and best.keys() == {"epoch", "test_acc"}
                                     and isinstance(best["epoch"], int)
                                     and 1 <= best["epoch"] <= epoch
                                     and isinstance(best["test_acc"], (int, float))):
            raise ValueError(f"history's best is {best!r}, not the epoch (1 to {epoch}) and "
                             "test accuracy of the best epoch")
        planned = saved.get("epochs", DEFAULT_EPOCHS)
        if isinstance(planned, bool) or not isinstance(planned, int) or planned < 1:
            raise ValueError(f"the planned epochs are {planned!r}, not a positive integer")
        if saved.get("schedule", SETTING_DEFAULTS["schedule"]) not in SCHEDULES:
            raise ValueError(f"unknown schedule {saved['schedule']!r}")
        history = {k: list(v)[:epoch] for k, v in history.items()}
        if best is not None:
            history["best"] = best
    except LOAD_ERRORS as exc:
        raise unusable(path, exc) from None
    return {"path": path, "flat": flat, "epoch": epoch, "config": saved, "history": history}


def restore(checkpoint: dict, parts: dict, config: dict, lr: float | None) -> None:
    """Load the checkpoint into ``parts`` once its settings are found to be ``config``'s."""
    path, saved, epoch = checkpoint["path"], checkpoint["config"], checkpoint["epoch"]
    changed = {k: (saved.get(k, SETTING_DEFAULTS.get(k)), config[k]) for k in FIXED_SETTINGS
               if saved.get(k, SETTING_DEFAULTS.get(k)) != config[k]}
    if changed:
        raise SystemExit(f"Resume: the checkpoint in {path.parent} was made with different "
                         f"settings (saved, now): {changed}; resume with the saved ones (leave "
                         "out --model and --schedule to get the checkpoint's), or use "
                         "--overwrite or another --out to start afresh")
    try:
        for name, part in parts.items():
            entries = section(checkpoint["flat"], name)
            part.load_state_dict(entries if isinstance(part, nn.Module)
                                 else io.unflatten(entries))
    except LOAD_ERRORS as exc:
        raise unusable(path, exc) from None
    opt = parts["optimizer"]
    print(f"Resume: continuing from epoch {epoch} in {path.parent}")
    if lr is not None and "schedule" in parts:
        raise SystemExit(f"Resume: --lr {lr:g} cannot replace the learning rate of a "
                         f"--schedule {config['schedule']} run (the schedule sets it every "
                         "epoch); resume without --lr, or start afresh with --overwrite")
    if lr is not None and lr != opt.lr:
        print(f"Resume: learning rate {opt.lr:g} (checkpoint) -> {lr:g} (--lr)")
        opt.lr = lr


def replan(checkpoint: dict, parts: dict, config: dict) -> None:
    """After ``--epochs`` changed the total: make the schedule that of a run of the new total
    from the next epoch on (cosine and step take their shape from the total), and say so."""
    schedule, opt, done = parts["schedule"], parts["optimizer"], checkpoint["epoch"]
    plan, lr = planned_schedule(config["schedule"], schedule.base_lrs[0], config["epochs"], done)
    if same_state(plan.state_dict(), schedule.state_dict()):
        return
    before = checkpoint["config"].get("epochs")
    print(f"Resume: --epochs {config['epochs']} changes the {config['schedule']} schedule "
          f"planned over {plural(before, 'epoch') if before else 'another total'}: from epoch "
          f"{done + 1} on,\n        the rate is that of a {config['epochs']}-epoch run "
          f"(epoch {done + 1}: lr {lr:.2g} instead of {opt.lr:.2g})")
    schedule.load_state_dict(plan.state_dict())
    opt.lr = lr


def train_epoch(model: nn.Module, opt: optim.Optimizer, loader: DataLoader,
                desc: str) -> tuple[float, float, float]:
    """One pass over the loader; returns (mean loss, running accuracy, seconds)."""
    from tqdm import tqdm

    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    with tqdm(loader, desc=desc, unit="batch", leave=False, disable=None,
              dynamic_ncols=True) as bar:
        for step, (x, t) in enumerate(bar, start=1):
            logits = model(x)
            loss = F.softmax_cross_entropy(logits, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n = len(t)
            total_loss += loss.item() * n
            correct += int((logits.data.argmax(axis=1) == t).sum())
            seen += n
            if step % 10 == 0 or step == len(loader):
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"loss {total_loss / seen:.4f}, acc {correct / seen:.4f}, "
                                    f"{rate:,.0f} img/s", refresh=False)
    return total_loss / seen, correct / seen, time.perf_counter() - start


def option(key: str, given, saved: dict | None, default):
    """An option's value: as given; else, resuming, the checkpoint's; else the default."""
    if given is not None:
        return given
    if saved is not None:  # a checkpoint made before the option existed: what it was made with
        return saved.get(key, SETTING_DEFAULTS.get(key, default))
    return default


def main(argv: list[str] | None = None) -> dict:
    """Run the training; returns the history (lists per epoch, and the best epoch under
    ``"best"``). See the module docstring."""
    args = parse_args(argv)
    if args.threads is not None:
        minigrad.set_num_threads(args.threads)
    out = Path(args.out)
    prepare_out(out, args)
    (x_train, t_train), (x_test, t_test), data_kind = load_data(args)
    checkpoint = read_checkpoint(out) if args.resume else None
    saved = checkpoint["config"] if checkpoint else None
    model_name = option("model", args.model, saved, "simple")
    schedule_name = option("schedule", args.schedule, saved, DEFAULT_SCHEDULE)
    epochs = option("epochs", args.epochs, saved, DEFAULT_EPOCHS)

    nn.manual_seed(args.seed)
    model = MODELS[model_name]()
    opt = optim.Adam(model.parameters(), lr=DEFAULT_LR if args.lr is None else args.lr)
    loader = DataLoader(x_train, t_train, batch_size=args.batch_size, shuffle=True,
                        seed=args.seed)
    # What the checkpoint holds besides the trainer's own entries: each part has state_dict
    # and load_state_dict.
    parts = {"model": model, "optimizer": opt, "loader": loader}
    schedule = make_schedule(schedule_name, opt, epochs)
    if schedule is not None:
        parts["schedule"] = schedule
    if any(isinstance(m, nn.Dropout) for m in model.modules()):
        parts["dropout"] = DropoutRNG()
    config = {"data": data_kind, "train_images": len(x_train), "batch_size": args.batch_size,
              "seed": args.seed, "model": model_name, "schedule": schedule_name,
              "epochs": epochs}
    history = None
    start_epoch = 0
    if checkpoint is not None:
        restore(checkpoint, parts, config, args.lr)
        start_epoch, history = checkpoint["epoch"], checkpoint["history"]
        if schedule is not None and start_epoch < epochs:
            replan(checkpoint, parts, config)
    if history is None:
        history = {"epoch": [], "lr": [], "train_loss": [], "train_acc": [], "test_loss": [],
                   "test_acc": [], "seconds": []}
    # A checkpoint from before the learning rate was recorded: its epochs' rates are unknown.
    history.setdefault("lr", [None] * len(history["epoch"]))
    if start_epoch == 0 or not any(out.glob("graph.*")):
        drawn = save_graph(model, x_train[:args.batch_size], t_train[:args.batch_size], out)
        print(f"Graph of one batch's loss: {out / drawn}")
    if start_epoch >= epochs:
        print(f"Already trained for {plural(start_epoch, 'epoch')}; ask for more with --epochs")
        print_best(history, out)
        return history

    threads = minigrad.get_num_threads()
    nn.summary(model, (1, *x_train.shape[1:]))  # the layers, their output shapes and sizes
    print(f"Model: {type(model).__name__}, {model.num_parameters():,} parameters; "
          f"Adam(lr={opt.lr:g}), batch {args.batch_size}, {plural(epochs, 'epoch')}, "
          f"{plural(threads, 'thread')}")
    print(f"Learning rate: {schedule_name} schedule, stepped after each epoch")
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            lr = opt.lr
            train_loss, train_acc, seconds = train_epoch(
                model, opt, loader, f"epoch {epoch}/{epochs}")
            test_loss, test_acc = evaluate(model, x_test, t_test)
            if schedule is not None:
                schedule.step()
            for key, value in (("epoch", epoch), ("lr", lr), ("train_loss", train_loss),
                               ("train_acc", train_acc), ("test_loss", test_loss),
                               ("test_acc", test_acc), ("seconds", seconds)):
                history[key].append(value)
            # The earliest epoch of the highest test accuracy.
            improved = "best" not in history or test_acc > history["best"]["test_acc"]
            if improved:
                history["best"] = {"epoch": epoch, "test_acc": test_acc}
            print(f"epoch {epoch}/{epochs}: train loss {train_loss:.4f}, acc "
                  f"{train_acc:.4f} | test loss {test_loss:.4f}, acc {test_acc:.4f} | "
                  f"lr {lr:.2g}, {seconds:.1f} s", flush=True)
            save_checkpoint(out, parts, epoch, config, history, model if improved else None)
    except KeyboardInterrupt:
        done = len(history["epoch"])
        print(f"\nInterrupted during epoch {epoch}; the checkpoint of epoch {done} is in {out} "
              f"(continue with --resume)")
        return history
    print(f"Saved {CHECKPOINT}, {BEST}, history.json and history.png in {out}")
    print_best(history, out)
    return history


def print_best(history: dict, out: Path) -> None:
    best = history.get("best")
    if best is not None:
        print(f"Best test accuracy {best['test_acc']:.4f} at epoch {best['epoch']}: its weights "
              f"are in {out / BEST}")


if __name__ == "__main__":
    main()
