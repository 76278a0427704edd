"""Reading the text files of datasets (JSON, JSON Lines, CSV, id lists) with errors that name the file and line.

A byte that is not UTF-8, a malformed JSON line, or a caption with an unencodable character (a lone
surrogate, as ``errors="surrogateescape"`` or a JSON ``\\udcxx`` escape leaves behind) fails here with
the file, the line and what was expected, instead of deep inside a tokenizer.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

PathLike = Union[str, Path]


class DataFileError(ValueError):
    """A dataset file is missing, malformed or not UTF-8; the message names the file (and line)."""


def require_file(path: PathLike, purpose: Optional[str] = None) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found" + (f" ({purpose})" if purpose else ""))
    return path


def read_text(path: PathLike, purpose: Optional[str] = None) -> str:
    """The file decoded as UTF-8 (a BOM is dropped); a bad byte names its line and column."""
    path = require_file(path, purpose)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataFileError(
            f"{path}: line {line}, column {column}: byte 0x{data[error.start]:02x} is not valid UTF-8 "
            "(re-save the file as UTF-8)"
        ) from None


def check_text(value: str, where: str) -> str:
    """``value`` if it can be encoded as UTF-8; a lone surrogate (e.g. from surrogateescape) names ``where``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataFileError(
            f"{where}: character {value[error.start]!r} at position {error.start} of {value!r} cannot be encoded "
            "(a lone surrogate: the text was decoded with errors='surrogateescape' or holds a \\udcxx escape)"
        ) from None
    return value


def read_json(path: PathLike, purpose: Optional[str] = None) -> Any:
    path = Path(path)
    text = read_text(path, purpose)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path}: line {error.lineno}: invalid JSON: {error.msg}") from None


def read_jsonl(path: PathLike, purpose: Optional[str] = None) -> Iterator[tuple[int, Any]]:
    """``(line number, record)`` for every non-blank line of a JSON Lines file."""
    path = Path(path)
    for number, line in enumerate(read_text(path, purpose).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFileError(f"{path}: line {number}: invalid JSON: {error.msg}") from None


def read_lines(path: PathLike, purpose: Optional[str] = None) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` for every non-blank line."""
    return [(n, line.strip()) for n, line in enumerate(read_text(path, purpose).splitlines(), start=1) if line.strip()]


def read_csv_rows(path: PathLike, purpose: Optional[str], required_columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV file with a header that has ``required_columns``."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path, purpose), newline=""))
    missing = [column for column in required_columns if column not in (reader.fieldnames or [])]
    if missing:
        raise DataFileError(f"{path}: line 1: missing column(s) {missing} in header {reader.fieldnames}")
    rows = []
    for row in reader:
        if None in row:
            raise DataFileError(f"{path}: line {reader.line_num}: more fields than the header's {len(reader.fieldnames)}")
        rows.append((reader.line_num, row))
    if not rows:
        raise DataFileError(f"{path}: no rows after the header")
    return rows


__all__ = [
    "DataFileError",
    "check_text",
    "read_csv_rows",
    "read_json",
    "read_jsonl",
    "read_lines",
    "read_text",
    "require_file",
]
