"""umT5 prompt tokenizer with Wan's semantics, no network, no transformers.

Wan (``wan/modules/t5.py`` ``T5EncoderModel`` + ``wan/modules/tokenizers.py``
``HuggingfaceTokenizer(seq_len=512, clean='whitespace')``) does, per prompt:

1. clean: ``ftfy.fix_text``, HTML-unescape twice, strip, collapse every run of
   whitespace to one space;
2. tokenize with the special tokens (T5 appends ``</s>``), truncating to
   ``seq_len`` tokens *including* ``</s>``;
3. pad with ``<pad>`` (id 0) to exactly ``seq_len`` and return the 0/1 mask.

Files are read from the checkpoint's ``google/umt5-xxl/`` folder:
``tokenizer.json`` through the ``tokenizers`` library (preferred: it is the
exact HF fast tokenizer Wan loads), else ``spiece.model`` through
``sentencepiece`` (ids + ``</s>``, same truncation and padding).
"""
from __future__ import annotations

import html
import os

import numpy as np

TOKENIZER_SUBDIR = os.path.join("google", "umt5-xxl")


def basic_clean(text: str) -> str:
    try:
        import ftfy
    except ImportError as e:  # pragma: no cover - ftfy ships with the test/wan extras
        raise ImportError("Wan's prompt cleaning needs the 'ftfy' package") from e
    text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()


def whitespace_clean(text: str) -> str:
    try:
        import regex as re  # what Wan uses; its \s is Unicode White_Space
    except ImportError:  # pragma: no cover
        import re
    return re.sub(r"\s+", " ", text).strip()


def clean_prompt(text: str) -> str:
    """Wan's ``clean='whitespace'``."""
    return whitespace_clean(basic_clean(text))


def find_tokenizer_dir(path: str) -> str:
    """``path`` itself or its ``google/umt5-xxl`` / ``tokenizer`` subfolder."""
    for cand in (path, os.path.join(path, TOKENIZER_SUBDIR), os.path.join(path, "tokenizer")):
        if os.path.isfile(os.path.join(cand, "tokenizer.json")) or \
                os.path.isfile(os.path.join(cand, "spiece.model")):
            return cand
    raise FileNotFoundError(f"{path}: no tokenizer.json or spiece.model (looked in ., "
                            f"{TOKENIZER_SUBDIR}/, tokenizer/)")


class UMT5Tokenizer:
    """``tok(prompts) -> (ids int32 [B, seq_len], mask int32 [B, seq_len])``."""

    def __init__(self, path: str, seq_len: int = 512, clean: bool = True, backend: str = "auto",
                 eos_id: int = 1, pad_id: int = 0):
        folder = find_tokenizer_dir(path)
        self.seq_len, self.clean, self.eos_id, self.pad_id = seq_len, clean, eos_id, pad_id
        tj, sp = os.path.join(folder, "tokenizer.json"), os.path.join(folder, "spiece.model")
        if backend == "auto":
            backend = "tokenizers" if os.path.isfile(tj) else "sentencepiece"
        self.backend = backend
        if backend == "tokenizers":
            from tokenizers import Tokenizer
            self._tok = Tokenizer.from_file(tj)
            self._tok.no_padding()
            self._tok.enable_truncation(max_length=seq_len)
            pid = self._tok.token_to_id("<pad>")
            eid = self._tok.token_to_id("</s>")
            if pid is not None:
                self.pad_id = pid
            if eid is not None:
                self.eos_id = eid
        elif backend == "sentencepiece":
            import sentencepiece as spm
            self._sp = spm.SentencePieceProcessor(model_file=sp)
            if self._sp.pad_id() >= 0:
                self.pad_id = self._sp.pad_id()
            if self._sp.eos_id() >= 0:
                self.eos_id = self._sp.eos_id()
        else:
            raise ValueError(f"unknown tokenizer backend {backend!r}")

    def encode_one(self, text: str) -> list[int]:
        """Token ids with ``</s>``, truncated to ``seq_len``, unpadded."""
        if self.clean:
            text = clean_prompt(text)
        if self.backend == "tokenizers":
            return list(self._tok.encode(text, add_special_tokens=True).ids)
        ids = list(self._sp.encode(text, out_type=int))[: self.seq_len - 1]
        return ids + [self.eos_id]

    def __call__(self, prompts) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = np.full((len(prompts), self.seq_len), self.pad_id, np.int32)
        mask = np.zeros((len(prompts), self.seq_len), np.int32)
        for i, p in enumerate(prompts):
            t = self.encode_one(p)
            ids[i, :len(t)] = t
            mask[i, :len(t)] = 1
        return ids, mask
