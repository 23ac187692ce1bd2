"""Read the six Jane Austen novels out of the R package janeaustenr's lazy-load data base.

An R lazy-load data base is two files: ``Rdata.rdx``, an RDS-serialised index mapping each variable to
(offset, length) in ``Rdata.rdb``; and ``Rdata.rdb``, where each entry is a 4-byte big-endian uncompressed length
followed by a zlib stream of the serialised R object. The PyPI package ``rdata`` parses the serialisation itself.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

# janeaustenr's variable names, in order of publication (the order of its austen_books() table).
BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")


def _rdata():
    try:
        import rdata
    except ImportError as exc:
        raise ImportError("reading the Austen novels needs the PyPI package 'rdata': pip install 'bixt[data]'") from exc
    return rdata


def read_austen_books(rdx: Path, rdb: Path) -> dict[str, list[str]]:
    """{book variable name: its lines} for the six novels, each line a string (empty lines kept)."""
    with warnings.catch_warnings():
        # rdata warns that the .rdx extension (and an in-memory entry) is not an .rds file; the format is RDS.
        warnings.simplefilter("ignore", UserWarning)
        return _read_books(_rdata(), rdx, rdb)


def _read_books(rdata, rdx: Path, rdb: Path) -> dict[str, list[str]]:
    index = rdata.conversion.convert(rdata.parser.parse_file(rdx))
    variables = {str(k): (int(v[0]), int(v[1])) for k, v in index["variables"].items()}
    missing = [b for b in BOOKS if b not in variables]
    if missing:
        raise ValueError(f"{rdx}: the index has no entries for {missing} (found {sorted(variables)})")
    raw = rdb.read_bytes()
    books = {}
    for book in BOOKS:
        offset, length = variables[book]
        blob = raw[offset : offset + length]
        if len(blob) != length or length < 4:
            raise ValueError(f"{rdb}: entry {book!r} at {offset}+{length} runs past the end ({len(raw)} bytes)")
        (expected,) = struct.unpack(">I", blob[:4])
        try:
            data = zlib.decompress(blob[4:])
        except zlib.error as exc:
            raise ValueError(f"{rdb}: entry {book!r} is not a valid zlib stream: {exc}") from exc
        if len(data) != expected:
            raise ValueError(f"{rdb}: entry {book!r} decompressed to {len(data)} bytes, its header says {expected}")
        lines = rdata.conversion.convert(rdata.parser.parse_data(data))
        books[book] = [str(line) for line in lines]
    return books
