"""Data fingerprints: what a file or folder of data is, by content hash, size, rows and schema.

The one implementation: the review report describes each data task's output with
:func:`describe_table` and :func:`folder_fingerprint` (the digest the engine records for a
task's artifacts, which cache keys and reproductions compare), and :func:`fingerprint_path`
describes any file or folder the same way.

Every file is hashed. Tables are described where the format says so without executing or
unpickling anything: numpy ``.npy``/``.npz`` (array headers only, never the data), CSV/TSV
(header, column types guessed from the first rows, a streamed record count), JSON/JSONL
(top-level type, rows, first record's fields) and Parquet (footer metadata, only when
pyarrow is installed). A file that claims a format but cannot be read is listed as
unreadable; it never raises.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.util
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NotRequired, TypedDict

import numpy as np

from signoff.errors import NotFoundError

__all__ = [
    "Column",
    "FileEntry",
    "Fingerprint",
    "MAX_JSON_BYTES",
    "MAX_SCHEMA_BYTES",
    "Table",
    "Unreadable",
    "describe_table",
    "file_sha256",
    "fingerprint_path",
    "folder_fingerprint",
]

MAX_SCHEMA_BYTES = 2 * 1024**3
"""Files larger than this are hashed but their schema is not read."""

MAX_JSON_BYTES = 256 * 1024**2
"""A ``.json`` file is parsed whole; above this size only its top-level type is read."""

_CHUNK = 1 << 20
_TYPE_SAMPLE_ROWS = 100  # CSV column types are guessed from this many records


class Column(TypedDict):
    """One column of a table (or one array of an ``.npz``, with its ``shape``)."""

    name: str
    dtype: str
    shape: NotRequired[list[int]]


class Table(TypedDict):
    """The schema of one tabular file: relative path, format, row count and columns."""

    path: str
    format: str
    rows: int | None
    columns: list[Column]
    top_level: NotRequired[str]


class FileEntry(TypedDict):
    """One file: relative path, sha256 and size in bytes."""

    path: str
    sha256: str
    bytes: int


class Unreadable(TypedDict):
    """A file whose format is known but whose content could not be read as that format."""

    path: str
    reason: str


class Fingerprint(TypedDict):
    """A data fingerprint; ``digest`` is the sha256 over (relative path, sha256) pairs."""

    digest: str
    files: int
    bytes: int
    rows: int | None
    tables: list[Table]
    entries: list[FileEntry]
    unreadable: list[Unreadable]


def folder_fingerprint(files: Iterable[tuple[str, str]]) -> str:
    """One digest for a set of files: sha256 over ``"<path>\\0<sha256>\\0"``, sorted by path.

    ``files`` are (relative path, content sha256) pairs; the engine computes it over a task
    run's artifact records, the report over the same records, :func:`fingerprint_path` over
    what it hashed.
    """
    h = hashlib.sha256()
    for rel, sha in sorted(files):
        h.update(f"{rel}\0{sha}\0".encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read in chunks): the digest artifacts are stored under."""
    return _sha256(path, None)


def describe_table(path: Path, rel: str) -> Table | None:
    """The schema of one file if its format is a table one (``None`` otherwise).

    Reads headers (and, for CSV/TSV and JSONL, streams the file once to count records);
    raises ``OSError``/``ValueError``/``EOFError``/``zipfile.BadZipFile``/``csv.Error`` for
    a file that claims a format it does not hold.
    """
    reader = _reader_for(path.suffix.lower())
    if reader is None:
        return None
    counter = None
    if reader in _COUNTED:
        counter = _RecordCounter(quotes=reader is _read_csv)
        _sha256(path, counter)
    return reader(path, rel, counter)


def fingerprint_path(path: Path) -> Fingerprint:
    """Fingerprint a data file or folder (symlinked folders are followed, once each).

    ``digest`` is :func:`folder_fingerprint` of every file (a single file's relative path is
    its name). ``rows`` is the sum of the rows of every table whose row count is known, or
    ``None`` if there is none.
    """
    if not path.exists():
        raise NotFoundError(f"no data at {path}")
    root = path if path.is_dir() else path.parent
    files = sorted(_walk(path), key=lambda p: p.relative_to(root).as_posix())
    entries: list[FileEntry] = []
    tables: list[Table] = []
    unreadable: list[Unreadable] = []
    for file in files:
        rel = file.relative_to(root).as_posix()
        size = file.stat().st_size
        reader = _reader_for(file.suffix.lower()) if size <= MAX_SCHEMA_BYTES else None
        counter = _RecordCounter(quotes=reader is _read_csv) if reader in _COUNTED else None
        sha = _sha256(file, counter)
        entries.append(FileEntry(path=rel, sha256=sha, bytes=size))
        if reader is None:
            continue
        try:
            tables.append(reader(file, rel, counter))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, csv.Error) as exc:
            unreadable.append(Unreadable(path=rel, reason=f"{type(exc).__name__}: {exc}"))
    known = [t["rows"] for t in tables if t["rows"] is not None]
    return Fingerprint(
        digest=folder_fingerprint((e["path"], e["sha256"]) for e in entries),
        files=len(entries),
        bytes=sum(e["bytes"] for e in entries),
        rows=sum(known) if known else None,
        tables=tables,
        entries=entries,
        unreadable=unreadable,
    )


def _walk(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    seen: set[str] = set()
    for folder, dirs, names in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop or a folder linked twice
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        for name in names:
            file = Path(folder) / name
            if file.is_file():
                yield file


class _RecordCounter:
    """Counts newline-ended records of a byte stream (CSV: ignoring newlines inside quotes)."""

    def __init__(self, *, quotes: bool) -> None:
        self.quotes = quotes
        self.newlines = 0
        self.quoted = False
        self.last = b""

    def feed(self, chunk: bytes) -> None:
        if not self.quotes or (b'"' not in chunk and not self.quoted):
            self.newlines += chunk.count(b"\n")
        else:
            # Split on quotes: the parts alternate outside/inside a quoted field, and an
            # escaped quote ("") flips twice, so it leaves the state as it was.
            for i, part in enumerate(chunk.split(b'"')):
                if i:
                    self.quoted = not self.quoted
                if not self.quoted:
                    self.newlines += part.count(b"\n")
        self.last = chunk[-1:]

    @property
    def records(self) -> int:
        """Number of records, counting a last line without a trailing newline."""
        return self.newlines + (1 if self.last not in (b"", b"\n") else 0)


def _sha256(path: Path, counter: _RecordCounter | None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
            if counter is not None:
                counter.feed(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- numpy


def _read_npy(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    with path.open("rb") as f:
        shape, dtype = _npy_header(f)
    return Table(
        path=rel,
        format="npy",
        rows=shape[0] if shape else None,
        columns=[Column(name=path.stem, dtype=dtype, shape=list(shape))],
    )


def _read_npz(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    columns: list[Column] = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as f:
                shape, dtype = _npy_header(f)
            columns.append(Column(name=info.filename[:-4], dtype=dtype, shape=list(shape)))
    first = columns[0]["shape"] if columns else []
    return Table(path=rel, format="npz", rows=first[0] if first else None, columns=columns)


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], str]:
    """Shape and dtype from an ``.npy`` header; the array data is never read."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        # 3.0 differs from 2.0 only in allowing utf-8 field names in the header
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(n) for n in shape), str(dtype)


# ---------------------------------------------------------------- CSV / TSV


def _read_csv(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        sample = [row for _, row in zip(range(_TYPE_SAMPLE_ROWS), reader, strict=False)]
    if header is None:
        return Table(path=rel, format=path.suffix.lower()[1:], rows=0, columns=[])
    rows = counter.records - 1 if counter is not None else None
    columns = [
        Column(name=name, dtype=_guess_type([r[i] for r in sample if i < len(r)]))
        for i, name in enumerate(header)
    ]
    return Table(path=rel, format=path.suffix.lower()[1:], rows=rows, columns=columns)


def _guess_type(values: list[str]) -> str:
    present = [v for v in values if v != ""]
    if not present:
        return "unknown"
    for dtype, parse in (("int", int), ("float", float)):
        try:
            for v in present:
                parse(v)
        except ValueError:
            continue
        return dtype
    if all(v.lower() in ("true", "false") for v in present):
        return "bool"
    return "str"


# ---------------------------------------------------------------- JSON


def _read_json(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    if path.stat().st_size > MAX_JSON_BYTES:
        return Table(path=rel, format="json", rows=None, columns=[], top_level=_first_type(path))
    with path.open("rb") as f:
        data = json.load(f)
    rows = len(data) if isinstance(data, list) else None
    first = data[0] if isinstance(data, list) and data else data
    return Table(
        path=rel, format="json", rows=rows, columns=_fields(first), top_level=_json_type(data)
    )


def _read_jsonl(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    with path.open("rb") as f:
        first_line = b""
        for line in f:
            if line.strip():
                first_line = line
                break
    first = json.loads(first_line) if first_line else None
    rows = counter.records if counter is not None else None
    return Table(
        path=rel,
        format="jsonl",
        rows=rows,
        columns=_fields(first),
        top_level=_json_type(first) if first_line else "empty",
    )


def _first_type(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return {b"[": "list", b"{": "object", b'"': "string"}.get(head[:1], "scalar")


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    return "scalar" if value is not None else "null"


def _fields(record: object) -> list[Column]:
    if not isinstance(record, dict):
        return []
    return [Column(name=str(k), dtype=_json_value_type(v)) for k, v in record.items()]


def _json_value_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "object"


# ---------------------------------------------------------------- Parquet


def _read_parquet(path: Path, rel: str, counter: _RecordCounter | None) -> Table:
    parquet: Any = importlib.import_module("pyarrow.parquet")
    meta = parquet.ParquetFile(str(path)).metadata  # the footer only
    schema = meta.schema.to_arrow_schema()
    columns = [Column(name=str(f.name), dtype=str(f.type)) for f in schema]
    return Table(path=rel, format="parquet", rows=int(meta.num_rows), columns=columns)


_Reader = Callable[[Path, str, _RecordCounter | None], Table]
_READERS: dict[str, _Reader] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}
_COUNTED: tuple[_Reader, ...] = (_read_csv, _read_jsonl)  # row counts come from the hash pass


def _reader_for(suffix: str) -> _Reader | None:
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        return None  # Parquet needs pyarrow; without it the file is only hashed
    return _READERS.get(suffix)
