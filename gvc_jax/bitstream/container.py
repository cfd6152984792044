"""The .gvc container: magic, version, CRC-protected chunks (docs/design.md §4, docs/bitstream.md).

Layout (all integers big-endian)::

    magic   8 bytes  89 47 56 43 0D 0A 1A 0A   ("\\x89GVC\\r\\n\\x1a\\n")
    version u16      1
    chunk*  tag (4 ASCII bytes) | length u32 | payload | crc32 u32 over tag+length+payload

The first chunk is ``HEAD`` (canonical JSON header), the last ``END `` (empty); in between any number
of ``IDX ``, ``ANCH``, ``RESD`` and at most one ``PRMT``. Nothing may follow ``END ``.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO, Iterable

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.bitstream.header import decode_header, encode_header
from gvc_jax.fileutil import write_bytes_atomic

__all__ = [
    "MAGIC", "VERSION", "LIMITS", "CHUNK_KINDS", "dumps_gvc", "write_gvc", "read_gvc", "breakdown",
    "chunk_sizes", "idx_chunk", "parse_idx", "anchor_chunk", "parse_anchor", "residual_chunk",
    "parse_residual", "prompt_chunk", "parse_prompt",
]

MAGIC = b"\x89GVC\r\n\x1a\n"
VERSION = 1
LIMITS = {
    "max_file_bytes": 4 * 2**30,
    "max_header_bytes": 2**20,
    "max_chunk_bytes": 2**30,
    "max_chunks": 100_000,
    "max_codec_id_len": 64,
}
_PREAMBLE = len(MAGIC) + 2
_FRAMING = 12  # tag + length + crc
# tag -> breakdown kind
CHUNK_KINDS = {"HEAD": "header", "IDX ": "indices", "ANCH": "anchors", "RESD": "residuals",
               "PRMT": "prompt", "END ": "container"}
_PAYLOAD_TAGS = ("IDX ", "ANCH", "RESD", "PRMT")
_U32 = struct.Struct(">I")


# ------------------------------------------------------------------ payload helpers
def _gop_prefix(gop: int) -> bytes:
    if not isinstance(gop, int) or not 0 <= gop < 2**32:
        raise ValueError(f"GOP number must be an int in [0, 2^32), got {gop!r}")
    return _U32.pack(gop)


def _split_gop(payload: bytes, tag: str) -> tuple[int, bytes]:
    if len(payload) < 4:
        raise BitstreamError(f"{tag} chunk payload too short for its GOP number ({len(payload)} bytes)")
    return _U32.unpack_from(payload)[0], payload[4:]


def idx_chunk(gop: int, packed: bytes) -> tuple[str, bytes]:
    """``IDX `` chunk: u32 GOP number, then the packed index bits of that GOP."""
    return "IDX ", _gop_prefix(gop) + bytes(packed)


def parse_idx(payload: bytes) -> tuple[int, bytes]:
    return _split_gop(payload, "IDX ")


def anchor_chunk(gop: int, codec_id: str, data: bytes) -> tuple[str, bytes]:
    """``ANCH`` chunk: u32 anchor number (the GOP boundary it sits on: 0 = the first frame of
    GOP 0, g = the first frame of GOP g, n_gops = the last frame of the clip), u8 codec-id
    length, ASCII codec id, then the coded anchor bytes."""
    if not isinstance(codec_id, str) or not codec_id.isascii() or not codec_id.isprintable():
        raise ValueError(f"codec id must be printable ASCII, got {codec_id!r}")
    cid = codec_id.encode("ascii")
    if not 0 < len(cid) <= LIMITS["max_codec_id_len"]:
        raise ValueError(f"codec id must be 1..{LIMITS['max_codec_id_len']} printable ASCII chars")
    return "ANCH", _gop_prefix(gop) + bytes([len(cid)]) + cid + bytes(data)


def parse_anchor(payload: bytes) -> tuple[int, str, bytes]:
    gop, rest = _split_gop(payload, "ANCH")
    if not rest:
        raise BitstreamError("ANCH chunk payload too short for its codec id length")
    n = rest[0]
    cid = rest[1:1 + n]
    if n == 0 or n > LIMITS["max_codec_id_len"] or len(cid) != n:
        raise BitstreamError(f"ANCH chunk has a bad codec id length {n}")
    if not cid.isascii() or not cid.decode("ascii").isprintable():
        raise BitstreamError("ANCH chunk codec id is not printable ASCII")
    return gop, cid.decode("ascii"), rest[1 + n:]


def residual_chunk(gop: int, data: bytes) -> tuple[str, bytes]:
    """``RESD`` chunk: u32 GOP, then the residual bytes."""
    return "RESD", _gop_prefix(gop) + bytes(data)


def parse_residual(payload: bytes) -> tuple[int, bytes]:
    return _split_gop(payload, "RESD")


def prompt_chunk(prompt: str) -> tuple[str, bytes]:
    """``PRMT`` chunk: the text prompt in UTF-8."""
    return "PRMT", prompt.encode("utf-8")


def parse_prompt(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("PRMT chunk is not valid UTF-8") from None


# ------------------------------------------------------------------ checks shared by writer and reader
def _check_payload(i: int, tag: str, payload: bytes, n_gops: int, seen_idx: set, seen_prompt: list) -> None:
    """Structure of one payload chunk against the header (raises BitstreamError)."""
    where = f"chunk {i} ({tag})"
    if tag == "PRMT":
        if seen_prompt:
            raise BitstreamError(f"{where}: more than one PRMT chunk")
        seen_prompt.append(True)
        parse_prompt(payload)
        return
    if tag == "IDX ":
        gop, _ = parse_idx(payload)
        if gop in seen_idx:
            raise BitstreamError(f"{where}: second IDX chunk for GOP {gop}")
        seen_idx.add(gop)
    elif tag == "ANCH":   # the anchor's number: up to one per GOP boundary (n_gops + 1)
        if parse_anchor(payload)[0] > n_gops:
            raise BitstreamError(f"{where}: anchor {parse_anchor(payload)[0]} does not exist "
                                 f"(header has {n_gops} GOPs, so at most {n_gops + 1} anchors)")
        return
    else:
        gop = parse_residual(payload)[0]
    if gop >= n_gops:
        raise BitstreamError(f"{where}: GOP {gop} does not exist (header has {n_gops})")


def _frame(tag: str, payload: bytes) -> bytes:
    head = tag.encode("ascii") + _U32.pack(len(payload))
    return head + payload + _U32.pack(zlib.crc32(payload, zlib.crc32(head)))


# ------------------------------------------------------------------ writing
def dumps_gvc(header: dict, chunks: Iterable[tuple[str, bytes]]) -> bytes:
    """The complete file as bytes; validates the header, chunk tags, payloads and limits first."""
    head = encode_header(header)
    if len(head) > LIMITS["max_header_bytes"]:
        raise BitstreamError(f"header too large: {len(head)} > limit {LIMITS['max_header_bytes']} bytes")
    chunks = list(chunks)
    if len(chunks) + 2 > LIMITS["max_chunks"]:
        raise BitstreamError(f"too many chunks: {len(chunks) + 2} > limit {LIMITS['max_chunks']}")
    seen_idx: set = set()
    seen_prompt: list = []
    parts = [MAGIC, struct.pack(">H", VERSION), _frame("HEAD", head)]
    total = sum(map(len, parts)) + _FRAMING
    for i, (tag, payload) in enumerate(chunks, start=1):
        if tag not in _PAYLOAD_TAGS:
            raise BitstreamError(f"chunk {i}: tag {tag!r} is not a payload chunk ({', '.join(_PAYLOAD_TAGS)})")
        payload = bytes(payload)
        if len(payload) > LIMITS["max_chunk_bytes"]:
            raise BitstreamError(f"chunk {i} ({tag}) too large: {len(payload)} > limit {LIMITS['max_chunk_bytes']}")
        _check_payload(i, tag, payload, len(header["gops"]), seen_idx, seen_prompt)
        parts.append(_frame(tag, payload))
        total += len(parts[-1])
        if total > LIMITS["max_file_bytes"]:
            raise BitstreamError(f"file too large: > limit {LIMITS['max_file_bytes']} bytes")
    parts.append(_frame("END ", b""))
    return b"".join(parts)


def write_gvc(path: str | os.PathLike, header: dict, chunks: Iterable[tuple[str, bytes]]) -> int:
    """Write atomically (temp file in the same directory, fsync, rename); return the bytes written.

    On any failure the temp file is removed and ``path`` is left untouched.
    """
    data = dumps_gvc(header, chunks)  # every check happens before the file system is touched
    write_bytes_atomic(path, data)
    return len(data)


# ------------------------------------------------------------------ reading
def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise BitstreamError(f"truncated in {what}")
    return b


def _iter_raw(f: BinaryIO, size: int):
    """Yield (index, tag, payload, framed_size) after checking magic, version, limits and CRCs."""
    if size > LIMITS["max_file_bytes"]:
        raise BitstreamError(f"file too large: {size} > limit {LIMITS['max_file_bytes']} bytes")
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        if len(magic) < len(MAGIC) and MAGIC.startswith(magic) and magic:
            raise BitstreamError("truncated in magic")
        raise BitstreamError("bad magic: not a .gvc file")
    (version,) = struct.unpack(">H", _read_exact(f, 2, "version"))
    if version != VERSION:
        raise BitstreamError(f"unsupported version {version}")
    pos = _PREAMBLE
    i = 0
    while True:
        if i >= LIMITS["max_chunks"]:
            raise BitstreamError(f"too many chunks: > limit {LIMITS['max_chunks']}")
        if pos == size:
            raise BitstreamError(f"truncated: no END chunk after chunk {i - 1}")
        head = _read_exact(f, 8, f"chunk {i} header")
        try:
            tag = head[:4].decode("ascii")
        except UnicodeDecodeError:
            tag = ""
        label = f"chunk {i} ({tag})" if tag.isprintable() and tag else f"chunk {i} ({head[:4].hex()})"
        if tag not in CHUNK_KINDS:
            raise BitstreamError(f"unknown chunk tag in {label}")
        (n,) = _U32.unpack_from(head, 4)
        limit = LIMITS["max_header_bytes"] if tag == "HEAD" else LIMITS["max_chunk_bytes"]
        if n > limit:
            kind = "header" if tag == "HEAD" else "chunk payload"
            raise BitstreamError(f"{kind} too large in {label}: {n} > limit {limit} bytes")
        if pos + 8 + n + 4 > size:  # checked before reading (and allocating) the payload
            raise BitstreamError(f"truncated in {label}")
        payload = _read_exact(f, n, label)
        (crc,) = _U32.unpack(_read_exact(f, 4, label))
        if zlib.crc32(payload, zlib.crc32(head)) != crc:
            raise BitstreamError(f"CRC mismatch in {label}")
        pos += _FRAMING + n
        yield i, tag, payload, _FRAMING + n
        if tag == "END ":
            if pos != size:
                raise BitstreamError(f"{size - pos} trailing bytes after the END chunk")
            return
        i += 1


def _open(src):
    """(file object, size) for a path or a bytes-like object."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        b = bytes(src)
        return io.BytesIO(b), len(b)
    path = os.fspath(src)
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise BitstreamError(f"{path} is a directory, not a .gvc file") from None
    except OSError as e:
        raise BitstreamError(f"cannot open {path}: {e.strerror or type(e).__name__}") from None
    return f, os.fstat(f.fileno()).st_size


def _parse(src):
    f, size = _open(src)
    with f:
        header = None
        chunks: list[tuple[str, bytes]] = []
        sizes: dict[str, int] = {"container": _PREAMBLE}
        seen_idx: set = set()
        seen_prompt: list = []
        for i, tag, payload, framed in _iter_raw(f, size):
            label = f"chunk {i} ({tag})"
            if i == 0:
                if tag != "HEAD":
                    raise BitstreamError(f"first chunk must be HEAD, got {label}")
                header = decode_header(payload)
            elif tag == "HEAD":
                raise BitstreamError(f"second HEAD in {label}")
            elif tag == "END ":
                if payload:
                    raise BitstreamError(f"END chunk must be empty in {label}")
            else:
                _check_payload(i, tag, payload, len(header["gops"]), seen_idx, seen_prompt)
                chunks.append((tag, payload))
            kind = CHUNK_KINDS[tag]
            sizes["container"] += _FRAMING
            sizes[kind] = sizes.get(kind, 0) + len(payload)
        return header, chunks, sizes


def read_gvc(src) -> tuple[dict, list[tuple[str, bytes]]]:
    """Read and fully check a .gvc file (path or bytes): (header, [(tag, payload), ...] without HEAD/END)."""
    header, chunks, _ = _parse(src)
    return header, chunks


def breakdown(src) -> dict[str, int]:
    """Bytes per kind, summing exactly to the file size.

    ``container``: magic, version and the 12 framing bytes (tag, length, CRC) of every chunk, END included;
    ``header``: the HEAD JSON; ``indices``/``anchors``/``residuals``/``prompt``: the chunk payloads
    (including their GOP number / codec id prefixes). Kinds without chunks are reported as 0.
    """
    _, _, sizes = _parse(src)
    out = {k: 0 for k in ("container", "header", "indices", "anchors", "residuals", "prompt")}
    out.update(sizes)
    return out


def chunk_sizes(src) -> list[tuple[str, int]]:
    """(tag, payload bytes) of every chunk in file order, HEAD and END included."""
    f, size = _open(src)
    with f:
        return [(tag, len(p)) for _, tag, p, _ in _iter_raw(f, size)]
