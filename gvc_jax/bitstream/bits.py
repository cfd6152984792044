"""MSB-first bit writer and reader for the packed index payload (docs/bitstream.md §5)."""
from __future__ import annotations

from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["BitWriter", "BitReader"]

_FLUSH_BITS = 1 << 15  # keep the pending integer short so long payloads stay linear-time


class BitWriter:
    """Appends unsigned integers MSB-first; ``getvalue()`` zero-pads the last byte."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0  # pending bits, the oldest in the most significant position
        self._nacc = 0
        self.bits_written = 0

    def write(self, value: int, nbits: int) -> None:
        """Write ``value`` (0 <= value < 2**nbits) in ``nbits`` bits, most significant first."""
        if nbits < 0:
            raise ValueError(f"nbits must be >= 0, got {nbits}")
        if value < 0 or value >> nbits:
            raise ValueError(f"value {value} does not fit in {nbits} bits")
        if nbits == 0:
            return
        self._acc = (self._acc << nbits) | value
        self._nacc += nbits
        self.bits_written += nbits
        if self._nacc >= _FLUSH_BITS:
            self._flush_whole_bytes()

    def _flush_whole_bytes(self) -> None:
        nbytes, rest = divmod(self._nacc, 8)
        if nbytes:
            self._out += (self._acc >> rest).to_bytes(nbytes, "big")
            self._acc &= (1 << rest) - 1
            self._nacc = rest

    def getvalue(self) -> bytes:
        """All bits written so far, the final partial byte padded with zero bits."""
        self._flush_whole_bytes()
        out = bytes(self._out)
        if self._nacc:
            out += (self._acc << (8 - self._nacc)).to_bytes(1, "big")
        return out


class BitReader:
    """Reads unsigned integers MSB-first from bytes; reading past the end is a BitstreamError."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._total = 8 * len(self._data)
        self.pos = 0  # bit position of the next read

    @property
    def remaining_bits(self) -> int:
        return self._total - self.pos

    def read(self, nbits: int) -> int:
        if nbits < 0:
            raise ValueError(f"nbits must be >= 0, got {nbits}")
        if nbits == 0:
            return 0
        end = self.pos + nbits
        if end > self._total:
            raise BitstreamError(
                f"bit payload truncated: need {nbits} bits at bit {self.pos}, {self.remaining_bits} left")
        first, last = self.pos >> 3, (end + 7) >> 3
        word = int.from_bytes(self._data[first:last], "big")
        word >>= 8 * last - end
        self.pos = end
        return word & ((1 << nbits) - 1)
