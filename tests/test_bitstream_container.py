"""The .gvc container: round trip, corruption, limits, header schema, atomic writes (docs/bitstream.md)."""
import copy
import os
import struct
import tracemalloc
import zlib

import pytest

from gvc_jax.bitstream import (LIMITS, MAGIC, BitstreamError, anchor_chunk, breakdown, chunk_sizes, dumps_gvc,
                               idx_chunk, parse_anchor, parse_idx, parse_prompt, parse_residual, prompt_chunk,
                               read_gvc, residual_chunk, validate_header, write_gvc)
import gvc_jax.bitstream.container as container

HEADER = {
    "format": "gvc", "version": 1,
    "model": {"config": "gaussian", "fingerprint": "0123456789abcdef" * 4},
    "codec": {"mode": "t2v", "K": 4096, "M": [8, 8, 8, 8], "steps": 20, "sde_steps": 17, "g_scale": 3.0,
              "shift": 1.0, "seed": 0, "gop_frames": 16, "latent_frames": 4},
    "source": {"frames": 30, "height": 144, "width": 176, "fps": [25, 1]},
    "coded": {"frames": 32, "height": 144, "width": 176},
    "gops": [{"index": 0, "start": 0, "frames": 16}, {"index": 1, "start": 16, "frames": 14}],
}
CHUNKS = [idx_chunk(0, b"\x01\x02\x03"), idx_chunk(1, b"\xff" * 5), anchor_chunk(0, "png", b"anchor"),
          residual_chunk(1, b"resid"), prompt_chunk("a car, \u00e9t\u00e9")]


def _chunk(tag: bytes, payload: bytes) -> bytes:
    head = tag + struct.pack(">I", len(payload))
    return head + payload + struct.pack(">I", zlib.crc32(head + payload))


def _file(chunks: list[bytes], version: int = 1) -> bytes:
    return MAGIC + struct.pack(">H", version) + b"".join(chunks)


def _head() -> bytes:
    return _chunk(b"HEAD", container.encode_header(HEADER))


def test_round_trip_and_breakdown(tmp_path):
    data = dumps_gvc(HEADER, CHUNKS)
    header, chunks = read_gvc(data)
    assert header == HEADER and chunks == CHUNKS
    p = tmp_path / "a.gvc"
    assert write_gvc(p, HEADER, CHUNKS) == len(data) == p.stat().st_size
    assert p.read_bytes() == data
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert read_gvc(p) == read_gvc(str(p))
    bd = breakdown(data)
    assert sum(bd.values()) == len(data)
    assert bd["indices"] == 3 + 5 + 2 * 4 and bd["anchors"] == 4 + 1 + 3 + 6 and bd["residuals"] == 4 + 5
    assert bd["prompt"] == len("a car, \u00e9t\u00e9".encode())
    assert bd["container"] == len(MAGIC) + 2 + 12 * (len(CHUNKS) + 2)
    assert [t for t, _ in chunk_sizes(p)] == ["HEAD", "IDX ", "IDX ", "ANCH", "RESD", "PRMT", "END "]
    assert parse_idx(chunks[1][1]) == (1, b"\xff" * 5)
    assert parse_anchor(chunks[2][1]) == (0, "png", b"anchor")
    assert parse_residual(chunks[3][1]) == (1, b"resid")
    assert parse_prompt(chunks[4][1]) == "a car, \u00e9t\u00e9"
    assert read_gvc(dumps_gvc(HEADER, [])) == (HEADER, [])


def test_every_truncation_fails():
    data = dumps_gvc(HEADER, CHUNKS)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            read_gvc(data[:n])


def test_truncation_messages_name_the_chunk():
    data = dumps_gvc(HEADER, CHUNKS)
    sizes = chunk_sizes(data)
    pos = len(MAGIC) + 2
    for i, (tag, n) in enumerate(sizes[:-1]):
        with pytest.raises(BitstreamError, match=rf"truncated in chunk {i} \({tag}\)"):
            read_gvc(data[:pos + 8 + n // 2])
        pos += 12 + n
        with pytest.raises(BitstreamError, match="truncated"):
            read_gvc(data[:pos])  # cut exactly at a chunk boundary


def test_every_single_bit_flip_fails():
    data = dumps_gvc(HEADER, CHUNKS)
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                read_gvc(bytes(bad))


def test_magic_version_and_structure_errors():
    data = dumps_gvc(HEADER, CHUNKS)
    with pytest.raises(BitstreamError, match="bad magic"):
        read_gvc(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="bad magic"):
        read_gvc(b"")
    with pytest.raises(BitstreamError, match="unsupported version 7"):
        read_gvc(data[:len(MAGIC)] + struct.pack(">H", 7) + data[len(MAGIC) + 2:])
    end = _chunk(b"END ", b"")
    with pytest.raises(BitstreamError, match="unknown chunk tag"):
        read_gvc(_file([_head(), _chunk(b"XTRA", b"hello"), end]))
    with pytest.raises(BitstreamError, match="first chunk must be HEAD"):
        read_gvc(_file([_chunk(b"PRMT", b"x"), _head(), end]))
    with pytest.raises(BitstreamError, match="second HEAD"):
        read_gvc(_file([_head(), _head(), end]))
    with pytest.raises(BitstreamError, match="trailing"):
        read_gvc(data + b"\0")
    with pytest.raises(BitstreamError, match="no END"):
        read_gvc(_file([_head()]))
    with pytest.raises(BitstreamError, match="END chunk must be empty"):
        read_gvc(_file([_head(), _chunk(b"END ", b"x")]))
    with pytest.raises(BitstreamError, match="does not exist"):
        read_gvc(_file([_head(), _chunk(b"IDX ", struct.pack(">I", 2)), end]))
    with pytest.raises(BitstreamError, match="second IDX"):
        read_gvc(_file([_head(), _chunk(b"IDX ", struct.pack(">I", 1)), _chunk(b"IDX ", struct.pack(">I", 1)),
                        end]))
    with pytest.raises(BitstreamError, match="too short"):
        read_gvc(_file([_head(), _chunk(b"RESD", b"\0\0"), end]))
    with pytest.raises(BitstreamError, match="codec id"):
        read_gvc(_file([_head(), _chunk(b"ANCH", b"\0\0\0\0\x09png"), end]))
    with pytest.raises(BitstreamError, match="more than one PRMT"):
        read_gvc(_file([_head(), _chunk(b"PRMT", b"a"), _chunk(b"PRMT", b"b"), end]))
    with pytest.raises(BitstreamError, match="UTF-8"):
        read_gvc(_file([_head(), _chunk(b"PRMT", b"\xff"), end]))
    # valid CRC, but the JSON is not canonical / not JSON / has NaN
    noncanon = container.encode_header(HEADER).replace(b":", b": ", 1)
    with pytest.raises(BitstreamError, match="canonical"):
        read_gvc(_file([_chunk(b"HEAD", noncanon), end]))
    with pytest.raises(BitstreamError, match="JSON"):
        read_gvc(_file([_chunk(b"HEAD", b"{not json"), end]))
    with pytest.raises(BitstreamError, match="NaN"):
        read_gvc(_file([_chunk(b"HEAD", container.encode_header(HEADER).replace(b"3.0", b"NaN")), end]))


def test_limits_checked_before_allocation(monkeypatch):
    end = _chunk(b"END ", b"")
    # a length field over the chunk limit in a tiny file
    forged = b"IDX " + struct.pack(">I", 0xFFFFFFFF) + b"\0" * 8
    with pytest.raises(BitstreamError, match="chunk payload too large in chunk 1"):
        read_gvc(_file([_head(), forged]))
    # a HEAD length over the header limit
    with pytest.raises(BitstreamError, match="header too large"):
        read_gvc(_file([b"HEAD" + struct.pack(">I", LIMITS["max_header_bytes"] + 1) + b"{}"]))
    # a length at the limit but beyond the end of a tiny file: refused without reading 1 GiB
    forged = b"RESD" + struct.pack(">I", LIMITS["max_chunk_bytes"]) + b"\0" * 16
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=r"truncated in chunk 1 \(RESD\)"):
            read_gvc(_file([_head(), forged]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    data = dumps_gvc(HEADER, CHUNKS)
    monkeypatch.setitem(LIMITS, "max_chunks", 4)
    with pytest.raises(BitstreamError, match="too many chunks"):
        read_gvc(data)
    with pytest.raises(BitstreamError, match="too many chunks"):
        dumps_gvc(HEADER, CHUNKS)
    monkeypatch.setitem(LIMITS, "max_chunks", 100)
    monkeypatch.setitem(LIMITS, "max_file_bytes", len(data) - 1)
    with pytest.raises(BitstreamError, match="file too large"):
        read_gvc(data)
    monkeypatch.setitem(LIMITS, "max_file_bytes", 1 << 30)
    monkeypatch.setitem(LIMITS, "max_chunk_bytes", 8)
    with pytest.raises(BitstreamError, match="too large"):
        dumps_gvc(HEADER, [residual_chunk(0, b"x" * 5)])


def _mutated(path, value):
    h = copy.deepcopy(HEADER)
    obj = h
    for k in path[:-1]:
        obj = obj[k]
    if value is KeyError:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return h


@pytest.mark.parametrize("path,value,msg", [
    (("format",), "avi", "format"),
    (("version",), 2, "version"),
    (("version",), True, "version"),
    (("extra",), 1, "unknown key"),
    (("model", "fingerprint"), "abc", "fingerprint"),
    (("model", "fingerprint"), "A" * 64, "fingerprint"),
    (("model", "config"), "", "model.config"),
    (("codec", "mode"), 7, "codec.mode"),
    (("codec", "mode"), KeyError, "codec misses key"),
    (("codec",), [], "codec must be an object"),
    (("source", "frames"), 100_001, "source.frames"),
    (("source", "height"), 8193, "source.height"),
    (("source", "width"), 0, "source.width"),
    (("source", "fps"), [25, 0], r"source.fps\[1\]"),
    (("source", "fps"), [-25, 1], r"source.fps\[0\]"),
    (("source", "fps"), 25, "source.fps"),
    (("coded", "width"), 9000, "coded.width"),
    (("gops",), [], "gops"),
    (("gops",), [{"index": 0, "start": 0, "frames": 16}], "cover 16 frames"),
    (("gops",), [{"index": 0, "start": 0, "frames": 16}, {"index": 1, "start": 17, "frames": 13}], "gap"),
    (("gops",), [{"index": 0, "start": 0, "frames": 16}, {"index": 2, "start": 16, "frames": 14}], "index"),
    (("gops",), [{"index": 0, "start": 0, "frames": 31}], r"gops\[0\].frames"),
    (("gops",), [{"index": 0, "start": 0, "frames": 16}, {"index": 1, "start": 16, "frames": 15}], "ends at"),
])
def test_header_validation(path, value, msg):
    bad = _mutated(path, value)
    with pytest.raises(BitstreamError, match=msg):
        validate_header(bad)
    with pytest.raises(BitstreamError):
        dumps_gvc(bad, [])


def test_header_leaves_the_codec_fields_to_the_codec():
    """This layer checks the codec object's shape only; its fields are the codec's
    (tests/test_codec_header.py)."""
    h = _mutated(("codec", "K"), 1)
    assert read_gvc(dumps_gvc(h, []))[0] == h


def test_header_accepts_extra_codec_keys_and_overlapping_gops():
    h = _mutated(("codec", "anchor_codec"), "png")
    h["gops"] = [{"index": 0, "start": 0, "frames": 16}, {"index": 1, "start": 15, "frames": 15}]
    assert read_gvc(dumps_gvc(h, []))[0] == h


def test_write_is_atomic(tmp_path, monkeypatch):
    # non-existent directory: nothing is created
    with pytest.raises(OSError):
        write_gvc(tmp_path / "missing" / "a.gvc", HEADER, CHUNKS)
    assert not (tmp_path / "missing").exists()
    # invalid input: refused before touching the file system
    with pytest.raises(BitstreamError):
        write_gvc(tmp_path / "b.gvc", _mutated(("source", "frames"), 0), CHUNKS)
    assert list(tmp_path.iterdir()) == []
    # failure mid-way: no temp file left, an existing output is untouched
    out = tmp_path / "c.gvc"
    out.write_bytes(b"old")

    def boom(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(container.os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_gvc(out, HEADER, CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.gvc"] and out.read_bytes() == b"old"


def test_read_directory_is_bitstream_error(tmp_path):
    with pytest.raises(BitstreamError, match="directory"):
        read_gvc(tmp_path)


def test_missing_file_is_bitstream_error(tmp_path):
    with pytest.raises(BitstreamError, match="cannot open"):
        read_gvc(tmp_path / "nope.gvc")


def _leaf_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaf_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaf_paths(v, prefix + (i,))
    yield prefix


def test_header_type_substitutions_never_crash():
    """Every node of the header replaced by every JSON type: only pass or BitstreamError, never a crash."""
    values = [None, "x", "", -1, 0, 1.5, 10**30, True, [], [1], {}, {"a": 1}, float("nan")]
    bad = 0
    for path in _leaf_paths(HEADER):
        if not path:
            continue
        for v in values:
            h = copy.deepcopy(HEADER)
            obj = h
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]] = v
            try:
                validate_header(h)
            except BitstreamError:
                bad += 1
    assert bad > 100


def test_fuzz_payload_with_valid_crcs():
    """Random byte edits inside chunk payloads, CRCs recomputed: every outcome is success or BitstreamError."""
    import random

    rnd = random.Random(0)
    head = container.encode_header(HEADER)
    bodies = [("HEAD", head)] + CHUNKS
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        tag, payload = bodies[rnd.randrange(len(bodies))]
        b = bytearray(payload)
        for _ in range(rnd.randint(1, 3)):
            op = rnd.random()
            pos = rnd.randrange(len(b) + 1)
            if op < 0.5 and b:
                b[min(pos, len(b) - 1)] = rnd.randrange(256)
            elif op < 0.75:
                b.insert(pos, rnd.randrange(256))
            elif b:
                del b[min(pos, len(b) - 1)]
        chunks = [_chunk(t.encode(), bytes(b) if (t, p) == (tag, payload) else p) for t, p in bodies]
        try:
            read_gvc(_file(chunks + [_chunk(b"END ", b"")]))
            outcomes["ok"] += 1
        except BitstreamError:
            outcomes["error"] += 1
    assert outcomes["error"] > 500
