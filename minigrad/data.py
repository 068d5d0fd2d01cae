"""MNIST loading, IDX parsing and mini-batch iteration.

``load_mnist`` returns the MNIST handwritten digits as NumPy arrays: from a folder of the four
gzip'd IDX files, from a download, or from a small subset shipped inside the package
(``subset=True``) that needs neither disk cache nor network. Files found on disk and downloads
alike are verified against pinned SHA-256 values; a file that verified once is remembered by its
path, size and modification time, so later loads do not hash it again.
``DataLoader`` cuts arrays into (optionally shuffled) mini-batches.

MNIST is the work of Yann LeCun (Courant Institute, NYU), Corinna Cortes (Google Labs, New York)
and Christopher J.C. Burges (Microsoft Research, Redmond), built from NIST's Special Databases 1
and 3. Yann LeCun and Corinna Cortes hold its copyright; the MNIST page
(http://yann.lecun.com/exdb/mnist/) states that it is made available under the terms of the
Creative Commons Attribution-Share Alike 3.0 licence. The subset in
``minigrad/datasets/mnist_subset.npz`` is an unmodified excerpt of it (the first 10,000 training
and first 2,000 test images with their labels) and is distributed under those same terms, not
under minigrad's own licence.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from minigrad._files import atomic_write

__all__ = ["MIRRORS", "DataLoader", "find_mnist", "load_mnist", "read_idx", "verify_mnist"]

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Base URLs tried in turn when the MNIST files are missing; each must serve the four ``.gz``."""

TIMEOUT = 30.0
"""Seconds a mirror may stay silent before it counts as failed."""

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the decompressed IDX content, so a mirror that recompresses the same data still
# verifies, while any change to the pixels or labels does not.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels-idx1-ubyte.gz": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}

# SHA-256 of the four files as published (gzip'd), which verify without decompressing.
MNIST_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"
    ),
    "train-labels-idx1-ubyte.gz": (
        "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"
    ),
}

SUBSET_PATH = Path(__file__).parent / "datasets" / "mnist_subset.npz"

_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}


# ----------------------------------------------------------------------------------------------
# IDX files


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzip'd or plain.

    The layout is two zero bytes, a data type code (0x08 for unsigned byte, the only one
    supported), the number of dimensions, one big-endian uint32 per dimension, then the values.
    Gzip is recognised by its magic bytes, whatever the file is called.

    Args:
        path: the file to read.

    Returns:
        A writable uint8 array shaped by the dimensions in the header.

    Raises:
        ValueError: the file is not a well-formed unsigned-byte IDX file (bad magic, other data
            type, truncated or trailing bytes, broken gzip stream); the message names the file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"read_idx: {path} is not a complete gzip stream ({type(exc).__name__}: {exc}); "
                "the download was probably interrupted, delete the file and fetch it again"
            ) from exc

    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"read_idx: {path} is not an IDX file: it starts with {raw[:4]!r}, "
            "but an IDX file starts with two zero bytes"
        )
    code, ndim = raw[2], raw[3]
    if code != 0x08:
        name = _IDX_TYPES.get(code, "unknown")
        raise ValueError(
            f"read_idx: {path} holds data type code 0x{code:02X} ({name}); "
            "only 0x08 (unsigned byte) is supported"
        )
    if ndim == 0:
        raise ValueError(f"read_idx: {path} declares 0 dimensions")

    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"read_idx: {path} is truncated inside its header: {ndim} dimensions need "
            f"{header} bytes, got {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(raw) - header
    if got != expected:
        problem = "truncated" if got < expected else "followed by trailing bytes"
        raise ValueError(
            f"read_idx: {path} is {problem}: dimensions {shape} need {expected} bytes of data, "
            f"got {got}"
        )
    # A copy, because frombuffer over bytes gives a read-only array.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _idx_sha256(data: bytes) -> str:
    """SHA-256 of an IDX file's decompressed content (gzip'd or plain ``data``)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# Locating and downloading


def _cache_dir() -> Path:
    return Path.home() / ".cache" / "minigrad" / "mnist"


def _search_path(root: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """The folders looked in, in order, each with a phrase saying where it came from."""
    places = []
    if root is not None:
        places.append(("root argument", Path(root).expanduser()))
    env = os.environ.get("MINIGRAD_DATA")
    if env:
        places.append(("$MINIGRAD_DATA", Path(env).expanduser()))
    places.append(("cache", _cache_dir()))
    return places


def _file_in(folder: Path, name: str) -> Path | None:
    """``name`` (a ``.gz``) in ``folder``, or its decompressed twin, or None."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_mnist(root: str | os.PathLike | None = None) -> Path | None:
    """Return the first folder holding all four MNIST IDX files, or None.

    Looked in, in order: ``root`` (when given), ``$MINIGRAD_DATA`` (when set), and the cache
    ``~/.cache/minigrad/mnist`` (``~`` is ``$HOME``). Each file may be gzip'd (the names in
    ``FILES``) or already decompressed (the same names without ``.gz``).

    Args:
        root: a folder to try first.

    Returns:
        The folder, or None when none holds all four files.

    Example:
        >>> folder = find_mnist()  # None until MNIST has been downloaded or put in place
        >>> folder is None or folder.is_dir()
        True
    """
    for _, folder in _search_path(root):
        if all(_file_in(folder, name) for name in FILES.values()):
            return folder
    return None


def _verdicts_path() -> Path:
    return Path.home() / ".cache" / "minigrad" / "verified.json"


def _read_verdicts() -> dict:
    try:
        verdicts = json.loads(_verdicts_path().read_text())
    except (OSError, ValueError):  # absent, unreadable or garbled: hash again
        return {}
    return verdicts if isinstance(verdicts, dict) else {}


def verify_mnist(folder: str | os.PathLike) -> None:
    """Check that the four MNIST files in ``folder`` are the published ones.

    A file verifies when its SHA-256 is that of the published ``.gz`` (``MNIST_GZ_SHA256``) or
    when its decompressed content's SHA-256 is that of the published content (``MNIST_SHA256``),
    so decompressed or recompressed copies verify too. Each verdict is remembered in
    ``~/.cache/minigrad/verified.json`` with the file's size and modification time: a file is
    hashed again only when one of them changes.

    Args:
        folder: a folder holding the four files (as ``find_mnist`` returns).

    Raises:
        FileNotFoundError: one of the files is missing.
        ValueError: a file's content differs from the published one; the message names it.

    Example:
        >>> folder = find_mnist()
        >>> folder is None or verify_mnist(folder) is None
        True
    """
    folder = Path(folder)
    verdicts = _read_verdicts()
    changed = False
    for name in FILES.values():
        path = _file_in(folder, name)
        if path is None:
            raise FileNotFoundError(f"verify_mnist: {folder} does not hold {name}")
        info = path.stat()
        key = str(path.resolve())
        stamp = [info.st_size, info.st_mtime_ns, MNIST_SHA256[name]]
        if verdicts.get(key) == stamp:
            continue
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != MNIST_GZ_SHA256[name]:
            try:
                digest = _idx_sha256(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(
                    f"load_mnist: {path} is not a complete gzip stream ({exc}); delete it and "
                    "fetch it again"
                ) from exc
            if digest != MNIST_SHA256[name]:
                raise ValueError(
                    f"load_mnist: {path} is not the published MNIST {name}: the SHA-256 of its "
                    f"content is {digest}, expected {MNIST_SHA256[name]}. Delete it to download "
                    "it again, or pass verify=False to load other data in the MNIST format"
                )
        verdicts[key] = stamp
        changed = True
    if changed:
        text = json.dumps(verdicts, indent=1).encode()
        try:
            _atomic_write(_verdicts_path(), text)
        except OSError:  # a read-only home: verify again next time
            pass


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it is either complete or absent, never partial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data))


def _fetch(name: str, mirrors: tuple[str, ...], failures: list[str]) -> bytes | None:
    """Download ``name`` from the first mirror whose copy verifies; note each failure."""
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += name
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
            continue
        except urllib.error.URLError as exc:
            failures.append(f"{url}: {exc.reason}")
            continue
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # Timeouts and dropped connections while reading; malformed mirror URLs.
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        try:
            digest = _idx_sha256(data)
        except (OSError, EOFError, zlib.error) as exc:
            failures.append(f"{url}: not a complete gzip file ({exc})")
            continue
        if digest != MNIST_SHA256[name]:
            failures.append(
                f"{url}: SHA-256 mismatch (expected {MNIST_SHA256[name]}, got {digest}); "
                "not cached"
            )
            continue
        return data
    return None


def _not_found_message(places: list[tuple[str, Path]], failures: list[str]) -> str:
    lines = ["load_mnist: the MNIST files were not found. Looked in:"]
    lines += [f"  - {folder} ({why})" for why, folder in places]
    if failures:
        lines.append("Downloading failed:")
        lines += [f"  - {failure}" for failure in failures]
    lines += [
        "Put the four files " + ", ".join(FILES.values()) + " in one folder and either set",
        "MINIGRAD_DATA to it or pass it as root=...; or call load_mnist(subset=True) for the",
        "10,000/2,000-image subset shipped with minigrad, which needs no files and no network.",
    ]
    return "\n".join(lines)


def _download(target: Path, mirrors: tuple[str, ...], places: list[tuple[str, Path]]) -> None:
    """Fetch into ``target`` every MNIST file it lacks; stop at the first that no mirror has."""
    for name in FILES.values():
        if _file_in(target, name):
            continue
        failures: list[str] = []
        data = _fetch(name, mirrors, failures)
        if data is None:
            if not mirrors:
                failures.append("no mirrors were given")
            raise RuntimeError(_not_found_message(places, failures))
        _atomic_write(target / name, data)


# ----------------------------------------------------------------------------------------------
# Loading


def _load_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not SUBSET_PATH.is_file():
        raise FileNotFoundError(
            f"load_mnist: the embedded subset {SUBSET_PATH} is missing from this installation; "
            "reinstall minigrad or generate it with scripts/make_mnist_subset.py"
        )
    with np.load(SUBSET_PATH, allow_pickle=False) as npz:
        return npz["x_train"], npz["t_train"], npz["x_test"], npz["t_test"]


def _load_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = {key: read_idx(_file_in(folder, name)) for key, name in FILES.items()}
    for split in ("train", "test"):
        x, t = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or t.ndim != 1 or len(x) != len(t):
            raise ValueError(
                f"load_mnist: the {split} files in {folder} do not match: images {x.shape} "
                f"should be (N, H, W) and labels {t.shape} should be (N,)"
            )
        if t.size and t.max() > 9:
            raise ValueError(
                f"load_mnist: the {split} labels in {folder} go up to {t.max()}; digits are 0-9"
            )
    return (arrays["train_images"], arrays["train_labels"],
            arrays["test_images"], arrays["test_labels"])


def _prepare(x: np.ndarray, t: np.ndarray, flatten: bool, one_hot: bool):
    x = x.astype(np.float32) / np.float32(255.0)
    x = x.reshape(len(x), -1) if flatten else x[:, np.newaxis, :, :]
    if one_hot:
        t = np.eye(10, dtype=np.float32)[t]
    else:
        t = t.astype(np.int64)
    return x, t


def load_mnist(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    flatten: bool = False,
    one_hot: bool = False,
    subset: bool = False,
    mirrors: tuple[str, ...] | None = None,
    verify: bool = True,
):
    """Load MNIST as ``((x_train, t_train), (x_test, t_test))``.

    The four IDX files are looked for in ``root``, then ``$MINIGRAD_DATA``, then
    ``~/.cache/minigrad/mnist`` (see ``find_mnist``). When none holds them and ``download`` is
    true, the missing files are fetched into ``root`` (or ``$MINIGRAD_DATA``, or the cache,
    whichever comes first), trying each mirror in turn. A download is kept only if its
    decompressed content matches the pinned SHA-256, and is written to a temporary file then
    renamed, so an interrupted or rejected download leaves nothing behind.

    Args:
        root: a folder holding (or to receive) the four files.
        download: fetch missing files from ``mirrors``.
        flatten: images as (N, 784) instead of (N, 1, 28, 28).
        one_hot: labels as float32 (N, 10) one-hot rows instead of int64 (N,).
        subset: return the first 10,000 training and 2,000 test images shipped inside the
            package; ``root``, ``download`` and ``mirrors`` are then ignored and neither the
            disk cache nor the network is touched.
        mirrors: base URLs to download from, in order; defaults to ``MIRRORS``.
        verify: check the files against the pinned SHA-256 values (``verify_mnist``; once per
            file, then remembered); False loads other data stored under the MNIST names.

    Returns:
        ``((x_train, t_train), (x_test, t_test))``: images float32 in [0, 1], labels int64 in
        0-9 (or one-hot float32).

    Raises:
        FileNotFoundError: the files are absent and ``download`` is false; the message lists
            the folders looked in and how to provide the files.
        RuntimeError: the files are absent and no mirror supplied a file that verifies; the
            message also says why each mirror failed.
        ValueError: a file found on disk is not the published MNIST file (with ``verify``) or
            not a well-formed IDX file.

    Example:
        >>> (x_train, t_train), (x_test, t_test) = load_mnist(subset=True, flatten=True)
        >>> x_train.shape, x_train.dtype, t_test.shape, t_test.dtype
        ((10000, 784), dtype('float32'), (2000,), dtype('int64'))
    """
    if subset:
        x_train, t_train, x_test, t_test = _load_subset()
    else:
        folder = find_mnist(root)
        if folder is None:
            places = _search_path(root)
            if not download:
                raise FileNotFoundError(_not_found_message(places, []))
            folder = places[0][1]
            _download(folder, MIRRORS if mirrors is None else tuple(mirrors), places)
        if verify:
            verify_mnist(folder)
        x_train, t_train, x_test, t_test = _load_folder(folder)
    return (
        _prepare(x_train, t_train, flatten, one_hot),
        _prepare(x_test, t_test, flatten, one_hot),
    )


# ----------------------------------------------------------------------------------------------
# Mini-batches


class DataLoader:
    """Iterate over arrays in mini-batches, cut along their first axis.

    One array yields bare batches; several yield tuples of batches, one per array, whose rows
    belong together. With ``shuffle`` every epoch (every ``for`` loop over the loader) draws a
    new permutation from a generator kept on the loader, so a ``seed`` fixes the whole sequence
    of epochs. Without it the batches are contiguous slices, i.e. views of the arrays.

    Args:
        *arrays: one or more arrays with the same first length N.
        batch_size: rows per batch (a positive int).
        shuffle: visit the rows in a new random order each epoch.
        drop_last: skip the final batch when it is smaller than ``batch_size``.
        seed: seed for ``np.random.default_rng``.

    Example:
        >>> x, t = np.arange(10).reshape(5, 2), np.arange(5)
        >>> loader = DataLoader(x, t, batch_size=2, shuffle=False)
        >>> len(loader)
        3
        >>> [tb.tolist() for xb, tb in loader]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, *arrays, batch_size: int = 100, shuffle: bool = True,
                 drop_last: bool = False, seed=None):
        if not arrays:
            raise ValueError("DataLoader: needs at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"DataLoader: array {i} is a scalar; batches need a first axis")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) > 1:
            raise ValueError(
                f"DataLoader: all arrays must have the same first length, got lengths {lengths} "
                f"(shapes {[a.shape for a in arrays]})"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(
                f"DataLoader: batch_size must be a positive int, got {batch_size!r} "
                f"({type(batch_size).__name__})"
            )
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size}")
        self.arrays = arrays
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The shuffling generator's state, as arrays ``minigrad.save`` can write.

        With ``load_state_dict`` on a loader built with the same arrays and batch size, the
        following epochs visit the rows in the same order as this loader's would. The state is
        that of an epoch boundary: a loop stopped mid-epoch restarts that epoch afresh.

        Returns:
            ``{"rng": uint8 array}``, the JSON of ``rng.bit_generator.state`` in UTF-8 (its
            128-bit integers do not fit a NumPy integer).

        Example:
            >>> a = DataLoader(np.arange(6), batch_size=3, seed=1)
            >>> b = DataLoader(np.arange(6), batch_size=3, seed=2)
            >>> b.load_state_dict(a.state_dict())
            >>> [x.tolist() for x in a] == [x.tolist() for x in b]
            True
        """
        text = json.dumps(self.rng.bit_generator.state)
        return {"rng": np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()}

    def load_state_dict(self, state) -> None:
        """Restore the generator state saved by ``state_dict``.

        Raises:
            KeyError: ``state`` has no ``"rng"`` entry.
            ValueError: the entry is not such a state or is for another bit generator.
        """
        raw = np.asarray(state["rng"])
        try:
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ValueError(f"expected a 1-d uint8 array, got {raw.dtype} {raw.shape}")
            saved = json.loads(raw.tobytes().decode("utf-8"))
            kind = type(self.rng.bit_generator).__name__
            if not isinstance(saved, dict) or saved.get("bit_generator") != kind:
                raise ValueError(f"not the state of a {kind} generator")
            self.rng.bit_generator.state = saved
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"DataLoader.load_state_dict: bad 'rng' entry ({exc})") from exc

    @property
    def num_samples(self) -> int:
        """N, the number of rows shared by the arrays."""
        return len(self.arrays[0])

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator:
        order = self.rng.permutation(self.num_samples) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order: np.ndarray | None) -> Iterator:
        for b in range(len(self)):
            start = b * self.batch_size
            if order is None:
                rows = slice(start, start + self.batch_size)
            else:
                rows = order[start:start + self.batch_size]
            batch = tuple(a[rows] for a in self.arrays)
            yield batch if len(batch) > 1 else batch[0]

    def __repr__(self) -> str:
        arrays = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return (
            f"DataLoader([{arrays}], batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed!r}) with {len(self)} batches"
        )
