"""The state format: plain values only, versioned, and a decoder that hostile bytes cannot misuse."""

from __future__ import annotations

import math
import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.state.codec import StateError, decode, encode, pack, unpack, unpack_versioned

HEADER = struct.Struct("<4sBBHQII")


def blob_of(payload: bytes, fmt: int = 1, compress: bool = False) -> bytes:
    """A blob around an arbitrary payload, with a correct length and CRC (so the payload reader is reached)."""
    body = zlib.compress(payload, 1) if compress else payload
    return HEADER.pack(b"SWST", fmt, 1 if compress else 0, 0, len(payload), zlib.crc32(payload), 0) + body


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                                   "float32", "float64"])
def test_every_numeric_dtype_round_trips_with_its_shape(dtype):
    rng = np.random.default_rng(1)
    a = (rng.random((3, 4, 5)) * 100).astype(dtype)
    for v in (a, a[:, 1:3], np.asfortranarray(a), np.zeros((70, 2), dtype), np.zeros((0, 7), dtype), np.ones(1, dtype)):
        out = decode(encode(v))
        assert out.dtype == np.dtype(dtype) and out.shape == v.shape and np.array_equal(out, v)
        assert out.flags.writeable and out.flags.c_contiguous


def test_scalars_containers_and_special_values():
    v = {"none": None, "t": True, "f": False, "i": -(2**63), "u": 2**64 - 1, "big": 10**300, "neg": -(10**50),
         "nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "s": "naïve ☃ \ud800", "b": b"\x00\xff",
         "l": [1, "a", None, [2.5]], "t2": (1, 2), "ids": ["a", "b", "é"], "empty": {}, "np": np.int64(7)}
    out = decode(encode(v))
    want = {**v, "t2": [1, 2], "np": 7}
    assert same(want, out)
    assert type(out["np"]) is int and out["big"] == 10**300


def test_pack_says_what_it_is_and_unpack_refuses_other_kinds_and_versions():
    blob = pack("engine", 3, {"x": 1})
    assert unpack(blob, "engine", {3}) == {"x": 1}
    assert unpack_versioned(blob, "engine", {2, 3}) == (3, {"x": 1})
    with pytest.raises(StateError, match="is a 'engine', not a 'partial'"):
        unpack(blob, "partial", {3})
    with pytest.raises(StateError, match=r"version 3 is not one this skewwatch reads \(\[1, 2\]\)"):
        unpack(blob, "engine", {1, 2})
    with pytest.raises(StateError, match="not a packed skewwatch state"):
        unpack(encode([1, 2]), "engine", {3})


def test_values_that_are_not_plain_data_are_refused_when_written():
    for bad in ({1, 2}, np.array(["x"], dtype=object), np.zeros(3, dtype=complex), object(), 10**5000,
                {"a": [Path("/tmp")]}):
        with pytest.raises(StateError):
            encode(bad)
    with pytest.raises(StateError, match="str keys|map key"):  # a non-str key cannot be read back
        decode(encode({1: 2}))


# ---------------------------------------------------------------------------------------- refusals
def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Exploit())
    for data in (payload, zlib.compress(payload), blob_of(payload), blob_of(payload, compress=True)):
        with pytest.raises(StateError):
            decode(data)
    assert not marker.exists()


def test_header_checks_come_before_any_work():
    good = encode({"x": np.arange(10.0)})
    with pytest.raises(StateError, match="no SWST header"):
        decode(b"SWS")
    with pytest.raises(StateError, match="state format 9 is not 1"):
        decode(good[:4] + bytes([9]) + good[5:])
    with pytest.raises(StateError, match="exceeds the limit"):  # a declared 1 TB payload is refused before inflating
        decode(HEADER.pack(b"SWST", 1, 1, 0, 1 << 40, 0, 0) + zlib.compress(b"\x00" * 100))
    with pytest.raises(StateError, match="exceeds the limit of 10 bytes"):
        decode(good, max_bytes=10)
    with pytest.raises(StateError, match="CRC-32"):
        decode(blob_of(b"\x90")[:-1] + b"\x91")
    with pytest.raises(StateError, match="length does not match"):
        decode(good[: len(good) // 2])
    with pytest.raises(StateError, match="not valid zlib"):
        decode(HEADER.pack(b"SWST", 1, 1, 0, 5, 0, 0) + b"notzlib")


def test_lengths_and_shapes_are_bounded_by_the_input():
    huge_list = b"\xdd\xff\xff\xff\xff"  # msgpack: an array of 2**32 - 1 items in 5 bytes
    with pytest.raises(StateError, match="exceeds max_array_len"):
        decode(blob_of(huge_list))
    arr = msgpack.packb(msgpack.ExtType(1, bytes((10, 2)) + struct.pack("<QQ", 1 << 30, 1 << 30)))
    with pytest.raises(StateError, match="exceeds its data"):
        decode(blob_of(arr))
    arr = msgpack.packb(msgpack.ExtType(1, bytes((10, 1)) + struct.pack("<Q", 3) + b"\x00" * 16))
    with pytest.raises(StateError, match="needs 24 bytes, got 16"):
        decode(blob_of(arr))
    zeros = msgpack.packb(msgpack.ExtType(3, bytes((10, 2)) + struct.pack("<QQ", 1 << 20, 1 << 20)))  # 8 TiB of zeros
    with pytest.raises(StateError, match="exceeds what this blob may allocate"):
        decode(blob_of(zeros))
    many = msgpack.packb([msgpack.ExtType(3, bytes((10, 1)) + struct.pack("<Q", 1 << 22))] * 200)  # 200 x 32 MiB
    with pytest.raises(StateError, match="exceeds what this blob may allocate"):
        decode(blob_of(many))
    deep = b"\x91" * 5000 + b"\xc0"
    with pytest.raises(StateError):
        decode(blob_of(deep))
    with pytest.raises(StateError, match="unknown extension type 77"):
        decode(blob_of(msgpack.packb(msgpack.ExtType(77, b""))))
    with pytest.raises(StateError, match="unknown array dtype code 200"):
        decode(blob_of(msgpack.packb(msgpack.ExtType(1, bytes((200, 0)) + b"\x00" * 8))))


# ---------------------------------------------------------------------------------------- fuzz
def _decode_only_state_errors(data: bytes) -> None:
    tracemalloc.start()
    try:
        decode(data)
    except StateError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # never more than the zero-array allowance plus a constant per input byte
    assert peak <= (256 << 20) + 512 * len(data) + (1 << 20), peak


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data):
    _decode_only_state_errors(data)
    _decode_only_state_errors(b"SWST" + data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.booleans())
def test_fuzz_arbitrary_payloads_behind_a_valid_header(payload, compress):
    _decode_only_state_errors(blob_of(payload, compress=compress))


_VALID = encode({"w": {"num": np.arange(60, dtype=np.int64).reshape(6, 10), "z": np.zeros((8, 9))}, "ids": ["a", "b"],
                 "x": [1.5, None, "s", b"b", 10**30]}, compress=0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 25), st.integers(0, 255)), min_size=1, max_size=6))
def test_fuzz_mutated_valid_blobs(edits):
    payload = bytearray(_VALID[24:])
    for pos, byte in edits:
        payload[pos] = byte
    _decode_only_state_errors(blob_of(bytes(payload)))


plain = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats(allow_nan=True)
    | st.text(max_size=20) | st.binary(max_size=20)
    | st.builds(lambda n, d: np.arange(n, dtype=d), st.integers(0, 80), st.sampled_from(["int16", "float32", "uint8"])),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain)
def test_fuzz_round_trip_of_plain_values(v):
    assert same(v, decode(encode(v)))


def test_the_package_has_no_executable_serialisation():
    """No module of the package imports a format that runs code or builds objects when read."""
    import ast

    import detector

    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
    root = Path(detector.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names if n.split(".")[0] in banned]
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(getattr(node.func, "value", None), "id", None) == "yaml":
                found.append(f"{path.relative_to(root)}:{node.lineno} yaml.load")  # safe_load only
    assert len(list(root.rglob("*.py"))) > 50 and not found, found
