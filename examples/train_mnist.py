"""Train the textbook's CNNs on MNIST with Adam, and keep everything it produces.

    python examples/train_mnist.py                      # full MNIST if found, else the subset
    python examples/train_mnist.py --model deep         # the book's chapter-8 DeepConvNet
    python examples/train_mnist.py --data-dir ~/mnist --epochs 10
    python examples/train_mnist.py --resume --epochs 15 # continue the run in runs/mnist
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
                    shuffling state, the epoch, the settings and the history, in one file
    history.json    per-epoch learning rate, train loss and accuracy (running averages over
                    the epoch), test loss and accuracy, and seconds
    history.png     the learning curves
    graph.svg       the graph of one batch's loss, grouped by layer (graph.dot without Graphviz)

The checkpoint is written after every epoch with ``minigrad.save``: to a temporary file, then
renamed over the previous one, so it always holds one whole epoch, never a mix of two. Its
entries are ``model.*`` (``model.load_state_dict`` reads them), ``optimizer.*``, ``loader.*``
and ``trainer.*`` (epoch, settings and history as JSON text in uint8 arrays).

A run never overwrites another silently: a non-empty ``--out`` needs ``--resume`` (continue)
or ``--overwrite`` (remove the previous run's files and start again). ``--resume`` continues
bit for bit as if the run had not stopped: same weights, same optimiser state, same batch order.
The data, ``--limit``, ``--batch-size`` and ``--seed`` must be those of the checkpoint (a
different value is refused); ``--epochs`` is the new total; ``--lr``, when given, replaces the
checkpoint's learning rate from the next step on, and the run says so (only with
``--schedule constant``: a schedule sets the rate itself; the schedule's state is in the
checkpoint too). Ctrl-C stops cleanly:
the last completed epoch stays on disk.
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

DEFAULT_EPOCHS = 10
DEFAULT_LR = 1e-3
CHECKPOINT = "checkpoint.npz"
# Everything a run writes into --out; --overwrite removes these (model.npz and optimizer.npz are
# the two-file checkpoint of earlier versions).
ARTIFACTS = (CHECKPOINT, "history.json", "history.png", "graph.svg", "graph.dot", "model.npz",
             "optimizer.npz")
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
    epoch's end. step: ``StepLR`` dividing the rate by 10 after each third of the epochs.
    """
    if name == "constant":
        return None
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if name == "step":
        return optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    raise ValueError(f"train_mnist: unknown schedule {name!r}; expected one of {SCHEDULES}")


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
    ap.add_argument("--model", choices=sorted(MODELS), default="simple",
                    help="simple: the book's SimpleConvNet (chapter 7, default); deep: its "
                         "DeepConvNet (chapter 8)")
    ap.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS,
                    help=f"train until this many epochs in total (default {DEFAULT_EPOCHS})")
    ap.add_argument("--schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE,
                    help="learning-rate schedule, stepped after each epoch: cosine (default) "
                         "anneals to 0 over --epochs, step divides by 10 after each third, "
                         "constant keeps --lr")
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
                            "--batch-size and --seed must be as before")
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
    graph = viz.draw_graph(model.loss(x, t), group_modules=True)
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


def save_checkpoint(out: Path, parts: dict, epoch: int, config: dict, history: dict) -> None:
    """Write ``checkpoint.npz`` (one atomic file), then history.json and history.png."""
    from minigrad.viz import plot_history

    state = {name: part.state_dict() for name, part in parts.items()}
    state["trainer"] = {"epoch": epoch, "config": text_array(config),
                        "history": text_array(history)}
    with deferred_interrupt():
        minigrad.save(state, out / CHECKPOINT)
        tmp = out / ".history.json.tmp"  # a fixed name: a killed write leaves no pile-up
        tmp.write_text(json.dumps(history, indent=1))
        tmp.replace(out / "history.json")
    name = MODEL_NAMES[config["model"]]
    plot_history(history, out / "history.png", title=f"{name} on MNIST ({config['data']})")


def resume(out: Path, parts: dict, config: dict, lr: float | None) -> tuple[int, dict | None]:
    """Load ``out/checkpoint.npz`` into ``parts``; returns (completed epochs, history)."""
    path = out / CHECKPOINT
    if not path.is_file():
        print(f"Resume: no checkpoint in {out}; starting from scratch")
        return 0, None
    try:
        flat = minigrad.load(path)
        trainer = section(flat, "trainer")
        saved = array_text(trainer["config"])
        epoch = int(trainer["epoch"])
        history = array_text(trainer["history"])
        if not isinstance(saved, dict) or not isinstance(history, dict):
            raise ValueError("trainer.config and trainer.history must be JSON objects")
        short = [k for k, v in history.items() if not isinstance(v, list) or len(v) < epoch]
        if epoch < 0 or short:
            raise ValueError(f"epoch {epoch} but the history of {short} is shorter")
        changed = {k: (saved.get(k, SETTING_DEFAULTS.get(k)), config[k]) for k in FIXED_SETTINGS
                   if saved.get(k, SETTING_DEFAULTS.get(k)) != config[k]}
        if not changed:
            for name, part in parts.items():
                entries = section(flat, name)
                part.load_state_dict(entries if isinstance(part, nn.Module)
                                     else io.unflatten(entries))
            history = {k: list(v)[:epoch] for k, v in history.items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        what = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyError):
            what = f"entry {exc} is missing"
        raise SystemExit(f"Resume: {path} is not a usable checkpoint ({what}); use --overwrite "
                         "or another --out to start afresh") from None
    if changed:
        raise SystemExit(f"Resume: the checkpoint in {out} was made with different settings "
                         f"(saved, now): {changed}; use --overwrite or another --out to start "
                         "afresh")
    opt = parts["optimizer"]
    print(f"Resume: continuing from epoch {epoch} in {out}")
    if lr is not None and "schedule" in parts:
        raise SystemExit(f"Resume: --lr {lr:g} cannot replace the learning rate of a "
                         f"--schedule {config['schedule']} run (the schedule sets it every "
                         "epoch); resume without --lr, or start afresh with --overwrite")
    if lr is not None and lr != opt.lr:
        print(f"Resume: learning rate {opt.lr:g} (checkpoint) -> {lr:g} (--lr)")
        opt.lr = lr
    return epoch, history


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


def main(argv: list[str] | None = None) -> dict:
    """Run the training; returns the history (lists per epoch). See the module docstring."""
    args = parse_args(argv)
    if args.threads is not None:
        minigrad.set_num_threads(args.threads)
    out = Path(args.out)
    prepare_out(out, args)
    (x_train, t_train), (x_test, t_test), data_kind = load_data(args)

    nn.manual_seed(args.seed)
    model = MODELS[args.model]()
    opt = optim.Adam(model.parameters(), lr=DEFAULT_LR if args.lr is None else args.lr)
    loader = DataLoader(x_train, t_train, batch_size=args.batch_size, shuffle=True,
                        seed=args.seed)
    # What the checkpoint holds besides the trainer's own entries: each part has state_dict
    # and load_state_dict. A learning-rate schedule joins as parts["schedule"] = scheduler.
    parts = {"model": model, "optimizer": opt, "loader": loader}
    schedule = make_schedule(args.schedule, opt, args.epochs)
    if schedule is not None:
        parts["schedule"] = schedule
    config = {"data": data_kind, "train_images": len(x_train), "batch_size": args.batch_size,
              "seed": args.seed, "model": args.model, "schedule": args.schedule}
    history = None
    start_epoch = 0
    if args.resume:
        start_epoch, history = resume(out, parts, config, args.lr)
    if history is None:
        history = {"epoch": [], "lr": [], "train_loss": [], "train_acc": [], "test_loss": [],
                   "test_acc": [], "seconds": []}
    # A checkpoint from before the learning rate was recorded: its epochs' rates are unknown.
    history.setdefault("lr", [None] * len(history["epoch"]))
    if start_epoch == 0 or not any(out.glob("graph.*")):
        drawn = save_graph(model, x_train[:args.batch_size], t_train[:args.batch_size], out)
        print(f"Graph of one batch's loss: {out / drawn}")
    if start_epoch >= args.epochs:
        print(f"Already trained for {plural(start_epoch, 'epoch')}; ask for more with --epochs")
        return history

    threads = minigrad.get_num_threads()
    print(f"Model: {type(model).__name__}, {model.num_parameters():,} parameters; "
          f"Adam(lr={opt.lr:g}), batch {args.batch_size}, {plural(args.epochs, 'epoch')}, "
          f"{plural(threads, 'thread')}")
    print(f"Learning rate: {args.schedule} schedule, stepped after each epoch")
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, args.epochs + 1):
            lr = opt.lr
            train_loss, train_acc, seconds = train_epoch(
                model, opt, loader, f"epoch {epoch}/{args.epochs}")
            test_loss, test_acc = evaluate(model, x_test, t_test)
            if schedule is not None:
                schedule.step()
            for key, value in (("epoch", epoch), ("lr", lr), ("train_loss", train_loss),
                               ("train_acc", train_acc), ("test_loss", test_loss),
                               ("test_acc", test_acc), ("seconds", seconds)):
                history[key].append(value)
            print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, acc "
                  f"{train_acc:.4f} | test loss {test_loss:.4f}, acc {test_acc:.4f} | "
                  f"lr {lr:.2g}, {seconds:.1f} s", flush=True)
            save_checkpoint(out, parts, epoch, config, history)
    except KeyboardInterrupt:
        done = len(history["epoch"])
        print(f"\nInterrupted during epoch {epoch}; the checkpoint of epoch {done} is in {out} "
              f"(continue with --resume)")
        return history
    print(f"Saved {CHECKPOINT}, history.json and history.png in {out}")
    return history


if __name__ == "__main__":
    main()
