"""Fuzz target: everything that parses a ``.gvc`` file without a model (docs/cli.md, "Hostile
inputs").

``TestOneInput(data)`` runs the container reader, the header schema, ``stream.read_stream``
(codec parameters, prompt), ``CodecParams.from_header``, every top-M ``IDX `` payload through
``parse_idx`` + ``unpack_indices`` with the header's S, M and K, ``parse_anchor``/``parse_residual``, ``breakdown``/``chunk_sizes`` and
``api.info``. A rejection must be a :class:`~gvc_jax.bitstream.BitstreamError`; any other exception
escapes and is a crash. Used by ``bench/fuzz_gvc.py`` (atheris) and ``tests/test_fuzz_smoke.py``,
both seeded with the committed corpus ``tests/fuzz/corpus`` (see :func:`corpus_files`).
"""
from __future__ import annotations

import os
import tempfile
import zlib

from gvc_jax.bitstream import container, header as bs_header, indices
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import api, stream
from gvc_jax.codec.params import CodecParams

# The harness allocates the decoded index arrays only below this many cells (the decoder's own
# cap, indices.MAX_INDEX_CELLS = 2^28, is far too much memory per fuzz input).
HARNESS_MAX_CELLS = 2**20

_tmp = {}


def _info(data: bytes) -> dict:
    """``api.info`` reads a path: one scratch file per process, rewritten per input."""
    if "path" not in _tmp:
        d = tempfile.mkdtemp(prefix="gvc_fuzz_")
        _tmp["path"] = os.path.join(d, "in.gvc")
    with open(_tmp["path"], "wb") as f:
        f.write(data)
    return api.info(_tmp["path"])


def _gop_m(packed: bytes, S: int, M: list, K: int) -> list:
    """The M list of one GOP: a short last GOP has fewer latent frames than the header's M (the
    count comes from the model's geometry, unknown here), so take the prefix whose exact size
    matches the payload, else the full list (then unpack_indices rejects the length)."""
    if S == 0 or S * sum(M) > 8 * len(packed):
        return M
    width = {m: indices.bits_for(K, m) + m for m in set(M)}
    bits = 0
    for n, m in enumerate(M, start=1):
        bits += S * width[m]
        if (bits + 7) // 8 == len(packed):
            return M[:n]
    return M


def check(data: bytes) -> str:
    """Parses ``data``; returns 'ok' when every part was accepted. Raises BitstreamError on a
    clean rejection and anything else on a bug."""
    header, chunks = container.read_gvc(data)
    bs_header.validate_header(header)
    h2, params, prompt, by_tag = stream.read_stream(data)
    assert h2 == header, "read_stream and read_gvc disagree"
    bd = container.breakdown(data)
    assert sum(bd.values()) == len(data), "breakdown does not sum to the file size"
    assert len(container.chunk_sizes(data)) == len(chunks) + 2, "chunk_sizes disagrees with read_gvc"
    codec = header["codec"]
    assert CodecParams.from_header(codec)[0] == params, "read_stream and from_header disagree"
    for payload in by_tag.get("IDX ", []):
        gop, packed = container.parse_idx(payload)
        assert 0 <= gop < len(header["gops"])
        if params.coding != "topm":
            continue
        S, M, K = params.sde_steps, codec["M"], params.K
        if S * len(M) * max(M) > HARNESS_MAX_CELLS:
            continue  # a header asking for more than the harness allocates: not decoded here
        m = _gop_m(packed, S, M, K)
        idx, sign = indices.unpack_indices(packed, S, m, K)
        assert indices.pack_indices(idx, sign, m, K) == packed, "index payload does not round-trip"
    for payload in by_tag.get("ANCH", []):
        container.parse_anchor(payload)
    for payload in by_tag.get("RESD", []):
        container.parse_residual(payload)
    out = _info(data)
    assert out["file"]["bytes_file"] == len(data)
    return "ok"


def fix_crcs(data: bytes) -> bytes:
    """``data`` with the CRC of every chunk whose framing fits recomputed, so that mutations reach
    the header and payload parsers instead of stopping at the CRC check."""
    out = bytearray(data)
    pos = len(container.MAGIC) + 2
    while pos + 8 <= len(out):
        n = int.from_bytes(out[pos + 4:pos + 8], "big")
        end = pos + 8 + n
        if end + 4 > len(out):
            break
        out[end:end + 4] = zlib.crc32(bytes(out[pos:end])).to_bytes(4, "big")
        pos = end + 4
    return bytes(out)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """The input as it is, then with its CRCs repaired."""
    for d in (data, fix_crcs(data)):
        try:
            check(d)
        except BitstreamError:
            pass


def corpus_files(folder: str) -> list[str]:
    """The files of a seed corpus folder, sorted; none when it does not exist."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))
