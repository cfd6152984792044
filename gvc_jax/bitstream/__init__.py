"""Bitstream v1: enumerative index coding and the CRC-protected .gvc container (docs/bitstream.md)."""
from gvc_jax.bitstream.container import (CHUNK_KINDS, LIMITS, MAGIC, VERSION, anchor_chunk, breakdown,
                                         chunk_sizes, dumps_gvc, idx_chunk, parse_anchor, parse_idx,
                                         parse_prompt, parse_residual, prompt_chunk, read_gvc,
                                         residual_chunk, write_gvc)
from gvc_jax.bitstream.enumerative import bits_for, num_subsets, rank, unrank
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.bitstream.header import HEADER_LIMITS, decode_header, encode_header, validate_header
from gvc_jax.bitstream.indices import index_bits, index_bytes, pack_indices, unpack_indices

__all__ = [
    "BitstreamError", "bits_for", "num_subsets", "rank", "unrank", "index_bits", "index_bytes",
    "pack_indices", "unpack_indices", "MAGIC", "VERSION", "LIMITS", "HEADER_LIMITS", "CHUNK_KINDS",
    "dumps_gvc", "write_gvc", "read_gvc", "breakdown", "chunk_sizes", "validate_header", "encode_header",
    "decode_header", "idx_chunk", "parse_idx", "anchor_chunk", "parse_anchor", "residual_chunk",
    "parse_residual", "prompt_chunk", "parse_prompt",
]
