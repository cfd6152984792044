"""Headers that claim huge sizes are refused before anything is allocated (issue 14, part 4).

Every case is a CRC-valid file (so the claim reaches the parser) and must end in BitstreamError
with flat memory: peak traced allocation growth < 50 MB and no RSS high-water growth over 50 MB.
"""
from __future__ import annotations

import json
import resource
import struct
import time
import tracemalloc
import zlib

import pytest

from gvc_jax.bitstream import MAGIC, BitstreamError, indices
from gvc_jax.codec import stream

LIMIT = 50 * 2**20
FP = "0123456789abcdef" * 4


def _header(**over):
    h = {"format": "gvc", "version": 1, "model": {"config": "gaussian", "fingerprint": FP},
         "codec": {"mode": "t2v", "K": 32, "M": [2], "steps": 4, "sde_steps": 3, "g_scale": 3.0,
                   "shift": 1.0, "seed": 0, "gop_frames": 4, "latent_frames": 1},
         "source": {"frames": 4, "height": 16, "width": 16, "fps": [25, 1]},
         "coded": {"frames": 4, "height": 16, "width": 16},
         "gops": [{"index": 0, "start": 0, "frames": 4}]}
    for path, v in over.items():
        d = h
        *keys, last = path.split(".")
        for k in keys:
            d = d[k]
        d[last] = v
    return h


def _chunk(tag: bytes, payload: bytes, length: int | None = None) -> bytes:
    head = tag + struct.pack(">I", len(payload) if length is None else length)
    return head + payload + struct.pack(">I", zlib.crc32(head + payload))


def _file(header: dict, *chunks: bytes, end: bool = True) -> bytes:
    js = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + b"\x00\x01" + _chunk(b"HEAD", js) + b"".join(chunks) + \
        (_chunk(b"END ", b"") if end else b"")


def _refused_flat(fn, match: str):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(BitstreamError, match=match):
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < LIMIT, peak
    assert rss1 - rss0 < LIMIT, rss1 - rss0
    assert seconds < 2.0, seconds


@pytest.mark.parametrize("over, match", [
    ({"source.frames": 10**9}, r"source\.frames = 1000000000 is outside"),
    ({"coded.frames": 10**9}, r"coded\.frames = 1000000000 is outside"),
    ({"gops.0.frames": 10**9}, r"gops\[0\]\.frames"),
    ({"source.height": 2**16, "source.width": 2**15}, r"source\.height = 65536 is outside"),
    ({"coded.height": 46341, "coded.width": 46341}, r"coded\.height = 46341 is outside"),
    ({"codec.K": 2**31}, r"codec\.K = 2147483648 is outside"),
    ({"codec.latent_frames": 10**9}, r"codec\.latent_frames = 1000000000 is outside"),
])
def test_huge_header_claims_are_refused(over, match):
    if "gops.0.frames" in over:
        h = _header()
        h["gops"][0]["frames"] = over["gops.0.frames"]
    else:
        h = _header(**over)
    data = _file(h)
    _refused_flat(lambda: stream.read_stream(data), match)


def test_more_chunks_than_the_file_holds():
    h = _header()
    idx = b"\x00\x00\x00\x00" + b"\x00" * 3
    # a chunk length far beyond the file: refused before its payload is read
    for n in (2**30, 2**30 - 1, 10**6):
        data = _file(h, _chunk(b"IDX ", idx, length=n), end=False)
        _refused_flat(lambda: stream.read_stream(data), r"too large|truncated")
    # a GOP number beyond the header's GOP table
    data = _file(h, _chunk(b"IDX ", b"\x00\x00\x03\xe8" + b"\x00" * 3))
    _refused_flat(lambda: stream.read_stream(data), r"GOP 1000 does not exist")
    # many GOPs claimed, the file ends after the header
    data = _file(h, end=False)
    _refused_flat(lambda: stream.read_stream(data), r"truncated: no END chunk")


def test_index_arrays_are_bounded_before_allocation():
    # S x F x M cells far beyond the cap: 1000 steps x 100000 frames x 65536 atoms
    _refused_flat(lambda: indices.unpack_indices(b"\x00" * 16, 1000, [65536] + [1] * 99_999, 65536),
                  r"index arrays too large")
    # 100000 latent frames of M = 32768 (a 600 KB header): the sign bits alone need far more
    # than the payload holds; refused before ~10^5 large binomials are computed
    _refused_flat(lambda: indices.unpack_indices(b"\x00" * 64, 1, [32768] * 2000, 65536),
                  r"too short for the 65536000 sign bits")


def test_huge_header_payload_claim_is_refused():
    head = b"HEAD" + struct.pack(">I", 2**31)
    data = MAGIC + b"\x00\x01" + head + b"{}"
    _refused_flat(lambda: stream.read_stream(data), r"header too large")
