"""Prompt tokenizer: ids and masks equal Wan's HuggingfaceTokenizer on a tiny
sentencepiece model trained on the fly (no network, no real vocabulary)."""
import shutil

import numpy as np
import pytest
# Import before gvc_jax.testing.wan22 stubs torchvision (transformers caches its probe).
from transformers import T5Tokenizer

from gvc_jax.weights.tokenizer import UMT5Tokenizer, clean_prompt

SEQ = 24
SENTS = ["A cat sits on the mat.", "The quick brown fox jumps over the lazy dog!",
         "Video codecs compress moving pictures.", "Generative models sample from learned distributions.",
         "Wan is a video diffusion model; it uses umT5.", "Zebras, llamas & ducks 123 over the hills"]
PROMPTS = [
    "",
    "A cat sits on the mat.",
    "  The   quick\tbrown\n\nfox  ",
    "Fish &amp;amp; chips &lt;b&gt; caf\u00c3\u00a9",       # double HTML escape + mojibake (ftfy)
    "unknown glyphs \u4e2d\u6587 \u00e9t\u00e9 \u2014 ok",
    " ".join(SENTS * 3),                                     # longer than SEQ: truncated, </s> kept
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    import sentencepiece as spm
    d = tmp_path_factory.mktemp("tok")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTS * 20), model_prefix=str(d / "spiece"), vocab_size=80,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        minloglevel=2)
    src = d / "src"
    src.mkdir()
    shutil.copy(d / "spiece.model", src / "spiece.model")
    hf = T5Tokenizer.from_pretrained(str(src), extra_ids=0)
    folder = d / "ckpt" / "google" / "umt5-xxl"   # the layout of the Wan checkpoint folder
    hf.save_pretrained(str(folder))
    shutil.copy(d / "spiece.model", folder / "spiece.model")
    return d / "ckpt", folder


def _wan_reference(folder):
    from gvc_jax.testing.wan22 import load_wan22
    tk = load_wan22("tokenizers")
    return tk.HuggingfaceTokenizer(name=str(folder), seq_len=SEQ, clean="whitespace")


@pytest.mark.parametrize("backend", ["tokenizers", "sentencepiece"])
def test_matches_wan_tokenizer(tok_dir, backend):
    root, folder = tok_dir
    ref = _wan_reference(folder)
    ids_ref, mask_ref = ref(PROMPTS, return_mask=True, add_special_tokens=True)
    ours = UMT5Tokenizer(str(root), seq_len=SEQ, backend=backend)  # finds google/umt5-xxl/
    ids, mask = ours(PROMPTS)
    np.testing.assert_array_equal(ids, ids_ref.numpy())
    np.testing.assert_array_equal(mask, mask_ref.numpy())
    assert mask[-1].sum() == SEQ and ids[-1, -1] == 1       # truncated, ends in </s>
    assert mask[0].sum() == 1 and ids[0, 0] == 1            # empty prompt: just </s>
    assert len(set(map(tuple, ids))) == len(PROMPTS)


def test_cleaning_matches_wan():
    from gvc_jax.testing.wan22 import load_wan22
    tk = load_wan22("tokenizers")
    for p in PROMPTS:
        assert clean_prompt(p) == tk.whitespace_clean(tk.basic_clean(p))
    assert clean_prompt("Fish &amp;amp; chips") == "Fish & chips"


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        UMT5Tokenizer(str(tmp_path))
