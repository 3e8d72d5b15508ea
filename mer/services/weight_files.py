"""Reading one weight vector from a file: .npy and .npz (with numpy), .csv, .json.

Every file becomes a float64 array or a UsageError that names the file and what to do.
Nothing is guessed: a truncated array, bytes after it, a table with several candidate
columns or a dtype that is not a real number is refused, never read as something
shorter or different. numpy is imported only when a numpy file is read (it costs ~100 ms
at start), and is an optional extra (``mer[numpy]``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.domain import to_vector
from mer.errors import UsageError

if TYPE_CHECKING:
    import numpy

__all__ = ["SUFFIXES", "read_weights_file"]

SUFFIXES = (".npy", ".npz", ".csv", ".json")
_PICK = "pick one with --column NAME"


def read_weights_file(path: Path, column: str | None = None) -> array:
    """The vector in ``path``; ``column`` names the array of an .npz, the column of a
    CSV with a header row, or the key of a JSON object. Raises UsageError."""
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise UsageError(f"{path}: unknown weight file type '{suffix}'; use .npy, .npz, .csv or .json")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    values = reader(raw, path, column)
    try:
        return to_vector(values)
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from err


# -- numpy files ------------------------------------------------------------------------

def _numpy(path: Path) -> Any:
    try:
        import numpy
    except ImportError:
        raise UsageError(f"{path}: reading {path.suffix.lower()} files needs numpy: "
                         f"pip install 'mer[numpy]'") from None
    return numpy


def _array(np: Any, raw: bytes, where: str) -> numpy.ndarray:
    """A .npy image as an array, checked against its own header: the data must be exactly
    as long as the header says (numpy's own reader ignores bytes after it)."""
    fmt = np.lib.format
    buf = io.BytesIO(raw)
    try:
        version = fmt.read_magic(buf)
        # Version 3 differs only in allowing UTF-8 names of structured fields: not a vector.
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"format version {version[0]}.{version[1]}")
        shape, _fortran, dtype = read_header(buf)  # a vector reads the same in either order
    except (ValueError, SyntaxError, TypeError, EOFError) as err:
        raise UsageError(f"{where}: not a valid .npy file ({err})") from None
    if dtype.kind not in "fiu":
        # NOTE: checked before the data is touched: an object array would be unpickled.
        raise UsageError(f"{where}: dtype {dtype} is not a real number type; "
                         "save the vector as floats or integers")
    if len(shape) != 1 and not (len(shape) == 2 and 1 in shape):
        raise UsageError(f"{where}: shape {shape}; expected a vector (N,), (1, N) or (N, 1)")
    count = math.prod(shape)
    start, need = buf.tell(), count * dtype.itemsize
    have = len(raw) - start
    if have < need:
        raise UsageError(f"{where}: truncated: its header says {count} values ({need} bytes of "
                         f"data), the file holds {have}")
    if have > need:
        raise UsageError(f"{where}: {have - need} bytes after the array; not a valid .npy file")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=start)
    vector: numpy.ndarray = data.astype(np.float64)  # native byte order, whatever the file's
    return vector


def _read_npy(raw: bytes, path: Path, column: str | None) -> array:
    if column is not None:
        raise UsageError(f"{path} holds one array; --column is for .npz, .csv and .json files")
    return _to_array(_array(_numpy(path), raw, str(path)))


def _read_npz(raw: bytes, path: Path, column: str | None) -> array:
    np = _numpy(path)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist()}
            name = _pick(members, column, path, "array", "arrays")
            data = zf.read(members[name])  # checks the member's CRC
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise UsageError(f"{path}: not a valid .npz file ({err})") from None
    return _to_array(_array(np, data, f"{path}[{name}]"))


def _to_array(values: numpy.ndarray) -> array:
    out = array("d")
    out.frombytes(values.ravel().tobytes())
    return out


# -- text files -------------------------------------------------------------------------

def _read_json(raw: bytes, path: Path, column: str | None) -> list[Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):
        data = data[_pick(data, column, path, "vector", "vectors")]
    elif column is not None:
        raise UsageError(f"{path}: --column needs a JSON object of named vectors")
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of numbers")
    return data


def _read_csv(raw: bytes, path: Path, column: str | None) -> list[float]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err})") from None
    rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(io.StringIO(text)), 1)
            if any(c.strip() for c in row)]
    if not rows:
        raise UsageError(f"{path}: no values")
    header = None if all(_is_number(c) for c in rows[0][1]) else rows.pop(0)[1]
    width = len(header if header is not None else rows[0][1])
    for n, row in rows:
        if len(row) != width:
            other = "the header" if header is not None else f"line {rows[0][0]} has"
            raise UsageError(f"{path}: line {n} has {len(row)} value{'s' * (len(row) != 1)}, "
                             f"{other} {width}")
    if header is None:
        if column is not None:
            raise UsageError(f"{path}: no header row; --column needs one naming the columns")
        if len(rows) == 1:
            return [float(c) for c in rows[0][1]]  # one row: a vector written across
        if width != 1:
            raise UsageError(f"{path}: a table of {width} columns with no header row; add a header "
                             f"row and pick a column with --column NAME")
        return [float(row[0]) for _, row in rows]
    if not rows:
        raise UsageError(f"{path}: no values")
    if column is None:
        numeric = [h for i, h in enumerate(header) if all(_is_number(r[i]) for _, r in rows)]
        if not numeric:
            raise UsageError(f"{path}: no numeric column (it has {', '.join(header)})")
        if len(numeric) > 1:
            raise UsageError(f"{path}: {len(numeric)} numeric columns ({', '.join(numeric)}); {_PICK}")
        column = numeric[0]
    if column not in header:
        raise UsageError(f"{path}: no column '{column}' (it has {', '.join(header)})")
    i = header.index(column)
    out = []
    for n, row in rows:
        if not _is_number(row[i]):
            raise UsageError(f"{path}: line {n}, column '{column}': '{row[i]}' is not a number")
        out.append(float(row[i]))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(names: dict[str, Any], column: str | None, path: Path, one: str, many: str) -> str:
    """The member ``column`` names, or the only one there is."""
    listed = ", ".join(sorted(names))
    if column is not None:
        if column not in names:
            raise UsageError(f"{path} has no {one} '{column}' (it has {listed or 'none'})")
        return column
    if len(names) != 1:
        raise UsageError(f"{path} holds {len(names)} {many} ({listed}); {_PICK}")
    return next(iter(names))


_READERS: dict[str, Callable[[bytes, Path, str | None], Any]] = {
    ".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv, ".json": _read_json,
}
