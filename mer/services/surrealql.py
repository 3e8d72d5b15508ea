"""SurrealQL text as the Rust MER's migration files hold it: split into statements with
their line numbers, and rewritten where SurrealDB 2.x rejects what 1.x accepted.

Pure functions, no I/O and no SurrealDB: mer/services/surreal_source.py runs the result.
Imports: the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Statement", "rewrite_1x", "split_statements"]

# 1.x wrote a record link's type as `record(table)` (or `record(a, b)`); 2.x accepts only
# `record<table>` (`record<a | b>`). Not after `::`: `type::record(...)` is a function.
_RECORD_1X = re.compile(r"(?<![:\w])record\(\s*(\w+(?:\s*[,|]\s*\w+)*)\s*\)", re.IGNORECASE)
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True, slots=True)
class Statement:
    line: int  # 1-based line of the statement's first character in its file
    text: str  # the statement, without its ';', comments kept
    rewrites: int = 0  # how many 1.x forms were rewritten for 2.x

    @property
    def head(self) -> str:
        """The statement on one line, shortened: how a report names it."""
        flat = " ".join(_strip_comments(self.text).split())
        return flat if len(flat) <= 70 else flat[:67] + "..."


def rewrite_1x(code: str) -> tuple[str, int]:
    """``code`` (no strings or comments in it) with 1.x record types in 2.x form."""
    return _RECORD_1X.subn(
        lambda m: "record<" + " | ".join(re.split(r"\s*[,|]\s*", m.group(1))) + ">", code)


def _strip_comments(text: str) -> str:
    return "".join(piece for kind, piece in _pieces(text) if kind != "comment")


def _pieces(text: str) -> list[tuple[str, str]]:
    """``text`` cut into ("code" | "string" | "comment", piece), in order."""
    out: list[tuple[str, str]] = []
    i, start, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        end = -1
        kind = ""
        if c in "\"'`":
            kind, end = "string", _string_end(text, i, c)
        elif c == "⟨":
            kind, end = "string", _until(text, i + 1, "⟩")
        elif text.startswith(("--", "//"), i) or c == "#":
            newline = text.find("\n", i)  # the newline itself stays code
            kind, end = "comment", len(text) if newline < 0 else newline
        elif text.startswith("/*", i):
            kind, end = "comment", _until(text, i + 2, "*/")
        if not kind:
            i += 1
            continue
        if start < i:
            out.append(("code", text[start:i]))
        out.append((kind, text[i:end]))
        i = start = end
    if start < n:
        out.append(("code", text[start:]))
    return out


def _until(text: str, i: int, mark: str) -> int:
    """The index just past ``mark`` at or after ``i`` (the end of the text without it)."""
    found = text.find(mark, i)
    return len(text) if found < 0 else found + len(mark)


def _string_end(text: str, i: int, quote: str) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    return len(text)


def split_statements(text: str) -> list[Statement]:
    """The statements of a file, in order: split at each ``;`` outside strings, comments
    and brackets (a block's own statements stay whole). Comment-only pieces are dropped;
    1.x syntax that 2.x rejects is rewritten (``Statement.rewrites`` counts it)."""
    statements: list[Statement] = []
    current: list[str] = []  # pieces of the statement being read, code already rewritten
    rewrites = depth = 0
    line = 1  # of the next character read
    first_line = 0  # of the statement's first code character; 0 until there is one

    def finish() -> None:
        nonlocal current, rewrites, first_line
        body = "".join(current).strip()
        if first_line and _strip_comments(body).strip():
            statements.append(Statement(first_line, body, rewrites))
        current, rewrites, first_line = [], 0, 0

    for kind, piece in _pieces(text):
        if kind != "code":
            if kind == "string" and not first_line:
                first_line, current = line, []
            current.append(piece)
            line += piece.count("\n")
            continue
        chunk: list[str] = []
        for c in piece:
            if c == ";" and depth == 0:
                code, n = rewrite_1x("".join(chunk))
                current.append(code)
                rewrites += n
                chunk = []
                finish()
            else:
                if not first_line and not c.isspace():
                    first_line = line
                    current = []  # leading comments belong to no statement
                depth += (c in _OPEN) - (c in _CLOSE)
                depth = max(depth, 0)
                chunk.append(c)
            line += c == "\n"
        code, n = rewrite_1x("".join(chunk))
        current.append(code)
        rewrites += n
    finish()
    return statements
