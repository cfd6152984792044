"""The header's ``codec`` object, checked once by the codec layer against the registry of codings
and modes (gvc_jax/codec/params.py, docs/bitstream.md §4): one set of limits, the fields of the
coding in use required, those of other codings ignored."""
import copy

import pytest

from gvc_jax.bitstream import BitstreamError, dumps_gvc
from gvc_jax.codec import stream
from gvc_jax.codec.params import CodecParams
from tests.test_bitstream_container import HEADER


def _codec(**changes):
    c = copy.deepcopy(HEADER["codec"])
    for k, v in changes.items():
        if v is KeyError:
            del c[k]
        else:
            c[k] = v
    return c


@pytest.mark.parametrize("changes,msg", [
    ({"mode": "v2v"}, "codec.mode"),
    ({"coding": "zip"}, "codec.coding"),
    ({"K": 1}, r"codec\.K = 1 is outside \[2, 65536\]"),
    ({"K": 2 ** 16 + 1}, "codec.K"),
    ({"K": 4096.0}, "codec.K must be an integer"),
    ({"M": [8, 8, 8]}, "codec.M has 3 entries"),
    ({"M": [8, 8, 8, 0]}, r"codec.M\[3\]"),
    ({"M": [8, 8, 8, 4097]}, r"codec.M\[3\]"),
    ({"M": 8}, "codec.M must be a list"),
    ({"M": KeyError}, "codec misses key"),
    ({"steps": 1001}, "codec.steps"),
    ({"sde_steps": 21}, "sde_steps"),
    ({"g_scale": float("inf")}, "codec.g_scale"),
    ({"shift": 0}, "codec.shift"),
    ({"seed": -1}, "codec.seed"),
    ({"seed": 2 ** 32}, r"codec\.seed = 4294967296 is outside \[0, 4294967295\]"),
    ({"seed": KeyError}, "misses key.*seed"),
    ({"latent_frames": 10 ** 9}, r"codec\.latent_frames = 1000000000 is outside"),
    ({"residual_step": -1.0, "mode": "i2v"}, "codec.residual_step"),
])
def test_codec_fields_refused(changes, msg):
    with pytest.raises(BitstreamError, match=msg):
        CodecParams.from_header(_codec(**changes))


def test_one_limit_for_flags_presets_and_headers():
    """The seed limit of a flag and of a header is the same field declaration's."""
    from gvc_jax.codec.errors import UsageError

    with pytest.raises(UsageError, match=r"seed = 4294967296 is outside"):
        CodecParams.from_values({"seed": 2 ** 32})
    assert CodecParams.from_header(_codec(seed=2 ** 32 - 1))[0].seed == 2 ** 32 - 1


def test_only_the_coding_in_use_is_required():
    rcc = {k: v for k, v in HEADER["codec"].items()
           if k not in ("K", "M", "steps", "sde_steps", "g_scale", "shift")}
    rcc.update(coding="rcc", rcc_bits=64, rcc_choice_bits=8)
    params, mode = CodecParams.from_header(rcc)
    assert (mode, params.coding, params.rcc_bits, params.rcc_choice_bits) == ("t2v", "rcc", 64, 8)
    # another coding's fields are ignored, whatever their values
    params2, _ = CodecParams.from_header({**rcc, "K": 1, "M": "x"})
    assert params2 == params
    # a top-M stream needs its fields
    with pytest.raises(BitstreamError, match="misses key"):
        CodecParams.from_header({**rcc, "coding": "topm"})


def test_header_fields_hold_common_coding_and_mode_fields():
    p = CodecParams.from_values({"coding": "rcc", "rcc_bits": 64, "rcc_choice_bits": 8,
                                 "residual_step": 0.5})
    h = p.header_fields("i2v", 2)
    assert "K" not in h and "M" not in h and h["rcc_bits"] == 64 and h["residual_step"] == 0.5
    assert CodecParams.from_header(h) == (p, "i2v")
    assert "residual_step" not in p.header_fields("t2v", 2)      # not a T2V field
    q = CodecParams.from_values({"M": 4, "M_tail": 8})
    assert q.header_fields("i2v", 3)["M"] == [4, 8, 8]
    assert CodecParams.from_header(q.header_fields("i2v", 3)) == (q, "i2v")


def test_read_stream_checks_the_codec_object():
    bad = copy.deepcopy(HEADER)
    bad["codec"]["K"] = 1
    with pytest.raises(BitstreamError, match=r"codec\.K = 1"):
        stream.read_stream(dumps_gvc(bad, []))
    bad = copy.deepcopy(HEADER)
    bad["gops"] = [{"index": 0, "start": 0, "frames": 17}, {"index": 1, "start": 17, "frames": 13}]
    with pytest.raises(BitstreamError, match=r"gops\[0\]\.frames = 17 is outside \[1, 16\]"):
        stream.read_stream(dumps_gvc(bad, []))
