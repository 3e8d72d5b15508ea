"""Reading weight vectors from files: .npy/.npz (numpy), .csv with a header, .json. Every
bad file is refused with one line naming it and what to do; nothing is guessed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mer.errors import UsageError
from mer.services.weight_files import read_weights_file


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_a_truncated_npy_is_refused_not_stored_shorter(tmp_path: Path) -> None:
    whole = _npy(tmp_path / "w.npy", np.arange(5.0))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(whole.read_bytes()[:-8])  # one float64 short
    with pytest.raises(UsageError, match=r"cut\.npy: truncated: .*5 values.*40 bytes.*32"):
        read_weights_file(cut)


def test_bytes_after_the_array_are_refused(tmp_path: Path) -> None:
    path = _npy(tmp_path / "w.npy", np.arange(3.0))
    path.write_bytes(path.read_bytes() + b"\0" * 8)
    with pytest.raises(UsageError, match="8 bytes after the array"):
        read_weights_file(path)


@pytest.mark.parametrize("raw", [b"", b"\x93NUMPY", b"not numpy at all", b"\x93NUMPY\x01\x00\xff\xff{"])
def test_a_malformed_npy_is_refused(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "w.npy").write_bytes(raw)
    with pytest.raises(UsageError, match=r"w\.npy: not a valid \.npy file"):
        read_weights_file(tmp_path / "w.npy")


@pytest.mark.parametrize("dtype", ["<f8", ">f8", "<f4", ">f4", "<f2", "<i8", ">i4", "<u2", "|i1",
                                   "|u1", ">u8", np.longdouble])
def test_any_real_dtype_and_byte_order_becomes_float64(tmp_path: Path, dtype: str) -> None:
    path = _npy(tmp_path / "w.npy", np.array([1, 2, 100], dtype=dtype))
    got = read_weights_file(path)
    assert got.typecode == "d" and got.tolist() == [1.0, 2.0, 100.0]


def test_a_row_or_column_array_is_a_vector_and_fortran_order_is_read_right(tmp_path: Path) -> None:
    assert read_weights_file(_npy(tmp_path / "r.npy", np.array([[1.5, 2.5]]))).tolist() == [1.5, 2.5]
    assert read_weights_file(_npy(tmp_path / "c.npy", np.array([[1.5], [2.5]]))).tolist() == [1.5, 2.5]
    col = np.asfortranarray(np.array([[1.0], [2.0], [3.0]]))
    assert read_weights_file(_npy(tmp_path / "f.npy", col)).tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("array", "message"), [
    (np.array([1 + 2j]), "complex128.*not a real number type"),
    (np.array(["a", "b"]), "<U1.*not a real number type"),
    (np.array([b"a"]), "S1.*not a real number type"),
    (np.array([True, False]), "bool.*not a real number type"),
    (np.zeros((2, 2)), r"shape \(2, 2\); expected a vector"),
    (np.float64(3.0), r"shape \(\); expected a vector"),
    (np.array([1.0, np.nan]), "element 1 is nan"),
    (np.array([1.0, np.inf]), "element 1 is inf"),
])
def test_what_is_not_a_vector_of_real_numbers_is_refused(tmp_path: Path, array: np.ndarray,
                                                          message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_weights_file(_npy(tmp_path / "w.npy", array))


def test_an_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "o.npy"
    np.save(path, np.array([1.0, None], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="object.*not a real number type"):
        read_weights_file(path)


def test_npz_one_array_or_the_named_one(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", w=np.array([1.0, 2.0]))
    assert read_weights_file(tmp_path / "one.npz").tolist() == [1.0, 2.0]
    np.savez_compressed(tmp_path / "two.npz", w=np.array([1.0, 2.0]), b=np.array([3], dtype=">i2"))
    assert read_weights_file(tmp_path / "two.npz", column="b").tolist() == [3.0]
    with pytest.raises(UsageError, match=r"two\.npz holds 2 arrays \(b, w\); pick one with --column NAME"):
        read_weights_file(tmp_path / "two.npz")
    with pytest.raises(UsageError, match=r"two\.npz has no array 'x' \(it has b, w\)"):
        read_weights_file(tmp_path / "two.npz", column="x")


def test_a_truncated_or_corrupt_npz_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", w=np.arange(100.0))
    raw = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:-30])
    with pytest.raises(UsageError, match=r"cut\.npz: not a valid \.npz file"):
        read_weights_file(tmp_path / "cut.npz")
    flipped = bytearray(raw)
    flipped[200] ^= 0xFF  # inside w's data: the zip's CRC no longer matches
    (tmp_path / "bad.npz").write_bytes(bytes(flipped))
    with pytest.raises(UsageError, match=r"bad\.npz: not a valid \.npz file"):
        read_weights_file(tmp_path / "bad.npz")


def test_without_numpy_one_line_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _npy(tmp_path / "w.npy", np.arange(2.0))
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    with pytest.raises(UsageError) as caught:
        read_weights_file(path)
    assert str(caught.value) == f"{path}: reading .npy files needs numpy: pip install 'mer[numpy]'"


def test_numpy_is_imported_only_for_numpy_files(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "w.csv").write_text("w\n1\n2\n")
    code = ("import sys; from pathlib import Path; from mer.services.weight_files import read_weights_file;"
            f"v = read_weights_file(Path({str(tmp_path / 'w.csv')!r})); print(v.tolist(), 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[1.0,", "2.0]", "False"]


# -- CSV ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "column", "expected"), [
    ("w\n1\n2.5\n-3\n", None, [1.0, 2.5, -3.0]),  # a header and one column
    ("1\n2.5\n-3\n", None, [1.0, 2.5, -3.0]),  # one column, no header
    ("1,2.5,-3\n", None, [1.0, 2.5, -3.0]),  # one row, no header
    ("a,b\n1,10\n2,20\n", "b", [10.0, 20.0]),  # a named column
    ("name,w\nx,1\ny,2\n", None, [1.0, 2.0]),  # the one numeric column
    ("\ufeffw\r\n1\r\n\r\n2\r\n", None, [1.0, 2.0]),  # BOM, CRLF, blank lines
    (" a , b \n1, 2\n", "b", [2.0]),  # spaces around names and values
])
def test_csv_vectors(tmp_path: Path, text: str, column: str | None, expected: list[float]) -> None:
    (tmp_path / "w.csv").write_text(text, encoding="utf-8", newline="")
    assert read_weights_file(tmp_path / "w.csv", column=column).tolist() == expected


@pytest.mark.parametrize(("text", "column", "message"), [
    ("a,b,c\n1,2,3\n4,5,6\n", None, r"3 numeric columns \(a, b, c\); pick one with --column NAME"),
    ("1,2\n3,4\n", None, r"a table of 2 columns with no header row; add a header row and pick a column with --column NAME"),
    ("a,b\n1,2\n", "x", r"no column 'x' \(it has a, b\)"),
    ("1,2\n", "a", r"no header row; --column needs one"),
    ("a,b\n1,2\n3\n", "a", r"line 3 has 1 value, the header 2"),
    ("1,2\n3\n", None, r"line 2 has 1 value, line 1 has 2"),
    ("a,b\n1,x\n", "b", r"line 2, column 'b': 'x' is not a number"),
    ("a,b\n1,\n", "b", r"line 2, column 'b': '' is not a number"),
    ("name\nx\n", None, r"no numeric column"),
    ("w\n", None, r"no values"),
    ("", None, r"no values"),
    ("w\n1\nnan\n", None, r"element 1 is nan"),
])
def test_bad_csv_is_refused(tmp_path: Path, text: str, column: str | None, message: str) -> None:
    (tmp_path / "w.csv").write_text(text)
    with pytest.raises(UsageError, match=r"w\.csv: .*" + message):
        read_weights_file(tmp_path / "w.csv", column=column)


# -- JSON, and what fits no file ---------------------------------------------------------

def test_json_list_or_named_key(tmp_path: Path) -> None:
    (tmp_path / "l.json").write_text("[1, 2.5]")
    (tmp_path / "d.json").write_text('{"w": [1], "b": [2, 3]}')
    assert read_weights_file(tmp_path / "l.json").tolist() == [1.0, 2.5]
    assert read_weights_file(tmp_path / "d.json", column="b").tolist() == [2.0, 3.0]
    with pytest.raises(UsageError, match=r"holds 2 vectors \(b, w\); pick one with --column NAME"):
        read_weights_file(tmp_path / "d.json")
    with pytest.raises(UsageError, match=r"l\.json: --column needs a JSON object"):
        read_weights_file(tmp_path / "l.json", column="w")


def test_column_is_refused_for_npy_and_unknown_types_and_missing_files(tmp_path: Path) -> None:
    path = _npy(tmp_path / "w.npy", np.arange(2.0))
    with pytest.raises(UsageError, match=r"w\.npy holds one array; --column is for \.npz, \.csv and \.json"):
        read_weights_file(path, column="w")
    (tmp_path / "w.txt").write_text("1 2")
    with pytest.raises(UsageError, match=r"unknown weight file type '\.txt'; use \.npy, \.npz, \.csv or \.json"):
        read_weights_file(tmp_path / "w.txt")
    with pytest.raises(UsageError, match=r"cannot read .*nope\.csv: No such file"):
        read_weights_file(tmp_path / "nope.csv")
