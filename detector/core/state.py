"""The state format: declared plain data in a small, versioned, non-executing binary encoding.

Everything skewwatch persists or sends between workers - checkpoints, window partials, engine
snapshots for ``skewwatch report`` - is one value of these types, and nothing else:

==============================  ===========================================================
type                            encoding (tag byte, then little-endian fields)
==============================  ===========================================================
None, True, False               ``N``, ``T``, ``F``
int (signed 64 bit)             ``i`` + 8 bytes; larger ints: ``n`` + decimal text (<= 4,300 digits)
float (incl. inf, nan)          ``d`` + IEEE 754 double
str                             ``s`` + u32 length + UTF-8
bytes                           ``b`` + u32 length + bytes
list (tuples become lists)      ``l`` + u32 count + items; a list of str only: ``S`` + u32 count +
                                u32 lengths + UTF-8 (ids of pending predictions, fast)
dict with str keys              ``m`` + u32 count + (u32 length + UTF-8 key, value) pairs
numpy array                     ``a`` + dtype code + ndim + u64 per dimension + raw bytes, for
                                bool, int8..64, uint8..64, float32/64 only (never objects)
==============================  ===========================================================

A blob is a 24-byte header - magic ``SWST``, format version, flags (bit 0: zlib), payload length,
CRC-32 of the payload - and the (optionally zlib-compressed) payload. :func:`pack` wraps a value
as ``{"kind": ..., "version": ..., "data": ...}`` so a reader checks what it got and migrates or
refuses older layouts of its own content.

Decoding never executes anything and never allocates more than the input asks for: every length
and count is checked against the bytes that remain *before* anything is allocated, the payload
length is checked against ``max_bytes`` before decompressing (and decompression stops there),
nesting is limited to :data:`MAX_DEPTH`, and any malformed input raises :class:`StateError` and
nothing else. Decoded memory is at most a small constant times the payload length (a list of
``None`` costs 1 byte of input and 8 bytes of memory per item).

>>> import numpy as np
>>> blob = pack("example", 1, {"n": 3, "x": np.arange(3.0), "ids": ["a", "b"], "nan": float("nan")})
>>> out = unpack(blob, "example", {1})
>>> out["n"], out["x"].tolist(), out["ids"], out["nan"] != out["nan"]
(3, [0.0, 1.0, 2.0], ['a', 'b'], True)
>>> unpack(b"\\x80\\x04K\\x01.", "example", {1})
Traceback (most recent call last):
...
detector.core.state.StateError: not a skewwatch state blob (no SWST header): refusing to read it (an older, pickled checkpoint or foreign data); discard it and start fresh
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = ["StateError", "encode", "decode", "pack", "unpack", "MAGIC", "FORMAT", "MAX_DEPTH", "DEFAULT_MAX_BYTES"]

MAGIC = b"SWST"
FORMAT = 1
MAX_DEPTH = 64
MAX_NDIM = 8
MAX_INT_DIGITS = 4300  # Python's own limit for int <-> str conversion
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of decoded payload
_HEADER = struct.Struct("<4sBBHQII")  # magic, format, flags, reserved, payload length, crc32, reserved
_FLAG_ZLIB = 1
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U64 = struct.Struct("<Q")
_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")
_DT_CODE = {np.dtype(n): i for i, n in enumerate(_DTYPES)}
_DT_OF = [np.dtype(n).newbyteorder("<") for n in _DTYPES]
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class StateError(ValueError):
    """The bytes are not a readable skewwatch state (or the value cannot be written as one)."""


# ---------------------------------------------------------------------------------------- encode
def encode(obj: Any, compress: int = 1) -> bytes:
    """One plain value as a blob; ``compress`` is the zlib level (0 = none)."""
    out: list[bytes] = []
    _enc(obj, out, "$", 0)
    payload = b"".join(out)
    crc = zlib.crc32(payload)
    flags = 0
    if compress:
        payload = zlib.compress(payload, compress)
        flags |= _FLAG_ZLIB
    return _HEADER.pack(MAGIC, FORMAT, flags, 0, sum(map(len, out)), crc, 0) + payload


def _enc(o: Any, out: list[bytes], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise StateError(f"state nested deeper than {MAX_DEPTH} levels at {path}")
    if o is None:
        out.append(b"N")
    elif o is True or o is False or isinstance(o, np.bool_):
        out.append(b"T" if o else b"F")
    elif isinstance(o, int | np.integer):
        v = int(o)
        if _I64_MIN <= v <= _I64_MAX:
            out.append(b"i" + _I64.pack(v))
        else:
            txt = str(v).encode()
            if len(txt) > MAX_INT_DIGITS:
                raise StateError(f"integer with {len(txt)} digits at {path} is too large for the state format")
            out.append(b"n" + _U32.pack(len(txt)) + txt)
    elif isinstance(o, float | np.floating):
        out.append(b"d" + _F64.pack(float(o)))
    elif isinstance(o, str):
        b = o.encode("utf-8", "surrogatepass")
        out.append(b"s" + _U32.pack(len(b)) + b)
    elif isinstance(o, bytes | bytearray | memoryview):
        b = bytes(o)
        out.append(b"b" + _U32.pack(len(b)) + b)
    elif isinstance(o, list | tuple):
        if o and all(type(x) is str for x in o):
            bs = [x.encode("utf-8", "surrogatepass") for x in o]
            out.append(b"S" + _U32.pack(len(bs)) + np.fromiter(map(len, bs), dtype="<u4", count=len(bs)).tobytes())
            out.append(b"".join(bs))
            return
        out.append(b"l" + _U32.pack(len(o)))
        for i, x in enumerate(o):
            _enc(x, out, f"{path}[{i}]", depth + 1)
    elif isinstance(o, dict):
        out.append(b"m" + _U32.pack(len(o)))
        for k, v in o.items():
            if not isinstance(k, str):
                raise StateError(f"dict key {k!r} ({type(k).__name__}) at {path}: state dicts have str keys only")
            kb = k.encode("utf-8", "surrogatepass")
            out.append(_U32.pack(len(kb)) + kb)
            _enc(v, out, f"{path}.{k}", depth + 1)
    elif isinstance(o, np.ndarray):
        code = _DT_CODE.get(o.dtype.newbyteorder("=")) if o.dtype.kind in "biuf" else None
        if code is None:
            raise StateError(f"numpy array of dtype {o.dtype} at {path}: only bool, int, uint and float arrays are state")
        if o.ndim > MAX_NDIM:
            raise StateError(f"numpy array with {o.ndim} dimensions at {path} (at most {MAX_NDIM})")
        a = np.ascontiguousarray(o, dtype=_DT_OF[code])
        out.append(b"a" + bytes((code, a.ndim)) + b"".join(_U64.pack(n) for n in a.shape))
        out.append(a.tobytes())
    else:
        raise StateError(f"{type(o).__name__} at {path} is not plain state data (None, bool, int, float, str, bytes, "
                         "list, dict with str keys, numpy array); convert it in to_state()")


# ---------------------------------------------------------------------------------------- decode
def decode(blob: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The value of a blob written by :func:`encode`; :class:`StateError` for anything else."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise StateError(f"state must be bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _HEADER.size or blob[:4] != MAGIC:
        raise StateError("not a skewwatch state blob (no SWST header): refusing to read it (an older, pickled "
                         "checkpoint or foreign data); discard it and start fresh")
    _, fmt, flags, _, n, crc, _ = _HEADER.unpack_from(blob)
    if fmt != FORMAT:
        raise StateError(f"state format {fmt} is not {FORMAT} (written by another skewwatch version); discard it and "
                         "start fresh, or read it with the version that wrote it")
    if n > max_bytes:
        raise StateError(f"state payload of {n} bytes exceeds the limit of {max_bytes} bytes")
    body = blob[_HEADER.size :]
    if flags & _FLAG_ZLIB:
        d = zlib.decompressobj()
        try:
            payload = d.decompress(body, n)
            if len(payload) < n or d.unconsumed_tail:
                raise StateError(f"state payload length does not match its header ({len(payload)} != {n} bytes)")
        except zlib.error as exc:
            raise StateError(f"state payload is not valid zlib data ({exc})") from exc
    else:
        payload = body
    if len(payload) != n:
        raise StateError(f"state payload length does not match its header ({len(payload)} != {n} bytes)")
    if zlib.crc32(payload) != crc:
        raise StateError("state payload is corrupt (CRC-32 mismatch)")
    r = _Reader(payload)
    try:
        v = r.value(0)
    except (struct.error, UnicodeDecodeError, ValueError, OverflowError, MemoryError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"state payload is malformed at byte {r.pos}: {type(exc).__name__}: {exc}") from exc
    if r.pos != len(payload):
        raise StateError(f"state payload has {len(payload) - r.pos} trailing bytes")
    return v


class _Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos, self.end = buf, 0, len(buf)

    def _need(self, k: int, what: str) -> None:
        if k < 0 or self.pos + k > self.end:
            raise StateError(f"state payload truncated: {what} needs {k} bytes at byte {self.pos}, "
                             f"{self.end - self.pos} remain")

    def _u32(self, what: str) -> int:
        self._need(4, what)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def _text(self, k: int, what: str) -> str:
        self._need(k, what)
        s = self.buf[self.pos : self.pos + k].decode("utf-8", "surrogatepass")
        self.pos += k
        return s

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise StateError(f"state nested deeper than {MAX_DEPTH} levels")
        self._need(1, "a tag")
        tag = self.buf[self.pos]
        self.pos += 1
        if tag == 0x4E:  # N
            return None
        if tag == 0x54:  # T
            return True
        if tag == 0x46:  # F
            return False
        if tag == 0x69:  # i
            self._need(8, "an int")
            (v,) = _I64.unpack_from(self.buf, self.pos)
            self.pos += 8
            return int(v)
        if tag == 0x64:  # d
            self._need(8, "a float")
            (f,) = _F64.unpack_from(self.buf, self.pos)
            self.pos += 8
            return float(f)
        if tag == 0x73:  # s
            return self._text(self._u32("a str length"), "a str")
        if tag == 0x62:  # b
            k = self._u32("a bytes length")
            self._need(k, "bytes")
            b = self.buf[self.pos : self.pos + k]
            self.pos += k
            return bytes(b)
        if tag == 0x6E:  # n: big int
            k = self._u32("an int length")
            if k > MAX_INT_DIGITS + 1:
                raise StateError(f"integer of {k} digits exceeds {MAX_INT_DIGITS}")
            txt = self._text(k, "an int")
            if not txt or not txt.lstrip("-").isdigit() or not txt.isascii():
                raise StateError(f"malformed integer {txt[:40]!r}")
            return int(txt)
        if tag == 0x6C:  # l
            k = self._u32("a list count")
            self._need(k, "list items")  # every item takes at least one byte
            return [self.value(depth + 1) for _ in range(k)]
        if tag == 0x53:  # S: list of str
            k = self._u32("a str list count")
            self._need(4 * k, "str list lengths")
            lens = np.frombuffer(self.buf, dtype="<u4", count=k, offset=self.pos).astype(np.int64)
            self.pos += 4 * k
            total = int(lens.sum())
            self._need(total, "str list text")
            ends = np.cumsum(lens) + self.pos
            starts = ends - lens
            buf = self.buf
            out = [buf[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
            self.pos += total
            return out
        if tag == 0x6D:  # m
            k = self._u32("a dict count")
            self._need(5 * k, "dict entries")  # key length + value tag at least
            d: dict[str, Any] = {}
            for _ in range(k):
                key = self._text(self._u32("a key length"), "a key")
                d[key] = self.value(depth + 1)
            return d
        if tag == 0x61:  # a
            self._need(2, "an array header")
            code, ndim = self.buf[self.pos], self.buf[self.pos + 1]
            self.pos += 2
            if code >= len(_DT_OF):
                raise StateError(f"unknown array dtype code {code}")
            if ndim > MAX_NDIM:
                raise StateError(f"array with {ndim} dimensions (at most {MAX_NDIM})")
            self._need(8 * ndim, "an array shape")
            shape = [int(_U64.unpack_from(self.buf, self.pos + 8 * i)[0]) for i in range(ndim)]
            self.pos += 8 * ndim
            dt = _DT_OF[code]
            count = 1
            for s in shape:
                if s > self.end:  # no dimension can be larger than the payload (0-size axes aside)
                    raise StateError(f"array dimension {s} exceeds the payload size")
                count *= s
            nbytes = count * dt.itemsize
            self._need(nbytes, "array data")
            a = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos).reshape(shape).astype(dt.newbyteorder("="))
            self.pos += nbytes
            return a
        raise StateError(f"unknown tag {tag:#04x} at byte {self.pos - 1}")


# ---------------------------------------------------------------------------------------- wrap
def pack(kind: str, version: int, data: Any, compress: int = 1) -> bytes:
    """``data`` as a blob that says what it is (``kind``) and which layout of it (``version``)."""
    return encode({"kind": kind, "version": version, "data": data}, compress)


def unpack(blob: bytes, kind: str, versions: Collection[int], max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The ``data`` of a :func:`pack` blob of ``kind`` in one of ``versions`` (else :class:`StateError`).

    Returns ``data``; a caller that migrates older layouts reads the version with :func:`unpack_versioned`.
    """
    return unpack_versioned(blob, kind, versions, max_bytes)[1]


def unpack_versioned(blob: bytes, kind: str, versions: Collection[int], max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[int, Any]:
    v = decode(blob, max_bytes)
    if not isinstance(v, dict) or not isinstance(v.get("kind"), str) or "data" not in v:
        raise StateError(f"not a packed skewwatch state (expected a {kind!r})")
    if v["kind"] != kind:
        raise StateError(f"state is a {v['kind']!r}, not a {kind!r}")
    ver = v.get("version")
    if ver not in versions:
        raise StateError(f"{kind} state version {ver!r} is not one this skewwatch reads ({sorted(versions)}); it was "
                         "written by another version: discard it and start fresh, or use the version that wrote it")
    return int(ver), v["data"]


# ---------------------------------------------------------------------------------------- helpers for to_state/load_state
def load_arrays(obj: Any, st: dict[str, Any], names: Collection[str], what: str) -> None:
    """Set ``obj.<name>`` from ``st[name]`` for each name, keeping each current array's shape and dtype.

    The object was built empty for its layout, so its arrays have the shapes the state must have:
    a state whose array does not fit (another layout, or forged) is refused with :class:`StateError`
    instead of failing later, mid-stream. Adding a field to a class's state is adding its name here.
    """
    for name in names:
        cur = getattr(obj, name)
        new = st.get(name)
        if not isinstance(new, np.ndarray):
            raise StateError(f"{what}: {name} is {type(new).__name__}, expected an array of shape {cur.shape}")
        if new.shape != cur.shape:
            raise StateError(f"{what}: {name} has shape {new.shape}, expected {cur.shape} (state of another layout)")
        setattr(obj, name, new.astype(cur.dtype, copy=True))


def check(cond: bool, what: str) -> None:
    """Raise :class:`StateError` naming ``what`` unless ``cond``."""
    if not cond:
        raise StateError(f"invalid state: {what}")


def pairs(d: dict[Any, Any]) -> list[list[Any]]:
    """A dict with non-str keys (floats, tuples) as a list of ``[key, value]`` rows."""
    return [[list(k) if isinstance(k, tuple) else k, v] for k, v in d.items()]


def unpairs(rows: Any, key: Any = float, what: str = "pairs") -> dict[Any, Any]:
    """Inverse of :func:`pairs`; ``key`` converts each key (e.g. ``float`` or ``tuple``)."""
    check(isinstance(rows, list) and all(isinstance(r, list) and len(r) == 2 for r in rows), f"{what} must be [key, value] rows")
    return {key(k): v for k, v in rows}


__all__ += ["unpack_versioned", "load_arrays", "check", "pairs", "unpairs"]
