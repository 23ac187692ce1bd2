"""The IDX format of MNIST and Fashion-MNIST: read, validate, and (for fixtures and subsets) write.

Layout (big-endian): two zero bytes; one byte data type (0x08 = uint8, ...); one byte number of dimensions k;
k uint32 sizes; then the data. Files may be gzip-compressed (they then start with the bytes 1f 8b).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

# IDX type codes -> big-endian numpy dtypes.
_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k for k, v in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and the problem."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path}: corrupted or truncated gzip stream ({exc})") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzip or raw), in native byte order; shape as the header says."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _DTYPES:
        raise DataFormatError(
            f"{path}: wrong magic number {raw[:4].hex()} (expected 0000 then a type code in "
            f"{sorted(hex(c) for c in _DTYPES)}, then the number of dimensions)"
        )
    if ndim == 0:
        raise DataFormatError(f"{path}: IDX header says 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise DataFormatError(f"{path}: {problem}: header shape {shape} needs {expected} data bytes, found {actual}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzip if ``compress``, default: when the name ends in .gz). Used for fixtures."""
    path = Path(path)
    compress = path.suffix == ".gz" if compress is None else compress
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    key = np.dtype(big.dtype)
    if key not in _CODES:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; expected one of {sorted(_DTYPES.values())}")
    payload = struct.pack(f">HBB{array.ndim}I", 0, _CODES[key], array.ndim, *array.shape) + big.tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
