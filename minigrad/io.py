"""Checkpoints: dicts of arrays saved as ``.npz`` files, atomically and without pickles.

``save`` flattens nested dicts into dotted names (``{"opt": {"m": {"0": a}}}`` is stored as
``opt.m.0``) and writes one ``.npy`` member per name into an uncompressed zip, the format
``np.savez`` produces, so any NumPy can read it with ``np.load``. The file is written beside its
destination, fsync'd and renamed over it: a crash or an error mid-write leaves the previous
checkpoint as it was; the temporary file of a save that was killed is removed by the next save
of the same path. ``load`` reads it back eagerly and refuses anything that is not such an
archive: it never unpickles, reads only regular files, refuses duplicate member names and any
dtype other than bool, integer and floating point, and caps the decompressed size at
``MAX_LOAD_BYTES`` (checked against the zip directory and every ``.npy`` header before any array
is allocated).
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from minigrad._files import atomic_write

__all__ = ["MAX_LOAD_BYTES", "flatten", "load", "save", "unflatten"]

MAX_LOAD_BYTES = 2**30
"""The most bytes (all arrays together, decompressed) ``load`` reads unless ``max_bytes`` says
otherwise: 1 GiB. A checkpoint declaring more is refused before anything is allocated, so a small
compressed file cannot expand into all of memory. Raise it (``minigrad.io.MAX_LOAD_BYTES = 2**33``)
or pass ``load(path, max_bytes=...)`` for bigger models."""

# Array kinds a checkpoint holds: bool, signed and unsigned integers, floating point, and
# Unicode text (settings such as a schedule's ``anneal_strategy``; stored as fixed-width
# characters, no pickle). Bytes, datetimes, timedeltas, complex numbers, structured and object
# arrays are refused: none of them is a model's or an optimiser's state, and loading them into
# one gives garbage.
_KINDS = "biufU"

# Characters a key may not contain: a zip member name stops at NUL, and "/" makes a folder.
_FORBIDDEN_IN_KEYS = ("\x00", "/")

# A zip starts with a local file header, or with the end-of-central-directory record when empty.
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def flatten(state: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten nested dicts of arrays into one dict keyed by dotted names.

    Keys that already contain dots are kept as they are. Empty nested dicts vanish. Values must
    be bool, integer or floating-point arrays (or scalars that become one).

    Args:
        state: a mapping of str to arrays, scalars, anything ``np.asarray`` turns into a
            non-object array, or further such mappings.
        prefix: prepended (with a dot) to every name.

    Returns:
        A new dict of dotted name to ndarray.

    Raises:
        TypeError: a key is not a str, or a value has another dtype (object, str, bytes,
            datetime64, timedelta64, complex, structured); the message names the key and dtype.
        ValueError: a key is empty or contains NUL or "/", or two paths flatten to the same name.

    Example:
        >>> flatten({"conv1.W": np.zeros(2), "opt": {"lr": 0.1, "m": {"0": np.ones(1)}}})
        {'conv1.W': array([0., 0.]), 'opt.lr': array(0.1), 'opt.m.0': array([1.])}
    """
    flat: dict[str, np.ndarray] = {}
    _flatten_into(flat, state, prefix)
    return flat


def _flatten_into(flat: dict, state: Mapping, prefix: str) -> None:
    for key, value in state.items():
        if not isinstance(key, str):
            where = f" under {prefix!r}" if prefix else ""
            raise TypeError(f"save: keys must be str, got {type(key).__name__} key {key!r}{where}")
        if not key:
            raise ValueError(f"save: empty key under {prefix!r}" if prefix else "save: empty key")
        for char in _FORBIDDEN_IN_KEYS:
            if char in key:
                where = f" under {prefix!r}" if prefix else ""
                raise ValueError(
                    f"save: key {key!r}{where} contains {char!r}, which a zip member name cannot "
                    "hold faithfully (NUL ends the name, '/' makes a folder)"
                )
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten_into(flat, value, name)
            continue
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"save: value for key {name!r} is not an array ({exc})") from exc
        if array.dtype.hasobject:
            raise TypeError(
                f"save: value for key {name!r} is an object array "
                f"(from {type(value).__name__}); checkpoints hold numeric, bool and string "
                "arrays only, because object arrays need pickle"
            )
        if array.dtype.kind not in _KINDS:
            raise TypeError(
                f"save: value for key {name!r} has dtype {array.dtype} "
                f"(from {type(value).__name__}); checkpoints hold bool, integer, "
                "floating-point and text arrays only"
            )
        if name in flat:
            raise ValueError(f"save: two entries flatten to the same name {name!r}")
        flat[name] = array


def unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    """Rebuild nested dicts from dotted names, splitting at every dot.

    This is the inverse of ``flatten`` only when no original key contained a dot: ``load``
    returns the flat names, and callers who stored dotted top-level keys (``"conv1.W"``) should
    use them flat. A name that is both a leaf and a prefix of another (``"a"`` and ``"a.b"``)
    cannot be nested and raises ValueError.

    Args:
        flat: a mapping of dotted name to value, as returned by ``load``.

    Returns:
        Nested dicts with the same values.

    Example:
        >>> unflatten({"opt.lr": 0.1, "opt.m.0": 1.0, "step": 3})
        {'opt': {'lr': 0.1, 'm': {'0': 1.0}}, 'step': 3}
    """
    nested: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = nested
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(
                    f"unflatten: {'.'.join(parents[:i + 1])!r} is a value and also the prefix "
                    f"of {name!r}"
                )
        if leaf in node:
            raise ValueError(f"unflatten: {name!r} is a value and also the prefix of other names")
        node[leaf] = value
    return nested


def _write_npz(file, flat: Mapping[str, np.ndarray]) -> None:
    """Write ``flat`` as an uncompressed ``.npz`` to an open binary file, as ``np.savez`` does.

    Written member by member rather than through ``np.savez(file, **flat)``, whose own keyword
    arguments (``file``, ``allow_pickle``) would capture checkpoint entries of those names.
    """
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in flat.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(state: Mapping, path: str | os.PathLike) -> None:
    """Save a (possibly nested) dict of arrays to ``path`` as an ``.npz`` checkpoint.

    The data goes to a temporary file in the destination's folder, is flushed and fsync'd, and
    then replaces ``path`` in one rename. If anything fails, the temporary file is removed and
    an existing file at ``path`` is left untouched; the temporary files that killed saves of
    ``path`` left behind are removed first. ``path`` is used exactly as given: no ``.npz``
    suffix is added.

    Args:
        state: str keys to arrays or scalars, or to nested dicts of them (see ``flatten``).
        path: the file to write.

    Raises:
        TypeError: a key is not a str, or a value is not (and would not become) a bool, integer
            or floating-point array; the message names the key and the dtype.
        ValueError: a key is empty or contains NUL or "/", or two entries flatten to the same
            name.
        FileNotFoundError: the destination folder does not exist.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "model.npz"
        >>> save({"W1": np.eye(2, dtype=np.float32), "opt": {"step": 10}}, path)
        >>> load(path)
        {'W1': array([[1., 0.], [0., 1.]], dtype=float32), 'opt.step': array(10)}
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save: state must be a dict of arrays, got {type(state).__name__}")
    flat = flatten(state)
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"save: folder {folder} for {path} does not exist")

    atomic_write(path, lambda f: _write_npz(f, flat))


def load(path: str | os.PathLike, *, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Load a checkpoint written by ``save`` as a flat dict of dotted name to array.

    Everything is read into memory and the file is closed before returning. Only zip-based
    ``.npz`` archives of plain arrays are accepted; pickles, ``.npy`` files and archives holding
    object arrays are refused without unpickling anything. ``unflatten`` rebuilds the nesting.
    Before any array is allocated, the sizes in the zip directory and each member's ``.npy``
    header are checked against each other and against ``max_bytes``.

    Args:
        path: the checkpoint file (a regular file: FIFOs, devices and folders are refused
            rather than waited on).
        max_bytes: the most bytes all arrays together may hold once decompressed; defaults to
            ``MAX_LOAD_BYTES`` (1 GiB).

    Returns:
        A dict of name to ndarray, in the order they were saved.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a minigrad checkpoint (not a regular file, not a zip of
            ``.npy`` members, duplicate member names, more than ``max_bytes``), or it is
            truncated or corrupt; the message names the file and the member.
        TypeError: a member's dtype is not bool, integer or floating point (strings, datetimes,
            complex numbers...); the message names the entry and its dtype.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "state.npz"
        >>> save({"opt": {"m": {"0": np.zeros(2)}}}, path)
        >>> unflatten(load(path))
        {'opt': {'m': {'0': array([0., 0.])}}}
    """
    path = Path(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"load: max_bytes must be a non-negative int, got {limit!r}")
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise ValueError(f"load: {path} is {kind}, not a regular file; checkpoints are files")
    with os.fdopen(fd, "rb") as f:
        magic = f.read(4)
        if magic not in _ZIP_MAGICS:
            if magic.startswith(b"\x93NUM"):
                kind = "a single .npy array"
            elif magic[:1] == b"\x80":
                kind = "a pickle"
            else:
                kind = f"a file starting with {magic!r}"
            raise ValueError(
                f"load: {path} is not a minigrad checkpoint (.npz zip archive) but {kind}; "
                "pickles are never loaded"
            )
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                return _read_members(zf, path, int(limit))
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(
                f"load: {path} is truncated or corrupt ({type(exc).__name__}: {exc})"
            ) from exc


def _read_members(zf: zipfile.ZipFile, path: Path, limit: int) -> dict[str, np.ndarray]:
    """Check every member's name, size and header, then read the arrays."""
    infos = zf.infolist()
    seen: set[str] = set()
    total = 0
    for info in infos:
        if info.filename in seen:
            raise ValueError(
                f"load: {path} holds two members named {info.filename!r}; a checkpoint names "
                "each entry once, so it is not one"
            )
        seen.add(info.filename)
        if not info.filename.endswith(".npy"):
            raise ValueError(
                f"load: {path} is not a minigrad checkpoint: member {info.filename!r} is not a "
                ".npy array"
            )
        total += info.file_size
        if total > limit:
            raise ValueError(
                f"load: {path} holds more than max_bytes={limit:,} bytes once decompressed "
                f"(reached at member {info.filename!r}, {info.file_size:,} bytes); pass a larger "
                "max_bytes, or raise minigrad.io.MAX_LOAD_BYTES, if the file is trusted"
            )

    state: dict[str, np.ndarray] = {}
    for info in infos:
        name = info.filename[:-len(".npy")]
        with zf.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ValueError(f".npy format version {version} is not supported")
            except ValueError as exc:
                raise ValueError(
                    f"load: {path} is truncated or corrupt: member {info.filename!r} has no "
                    f"valid .npy header ({exc})"
                ) from exc
            header = member.tell()
        if dtype.hasobject:
            raise ValueError(
                f"load: {path} is not a minigrad checkpoint: entry {name!r} is an object array, "
                "which only a pickle could restore, and pickles are never loaded"
            )
        if dtype.kind not in _KINDS:
            raise TypeError(
                f"load: entry {name!r} of {path} has dtype {dtype}; checkpoints hold bool, "
                "integer, floating-point and text arrays only"
            )
        size = math.prod(shape) * dtype.itemsize
        if header + size != info.file_size:
            raise ValueError(
                f"load: {path} is truncated or corrupt: member {info.filename!r} declares shape "
                f"{shape} of {dtype} ({size:,} bytes) but holds {info.file_size - header:,}"
            )
        with zf.open(info) as member:
            state[name] = np.lib.format.read_array(member, allow_pickle=False)
    return state
