"""Sharding of the Wan DiT from one rules table (gvc_jax/sharding.py, configs/sharding.py).

In this process (one CPU device): every parameter of every DiT variant has logical axis names
that every rules table maps, tables are validated (heads vs the tensor split, unknown names),
and with no mesh the sharding hooks are no-ops. The multi-device checks run this file as a
script in a subprocess with 8 host devices (``--xla_force_host_platform_device_count=8``): the
forward under FSDP, sequence, Ulysses and tensor sharding equals the 1-device forward (fp32,
rel. L2 <= 1e-5), and ``encode_gop`` / ``decode_gop`` through a state placed by
``shard_model`` pick the same indices as the unsharded run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

N_DEVICES = 8
TOL = 1e-5
# (table, mesh sizes) run on 8 host devices by the worker
# (wan-fsdp-seq covers wan-fsdp and wan-seq: params over fsdp, tokens over fsdp x context)
FORWARD_CASES = (("wan-fsdp-seq", {"fsdp": 2, "context": 4}),
                 ("wan-ulysses", {"data": 4, "context": 2}),
                 ("wan-tp", {"data": 4, "tensor": 2}))
CODEC_CASE = ("wan-fsdp-seq", {"fsdp": 2, "context": 4})


def _rel(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _tiny_inputs(cfg, seed=0, b=1, grid=(2, 8, 8)):
    import jax.numpy as jnp
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, 16, *grid)).astype(np.float32)
    ctx = np.zeros((b, cfg.text_len, cfg.text_dim), np.float32)
    ctx[:, :7] = rng.standard_normal((b, 7, cfg.text_dim))
    return jnp.asarray(x), jnp.asarray(np.array([321.5, 700.0][:b], np.float32)), jnp.asarray(ctx)


# ============================================================== the 8-device worker
def _worker(out_path: str) -> None:
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from configs.wan_dit import get_config
    from gvc_jax import sharding
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.models.wan.dit import WanDiT
    from gvc_jax.models.wan.velocity import WanVelocity
    from gvc_jax.sampler.scan import SamplerSpec, decode_gop, encode_gop

    assert len(jax.devices()) == N_DEVICES, jax.devices()
    res: dict = {"forward": {}}
    cfg = get_config("tiny-t2v")
    dit = WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float32)
    gd, sd = nnx.split(dit)
    fwd = jax.jit(lambda g, s, *a: nnx.merge(g, s)(*a))
    x, t, ctx = _tiny_inputs(cfg, b=2)   # 2 x 2*4*4 = 32 tokens
    want = np.asarray(fwd(gd, sd, x, t, ctx))
    for name, shape in FORWARD_CASES:
        t0 = time.perf_counter()
        mesh = sharding.make_mesh(shape)
        placed = sharding.shard_model(dit, mesh, name)
        kernel = placed["blocks"]["ffn"]["fc1"]["kernel"].get_value()
        got = np.asarray(fwd(gd, placed, x, t, ctx))
        res["forward"][name] = dict(
            mesh=dict(mesh.shape), rel_l2=_rel(got, want),
            fc1_spec=str(kernel.sharding.spec),
            fc1_shard_shape=list(kernel.addressable_shards[0].data.shape),
            seconds=time.perf_counter() - t0)

    # ---- one GOP through the codec's jitted scans, state placed by shard_model
    name, shape = CODEC_CASE
    mesh = sharding.make_mesh(shape)
    model = WanVelocity(dit)
    gm, sm = nnx.split(model)
    rng = np.random.default_rng(1)
    lat = (16, 2, 8, 8)
    x_T = jnp.asarray(rng.standard_normal(lat), jnp.float32)
    x0 = jnp.asarray(0.7 * rng.standard_normal(lat), jnp.float32)
    cond = {"context": ctx[0]}
    spec = SamplerSpec(n_steps=4, sde_steps=3, shift=3.0, K=256, m_per_frame=(4,))
    t0 = time.perf_counter()
    idx0, sign0, xa = encode_gop(gm, sm, cond, x_T, x0, 11, 2, spec=spec)
    res["encode_unsharded_s"] = time.perf_counter() - t0
    placed = sharding.shard_model(model, mesh, name)
    t0 = time.perf_counter()
    idx1, sign1, xb = encode_gop(gm, placed, cond, x_T, x0, 11, 2, spec=spec)
    res["encode_sharded_s"] = time.perf_counter() - t0
    xd = decode_gop(gm, placed, cond, x_T, idx1, sign1, 11, 2, spec=spec)
    res["wan_codec"] = dict(
        table=name, mesh=dict(mesh.shape),
        idx_equal=bool(np.array_equal(idx0, idx1)), sign_equal=bool(np.array_equal(sign0, sign1)),
        latent_rel_l2=_rel(xb, xa), decode_rel_l2=_rel(xd, xb),
        n_indices=int(np.asarray(idx0).size))

    # ---- the Gaussian prior's CodecModel through shard_model (its state has no logical names:
    # replicated) on the same mesh
    codec = load_model("gaussian")
    c = codec.geometry.latent_channels
    gl = (c, 2, 2, 2)
    gx_T = jnp.asarray(rng.standard_normal(gl), jnp.float32)
    gx0 = jnp.asarray(0.5 * rng.standard_normal(gl), jnp.float32)
    gspec = SamplerSpec(n_steps=4, sde_steps=3, K=512, m_per_frame=(8,))
    i0, s0, ga = encode_gop(codec.graphdef, codec.state, codec.cond, gx_T, gx0, 3, 0, spec=gspec)
    gplaced = sharding.shard_model(codec, mesh, name)
    i1, s1, gb = encode_gop(codec.graphdef, gplaced, codec.cond, gx_T, gx0, 3, 0, spec=gspec)
    res["gaussian_codec"] = dict(idx_equal=bool(np.array_equal(i0, i1)),
                                 sign_equal=bool(np.array_equal(s0, s1)),
                                 latent_rel_l2=_rel(gb, ga))

    # ---- a tensor split that does not divide the heads (tiny: 2 heads over 8 devices)
    try:
        sharding.shard_model(dit, sharding.make_mesh({"tensor": 8}), "wan-tp")
        res["tp8_error"] = None
    except sharding.ShardingError as e:
        res["tp8_error"] = str(e)
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)


# ============================================================== tests
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding") / "res.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count={N_DEVICES}").strip(),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    with open(out) as f:
        return json.load(f)


@pytest.mark.parametrize("name,shape", FORWARD_CASES)
def test_sharded_forward_matches_one_device(multi, name, shape):
    r = multi["forward"][name]
    assert r["mesh"] == dict({"data": 1, "fsdp": 1, "context": 1, "tensor": 1}, **shape)
    assert r["rel_l2"] <= TOL, r
    if name in ("wan-fsdp", "wan-fsdp-seq"):  # params really split: embed (64) over fsdp
        assert r["fc1_shard_shape"] == [2, 64 // shape["fsdp"], 128], r
    if name == "wan-tp":                       # FFN hidden (128) over tensor
        assert r["fc1_shard_shape"] == [2, 64, 128 // shape["tensor"]], r


def test_encode_gop_sharded_state_same_indices(multi):
    r = multi["wan_codec"]
    assert r["idx_equal"] and r["sign_equal"], r
    assert r["latent_rel_l2"] <= TOL and r["decode_rel_l2"] <= TOL, r


def test_gaussian_codec_model_through_shard_model(multi):
    r = multi["gaussian_codec"]
    assert r["idx_equal"] and r["sign_equal"] and r["latent_rel_l2"] <= TOL, r


def test_tensor_split_must_divide_heads_on_devices(multi):
    assert multi["tp8_error"] is not None and "2 heads" in multi["tp8_error"]


# ---- one device, in this process
def _abstract(name):
    import jax.numpy as jnp
    from flax import nnx

    from configs.wan_dit import get_config
    from gvc_jax.models.wan.dit import WanDiT

    cfg = get_config(name)
    return nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32,
                                         param_dtype=jnp.float32))


@pytest.mark.parametrize("model", ["tiny-t2v", "tiny-i2v", "tiny-flf2v", "t2v-14b"])
def test_every_param_has_logical_names_every_table_maps(model):
    """Fails when a new parameter lacks logical names or uses a name no table maps."""
    from flax import nnx

    from configs.sharding import NAMES, PARAM_NAMES, get_config
    from gvc_jax import sharding

    m = _abstract(model)
    names = sharding.logical_names(nnx.state(m, nnx.Param))
    assert names
    for path, n in names.items():
        assert n is not None, f"{path} has no logical axis names"
        assert set(n) <= set(PARAM_NAMES), (path, n)
    for table in NAMES:
        sharding.validate(get_config(table), state=nnx.state(m, nnx.Param))


def test_unnamed_param_and_unknown_name_rejected():
    import jax.numpy as jnp
    from flax import nnx

    from gvc_jax import sharding
    from gvc_jax.models.wan.layers import named_param

    class M(nnx.Module):
        def __init__(self, names):
            self.w = named_param(jnp.ones((4, 8)), names)

    with pytest.raises(sharding.ShardingError, match="no logical axis names"):
        sharding.validate("wan-fsdp", state=nnx.state(M(None)))
    with pytest.raises(sharding.ShardingError, match="'embd' has no rule"):
        sharding.validate("wan-fsdp", state=nnx.state(M(("embd", "mlp"))))
    rules = dict(sharding.as_rules("wan-fsdp"))
    with pytest.raises(sharding.ShardingError, match="unknown logical names"):
        sharding.validate(dict(rules, embd="fsdp"))
    del rules["act_mlp"]
    with pytest.raises(sharding.ShardingError, match="no rule for"):
        sharding.validate(rules)


def test_heads_must_divide_the_tensor_axis():
    from jax.sharding import AbstractMesh

    from configs.sharding import MESH_AXES
    from configs.wan_dit import get_config
    from gvc_jax import sharding

    def mesh(tensor=1, context=1):
        return AbstractMesh((1, 1, context, tensor), MESH_AXES)

    h14, h13 = get_config("t2v-14b").num_heads, get_config("t2v-1.3b").num_heads
    assert (h14, h13) == (40, 12)
    for n in (1, 2, 4, 5, 8, 10, 20, 40):
        sharding.validate("wan-tp", mesh(tensor=n), num_heads=h14)
    for n in (3, 16, 32):
        with pytest.raises(sharding.ShardingError, match=f"40 heads do not divide over {n}"):
            sharding.validate("wan-tp", mesh(tensor=n), num_heads=h14)
    with pytest.raises(sharding.ShardingError, match="12 heads do not divide over 8"):
        sharding.validate("wan-tp", mesh(tensor=8), num_heads=h13)
    with pytest.raises(sharding.ShardingError, match="12 heads do not divide over 8"):
        sharding.validate("wan-ulysses", mesh(context=8), num_heads=h13)
    sharding.validate("wan-seq", mesh(context=8), num_heads=h13)  # heads not split: fine
    with pytest.raises(sharding.ShardingError, match="not in the mesh"):
        sharding.validate("wan-tp", AbstractMesh((2,), ("x",)), num_heads=h14)


def test_mesh_shapes_and_specs():
    import jax
    from jax.sharding import PartitionSpec as P

    from configs.sharding import get_config
    from gvc_jax import sharding

    m = sharding.make_mesh("wan-seq", jax.devices())
    assert dict(m.shape) == {"data": 1, "fsdp": 1, "context": len(jax.devices()), "tensor": 1}
    rules = get_config("wan-fsdp-seq").rules
    assert sharding.logical_to_mesh(("layers", "embed", "mlp"), rules) == P(None, "fsdp", None)
    assert sharding.logical_to_mesh(("act_batch", "act_tokens", "act_embed"), rules) == \
        P(None, ("fsdp", "context"), None)
    with pytest.raises(sharding.ShardingError, match="used twice"):
        sharding.logical_to_mesh(("embed", "act_tokens"), rules)
    with pytest.raises(sharding.ShardingError, match="needs 4 devices"):
        sharding.make_mesh({"fsdp": 4}, jax.devices()[:1])


def test_no_mesh_is_a_no_op():
    """Without active rules the DiT traces exactly as before (no sharding ops); rules on a
    one-device mesh give the identical output."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from configs.wan_dit import get_config
    from gvc_jax import sharding
    from gvc_jax.models.wan.dit import WanDiT

    cfg = get_config("tiny-t2v")
    dit = WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float32)
    gd, sd = nnx.split(dit)
    x, t, ctx = _tiny_inputs(cfg, grid=(2, 4, 4))
    assert sharding.current() is None
    y = jnp.ones((2, 3))
    assert sharding.constrain(y, ("act_tokens", "act_embed")) is y
    jaxpr = str(jax.make_jaxpr(lambda s: nnx.merge(gd, s)(x, t, ctx))(sd))
    assert "sharding_constraint" not in jaxpr and "shard_map" not in jaxpr
    fwd = jax.jit(lambda g, s, *a: nnx.merge(g, s)(*a))
    want = np.asarray(fwd(gd, sd, x, t, ctx))
    placed = sharding.shard_model(dit, sharding.make_mesh(),
                                  "wan-fsdp-seq")
    np.testing.assert_array_equal(np.asarray(fwd(gd, placed, x, t, ctx)), want)
    from gvc_jax.models.wan.attention import attention
    q, k, v = (jax.random.normal(jax.random.key(i), (1, 10, 2, 32)) for i in range(3))
    with sharding.activate(sharding.make_mesh(), "wan-seq") as act:
        assert sharding.current() is act and sharding.constrain(y, ("act_tokens", None)) is y
        got = attention(q, k, v, "xla")
        with sharding.activate(None, "wan-seq"):  # switched off inside
            assert sharding.current() is None
    assert sharding.current() is None
    np.testing.assert_array_equal(np.asarray(got), np.asarray(attention(q, k, v, "xla")))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} --worker OUT.json (run by pytest)")
