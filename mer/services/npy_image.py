"""A weight vector as an .npy file, written and read back without numpy.

A run export (mer/services/run_export.py) holds each weight vector as ``.npy``: the
format numpy, and ``weights set --file`` (mer/services/weight_files.py), read. numpy is
an optional extra, and a float64 vector's .npy image is a fixed header and the raw
little-endian values, so mer writes it itself, byte for byte as ``numpy.save`` does.
Reading back accepts exactly that image (anything else is refused, never guessed at).
"""

from __future__ import annotations

import struct
import sys
from array import array

from mer.errors import UsageError

__all__ = ["npy_bytes", "npy_vector"]

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0
_ALIGN = 64  # numpy pads the header so that the data starts at a multiple of 64


def _header(length: int) -> bytes:
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({length},), }}"
    pad = -(len(_MAGIC) + 2 + len(text) + 1) % _ALIGN
    text += " " * pad + "\n"
    return _MAGIC + struct.pack("<H", len(text)) + text.encode("ascii")


def _little_endian(values: array) -> bytes:
    if sys.byteorder == "little":
        return values.tobytes()
    swapped = array("d", values)
    swapped.byteswap()
    return swapped.tobytes()


def npy_bytes(values: array) -> bytes:
    """The .npy image of a float64 vector (shape (N,), little-endian)."""
    return _header(len(values)) + _little_endian(values)


def npy_vector(raw: bytes, where: str) -> array:
    """The vector of an .npy image as ``npy_bytes`` writes it; raises UsageError
    naming ``where`` for anything else."""
    start = len(_MAGIC) + 2
    if not raw.startswith(_MAGIC) or len(raw) < start:
        raise UsageError(f"{where}: not an .npy file of format 1.0")
    data = raw[start + struct.unpack_from("<H", raw, len(_MAGIC))[0]:]
    if len(data) % 8:
        raise UsageError(f"{where}: {len(data)} bytes of data is not a whole number of float64 values")
    values = array("d")
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    if npy_bytes(values) != raw:
        raise UsageError(f"{where}: not a float64 vector as mer writes it (dtype <f8, shape (N,))")
    return values
