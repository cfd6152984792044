"""The text conditioning of a stream and its ``PRMT`` chunk (docs/bitstream.md)."""
from __future__ import annotations

import dataclasses

from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.errors import UsageError

MAX_PROMPT_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class Prompt:
    """The text conditioning of a stream; it travels in the ``PRMT`` chunk (every byte counted).

    The chunk holds the UTF-8 prompt, and for classifier-free guidance a NUL byte and the
    negative prompt. No chunk at all means both are empty (GVCC's setting)."""
    text: str = ""
    negative: str = ""

    def __post_init__(self):
        for what, s in (("prompt", self.text), ("negative prompt", self.negative)):
            if "\x00" in s:
                raise UsageError(f"the {what} contains a NUL character")
        if len(self.payload()) > MAX_PROMPT_BYTES:
            raise UsageError(f"prompts are limited to {MAX_PROMPT_BYTES} bytes of UTF-8")

    def payload(self) -> bytes:
        s = self.text + ("\x00" + self.negative if self.negative else "")
        return s.encode("utf-8")

    def chunks(self) -> list[tuple[str, bytes]]:
        return [container.prompt_chunk(self.payload().decode("utf-8"))] if self.payload() else []

    @classmethod
    def from_chunk(cls, payload: bytes | None) -> "Prompt":
        if payload is None:
            return cls()
        text = container.parse_prompt(payload)
        if not text:
            raise BitstreamError("PRMT chunk is empty (an empty prompt is sent as no chunk)")
        if len(payload) > MAX_PROMPT_BYTES:
            raise BitstreamError(f"PRMT chunk exceeds {MAX_PROMPT_BYTES} bytes")
        pos, _, neg = text.partition("\x00")
        if "\x00" in neg:
            raise BitstreamError("PRMT chunk holds more than two prompts")
        return cls(pos, neg)
