"""Train the textbook CNN (SimpleConvNet) on MNIST with Adam, and keep everything it produces.

    python examples/train_mnist.py                      # full MNIST if found, else the subset
    python examples/train_mnist.py --data-dir ~/mnist --epochs 10
    python examples/train_mnist.py --resume             # continue from runs/mnist
    python examples/train_mnist.py --threads 1          # one core (default: all of them)

Full MNIST is used when its four files are found in ``--data-dir``, ``$MINIGRAD_DATA`` or
``~/.cache/minigrad/mnist``; nothing is downloaded here (``minigrad.data.load_mnist()`` does that).
Otherwise the 10,000/2,000-image subset shipped with minigrad is used. One line says which.

Each epoch shows a progress bar (loss, running accuracy, images/s) and then the train and test
accuracy. The output folder (``--out``, default ``runs/mnist``) receives:

    history.json    per-epoch train loss and accuracy (running averages over the epoch),
                    test loss and accuracy, and seconds
    history.png     the learning curves
    graph.svg       the graph of one batch's loss, grouped by layer (graph.dot without Graphviz)
    model.npz       the parameters, by name (``model.load_state_dict(minigrad.io.load(path))``)
    optimizer.npz   the optimiser state, the epoch counter and the loader's RNG state

The checkpoint is written after every epoch; ``--resume`` continues from it exactly as if the
run had not stopped. Ctrl-C stops cleanly: the last completed epoch stays on disk.
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
from minigrad.models import SimpleConvNet

DEFAULT_EPOCHS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Train the textbook CNN on MNIST (full set when found, else the subset).")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                    help=f"train until this many epochs in total (default {DEFAULT_EPOCHS})")
    ap.add_argument("--batch-size", type=int, default=100, help="images per step (default 100)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    ap.add_argument("--data-dir", default=None,
                    help="folder holding the four MNIST files (default: $MINIGRAD_DATA, then "
                         "~/.cache/minigrad/mnist)")
    ap.add_argument("--subset", action="store_true",
                    help="use the 10,000/2,000-image subset shipped with minigrad")
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="use only the first N training and N test images (quick checks)")
    ap.add_argument("--out", default="runs/mnist", help="output folder (default runs/mnist)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seeds the initial weights and the batch order (default 0)")
    ap.add_argument("--threads", type=int, default=None, metavar="N",
                    help="threads minigrad splits its big ops over (default: "
                         "minigrad.get_num_threads(), one per core)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint in --out, with its learning rate; the "
                         "data, --limit, --batch-size and --seed must be as before")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.lr <= 0:
        ap.error(f"--lr must be positive, got {args.lr}")
    if args.data_dir is not None and args.subset:
        ap.error("--data-dir and --subset exclude each other")
    if args.data_dir is not None:
        folder = Path(args.data_dir).expanduser()
        if find_mnist(folder) != folder:
            ap.error(f"--data-dir {folder} does not hold the four MNIST files "
                     f"(train-images-idx3-ubyte.gz, ...)")
    return args


def load_data(args: argparse.Namespace):
    """((x_train, t_train), (x_test, t_test)) and a one-line description of where from."""
    folder = None if args.subset else find_mnist(args.data_dir)
    if folder is not None:
        (x_train, t_train), (x_test, t_test) = load_mnist(folder, download=False)
        source = f"full MNIST from {folder}"
    else:
        (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)
        source = "the MNIST subset shipped with minigrad"
        if not args.subset:
            source += (" (full MNIST not found: pass --data-dir or set MINIGRAD_DATA; "
                       "minigrad.data.load_mnist() downloads it)")
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    print(f"Data: {source}: {len(x_train):,} training and {len(x_test):,} test images")
    return (x_train, t_train), (x_test, t_test), "subset" if folder is None else "full"


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


def evaluate(model: SimpleConvNet, x: np.ndarray, t: np.ndarray,
             batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and accuracy over (x, t), without recording a graph."""
    model.eval()
    logits = model.predict(x, batch_size)
    with minigrad.no_grad():
        loss = F.softmax_cross_entropy(minigrad.Tensor(logits), t).item()
    return loss, float((logits.argmax(axis=1) == t).mean())


def save_graph(model: SimpleConvNet, x: np.ndarray, t: np.ndarray, out: Path) -> str:
    """Draw one batch's loss, grouped by layer, as graph.svg (or graph.dot without Graphviz)."""
    from minigrad import viz

    model.train()
    graph = viz.draw_graph(model.loss(x, t), group_modules=True)
    try:
        viz.render_graph(graph, out / "graph.svg")
        return "graph.svg"
    except viz.DotNotFoundError:
        viz.save_dot(graph, out / "graph.dot")
        return "graph.dot (Graphviz's dot program is missing: install it to get graph.svg)"


def save_checkpoint(out: Path, model: SimpleConvNet, opt: optim.Optimizer,
                    loader: DataLoader, epoch: int, config: dict, history: dict) -> None:
    from minigrad.viz import plot_history

    with deferred_interrupt():
        io.save(model.state_dict(), out / "model.npz")
        io.save({"optimizer": opt.state_dict(),
                 "trainer": {"epoch": epoch,
                             "loader_rng": json.dumps(loader.rng.bit_generator.state),
                             "config": json.dumps(config)}},
                out / "optimizer.npz")
        tmp = out / ".history.json.tmp"
        tmp.write_text(json.dumps(history, indent=1))
        tmp.replace(out / "history.json")
    plot_history(history, out / "history.png", title=f"SimpleConvNet on MNIST ({config['data']})")


def resume(out: Path, model: SimpleConvNet, opt: optim.Optimizer, loader: DataLoader,
           config: dict) -> tuple[int, dict | None]:
    """Load the checkpoint in ``out``; returns (completed epochs, history)."""
    files = [out / name for name in ("model.npz", "optimizer.npz", "history.json")]
    if not any(f.is_file() for f in files):
        print(f"Resume: no checkpoint in {out}; starting from scratch")
        return 0, None
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"Resume: the checkpoint in {out} is incomplete: {', '.join(missing)} "
                         f"missing; use another --out to start afresh")
    state = io.unflatten(io.load(out / "optimizer.npz"))
    trainer = state["trainer"]
    saved = json.loads(str(trainer["config"]))
    if saved != config:
        changed = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        raise SystemExit(f"Resume: the checkpoint in {out} was made with different settings "
                         f"(saved, now): {changed}; use another --out to start afresh")
    model.load_state_dict(io.load(out / "model.npz"))
    opt.load_state_dict(state["optimizer"])
    loader.rng.bit_generator.state = json.loads(str(trainer["loader_rng"]))
    epoch = int(trainer["epoch"])
    history = json.loads((out / "history.json").read_text())
    history = {k: v[:epoch] for k, v in history.items()}
    print(f"Resume: continuing from epoch {epoch} in {out}")
    return epoch, history


def train_epoch(model: SimpleConvNet, opt: optim.Optimizer, loader: DataLoader,
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
    out.mkdir(parents=True, exist_ok=True)
    (x_train, t_train), (x_test, t_test), data_kind = load_data(args)

    nn.manual_seed(args.seed)
    model = SimpleConvNet()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(x_train, t_train, batch_size=args.batch_size, shuffle=True,
                        seed=args.seed)
    config = {"data": data_kind, "train_images": len(x_train), "batch_size": args.batch_size,
              "seed": args.seed}
    history = None
    start_epoch = 0
    if args.resume:
        start_epoch, history = resume(out, model, opt, loader, config)
    if history is None:
        history = {"epoch": [], "train_loss": [], "train_acc": [], "test_loss": [],
                   "test_acc": [], "seconds": []}
    if start_epoch == 0 or not any(out.glob("graph.*")):
        drawn = save_graph(model, x_train[:args.batch_size], t_train[:args.batch_size], out)
        print(f"Graph of one batch's loss: {out / drawn}")
    if start_epoch >= args.epochs:
        print(f"Already trained for {start_epoch} epochs; ask for more with --epochs")
        return history

    threads = minigrad.get_num_threads()
    print(f"Model: {model.num_parameters():,} parameters; Adam(lr={opt.lr:g}), batch "
          f"{args.batch_size}, {args.epochs} epochs, {threads} "
          f"thread{'s' if threads > 1 else ''}")
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, args.epochs + 1):
            train_loss, train_acc, seconds = train_epoch(
                model, opt, loader, f"epoch {epoch}/{args.epochs}")
            test_loss, test_acc = evaluate(model, x_test, t_test)
            for key, value in (("epoch", epoch), ("train_loss", train_loss),
                               ("train_acc", train_acc), ("test_loss", test_loss),
                               ("test_acc", test_acc), ("seconds", seconds)):
                history[key].append(value)
            print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, acc "
                  f"{train_acc:.4f} | test loss {test_loss:.4f}, acc {test_acc:.4f} | "
                  f"{seconds:.1f} s, {len(x_train) / seconds:,.0f} images/s", flush=True)
            save_checkpoint(out, model, opt, loader, epoch, config, history)
    except KeyboardInterrupt:
        done = len(history["epoch"])
        print(f"\nInterrupted during epoch {epoch}; the checkpoint of epoch {done} is in {out} "
              f"(continue with --resume)")
        return history
    print(f"Saved history.json, history.png, model.npz and optimizer.npz in {out}")
    return history


if __name__ == "__main__":
    main()
