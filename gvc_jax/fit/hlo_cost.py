"""FLOPs and HBM bytes of a compiled program, with every loop body scaled by its trip count.

XLA's ``cost_analysis()`` counts a ``while`` body once, and the codec's programs nest loops
(the GOP's steps, the DiT's layers, the codebook's chunks). :func:`analyse` reads the compiled
(per-chip, after SPMD partitioning) HLO text instead:

* each computation's multiplicity is the sum over its call sites of the caller's multiplicity
  times the trip count of a ``while`` (XLA's ``known_trip_count`` annotation where the
  compiler wrote one, else from its condition: ``induction < constant``, minus the induction
  variable's constant start), 1 for fusions, calls and conditional branches;
* FLOPs: 2·(output elements)·(contracted elements) of every ``dot`` and ``convolution``,
  inside fusions too (the matrix-unit work; elementwise work is not counted); on GPUs the
  same for cuBLAS GEMM custom calls (``__cublas$gemm``, ``__cublas$lt$matmul``, its fp8 form:
  dimensions from their ``dot_dimension_numbers``) and 4·B·H·Lq·Lk·D for cuDNN's fused
  attention (``__cudnn$fmha*``, forward: dimensions from ``bmm1_dot_dimension_numbers``);
* bytes: operands plus result of every instruction of the control-flow computations (a fusion
  counts once, at its boundary), leaving out tuple plumbing, bitcasts, constants and values
  in on-chip memory (layouts marked ``S(1)``): an estimate of HBM traffic.

Pallas/Mosaic kernels are opaque custom calls here; :func:`pallas_calls` counts them from the
jaxpr (the splash attention's FLOPs: 4·N·Lq·Lk·H per call). A loop whose trip count is not of
the pattern above counts once and is listed in ``unknown_loops``.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s4": 0.5, "u4": 0.5, "f8e4m3fn": 1, "f8e5m2": 1,
                "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4,
                "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16, "token": 0}
_ARRAY = re.compile(r"\b([a-z]+\d*[a-z0-9]*)\[([\d,]*)\](\{[^}]*\})?")
_COMP = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s.*\{\s*$")
_INST = re.compile(r"^\s*(ROOT\s+)?%([\w.\-]+)\s*=\s*")
_NAME = re.compile(r"%([\w.\-]+)")
_NO_BYTES = {"parameter", "get-tuple-element", "tuple", "bitcast", "constant", "while",
             "conditional", "call", "after-all", "partition-id", "replica-id", "opt-barrier",
             "copy-done", "send-done", "recv-done", "all-reduce-done", "all-gather-done",
             "collective-permute-done", "async-done", "iota"}


def _arrays(shape: str):
    """``[(dtype, dims, on_chip)]`` of a shape string (an array or a tuple of arrays)."""
    out = []
    for dt, dims, layout in _ARRAY.findall(shape):
        if dt not in _DTYPE_BYTES:
            continue
        d = tuple(int(x) for x in dims.split(",") if x)
        out.append((dt, d, "S(1)" in (layout or "")))
    return out


def _bytes(shape: str, *, hbm_only: bool = True) -> float:
    return sum(math.prod(d) * _DTYPE_BYTES[dt] for dt, d, vmem in _arrays(shape)
               if not (hbm_only and vmem))


def _split_shape(rest: str) -> tuple[str, str]:
    """``(shape, remainder)`` of the text after ``name =``."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[: i + 1], rest[i + 1:].lstrip()
    sp = rest.find(" ")
    return rest[:sp], rest[sp + 1:]


def _call_args(rest: str) -> tuple[str, str, str]:
    """``(opcode, operand text, attributes)`` of ``opcode(operands), attrs``."""
    p = rest.find("(")
    op = rest[:p].strip()
    depth = 0
    for i in range(p, len(rest)):
        depth += rest[i] == "("
        depth -= rest[i] == ")"
        if depth == 0:
            return op, rest[p + 1: i], rest[i + 1:]
    return op, rest[p + 1:], ""


def parse(text: str) -> tuple[dict, str]:
    """``({computation: [(name, shape, opcode, operands, attrs)]}, entry name)``; a
    computation's root instruction is its last entry."""
    comps: dict[str, list] = {}
    roots: dict[str, tuple] = {}
    entry, cur = None, None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and not line.startswith(" "):
            cur = m[2]
            comps[cur] = []
            if m[1]:
                entry = cur
            continue
        if cur is None or line.strip() == "}":
            continue
        mi = _INST.match(line)
        if not mi:
            continue
        shape, rest = _split_shape(line[mi.end():])
        op, operands, attrs = _call_args(rest)
        if op == "parameter":            # keep its number: "parameter(3)"
            attrs = f"number={operands.strip()} " + attrs
        inst = (mi[2], shape, op, _NAME.findall(operands), attrs)
        if mi[1]:
            roots[cur] = inst
        else:
            comps[cur].append(inst)
    for c, inst in roots.items():
        comps[c].append(inst)
    return comps, entry


def _callees(attrs: str) -> list[tuple[str, str]]:
    out = []
    for key in ("calls", "body", "condition", "to_apply"):
        for m in re.finditer(rf"\b{key}=%([\w.\-]+)", attrs):
            out.append((key, m[1]))
    for m in re.finditer(r"\bbranch_computations=\{([^}]*)\}", attrs):
        out += [("branch", n) for n in _NAME.findall(m[1])]
    for m in re.finditer(r"\bcalled_computations=\{([^}]*)\}", attrs):
        out += [("calls", n) for n in _NAME.findall(m[1])]
    return out


def _loop_compare(comps, cond: str):
    """``(induction operand, bound operand)`` names of a condition's root ``a < b``, seen
    through a fusion that wraps the compare (XLA:CPU does)."""
    root = comps[cond][-1] if comps.get(cond) else None
    if root is None:
        return None
    if root[2] == "fusion":
        callee = re.search(r"\bcalls=%([\w.\-]+)", root[4])
        inner = comps.get(callee[1]) if callee else None
        if not inner or inner[-1][2] != "compare" or "direction=LT" not in inner[-1][4]:
            return None
        params = {n: int(re.search(r"number=(\d+)", at)[1]) for n, _, o, _, at in inner
                  if o == "parameter"}
        try:
            return tuple(root[3][params[x]] for x in inner[-1][3][:2])
        except (KeyError, IndexError):
            return None
    if root[2] == "compare" and "direction=LT" in root[4]:
        return tuple(root[3][:2])
    return None


def _trip_count(comps, consts, cond: str, init_operands: list[str], defs) -> int | None:
    """Trip count of a while loop from its condition ``gte(i) < c`` and the start of i."""
    pair = _loop_compare(comps, cond)
    if pair is None:
        return None
    a, b = pair
    bound = consts.get(b)
    ind = defs.get(a)
    if bound is None or ind is None or ind[2] != "get-tuple-element":
        return None
    idx = re.search(r"index=(\d+)", ind[4])
    start = 0
    if idx and init_operands:
        tup = defs.get(init_operands[0])
        if tup is not None and tup[2] == "tuple" and int(idx[1]) < len(tup[3]):
            start = consts.get(tup[3][int(idx[1])], 0)
    return max(0, int(bound) - int(start))


def _dims_field(attrs: str, obj: str, key: str) -> list[int] | None:
    """The integer list ``key`` of the JSON object ``obj`` in a backend config."""
    m = re.search(rf'"{obj}":\{{([^}}]*)\}}', attrs)
    f = re.search(rf'"{key}":\[([^\]]*)\]', m[1]) if m else None
    return None if f is None else [int(x) for x in re.findall(r"\d+", f[1])]


def _custom_call_flops(out, operands, attrs, defs) -> float:
    """FLOPs of the GPU library calls that do the matrix work (module docstring)."""
    t = re.search(r'custom_call_target="([^"]+)"', attrs)
    target = t[1] if t else ""
    arrays = [_arrays(defs[x][1]) if x in defs else [] for x in operands[:2]]
    if len(arrays) < 2 or not all(arrays):
        return 0.0
    shapes = [a[0][1] for a in arrays]
    if target.startswith("__cublas$"):
        k = _dims_field(attrs, "dot_dimension_numbers", "lhs_contracting_dimensions")
        if k is None:
            return 0.0
        return 2.0 * math.prod(out[0][1]) * math.prod(shapes[0][i] for i in k)
    if target.startswith("__cudnn$fmha") and "Backward" not in target:
        q, kk = shapes
        c = _dims_field(attrs, "bmm1_dot_dimension_numbers", "lhs_contracting_dimensions")
        b = _dims_field(attrs, "bmm1_dot_dimension_numbers", "lhs_batch_dimensions")
        if not c or b is None:
            return 0.0
        d, batch = math.prod(q[i] for i in c), math.prod(q[i] for i in b)
        lq = math.prod(q) // (d * batch)
        lk = math.prod(kk) // (d * batch)
        return 4.0 * batch * lq * lk * d
    return 0.0


def _flops(shape, op, operands, attrs, defs) -> float:
    out = _arrays(shape)
    if out and op == "custom-call":
        return _custom_call_flops(out, operands, attrs, defs)
    if not out or op not in ("dot", "convolution"):
        return 0.0
    n_out = math.prod(out[0][1])
    if op == "dot":
        lhs = defs.get(operands[0])
        m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", attrs)
        if lhs is None or not m:
            return 0.0
        dims = _arrays(lhs[1])[0][1]
        k = math.prod(dims[int(i)] for i in m[1].split(",") if i)
        return 2.0 * n_out * k
    kern = defs.get(operands[1]) if len(operands) > 1 else None
    m = re.search(r"dim_labels=[^_]*_([^-]*)->", attrs)
    if kern is None or not m:
        return 0.0
    kdims = _arrays(kern[1])[0][1]
    labels = m[1]
    o = kdims[labels.index("o")] if "o" in labels and len(labels) == len(kdims) else 1
    return 2.0 * n_out * math.prod(kdims) / max(1, o)


def _int_constants(text: str) -> dict[str, int]:
    """Scalar integer constants of the module by instruction name."""
    out = {}
    for m in re.finditer(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*[su]\d+\[\]\S*\s+"
                         r"constant\((-?\d+)\)", text, re.M):
        out[m[1]] = int(m[2])
    return out


def analyse(text: str) -> dict:
    """``{"flops", "bytes", "custom_calls": {target: count}, "unknown_loops"}`` per chip."""
    comps, entry = parse(text)
    defs = {n: (c, s, o, a, at) for c, insts in comps.items() for n, s, o, a, at in insts}
    consts = _int_constants(text)
    edges = defaultdict(list)      # caller -> [(callee, factor, kind)]
    unknown = []
    for c, insts in comps.items():
        for n, s, o, a, at in insts:
            for kind, callee in _callees(at):
                factor = 1
                if o == "while" and kind in ("body", "condition"):
                    known = re.search(r'"known_trip_count":\{"n":"(\d+)"', at)
                    cond = re.search(r"\bcondition=%([\w.\-]+)", at)
                    tc = int(known[1]) if known else (
                        _trip_count(comps, consts, cond[1], a, defs) if cond else None)
                    if tc is None:
                        if kind == "body":
                            unknown.append(n)
                        tc = 1
                    factor = tc + (1 if kind == "condition" else 0)
                edges[c].append((callee, factor, kind))
    mult = defaultdict(float)
    mult[entry] = 1.0
    indeg = defaultdict(int)
    for es in edges.values():
        for callee, _, _ in es:
            indeg[callee] += 1
    order, ready = [], [c for c in comps if indeg[c] == 0]
    while ready:
        c = ready.pop()
        order.append(c)
        for callee, factor, _ in edges.get(c, []):
            mult[callee] += mult[c] * factor
            indeg[callee] -= 1
            if indeg[callee] == 0:
                ready.append(callee)
    inner = {callee for es in edges.values() for callee, _, k in es if k in ("calls", "to_apply")}
    flops = nbytes = 0.0
    customs: dict[str, int] = defaultdict(int)
    for c in order:
        k = mult[c]
        if not k:
            continue
        for n, s, o, a, at in comps[c]:
            flops += k * _flops(s, o, a, at, defs)
            if o == "custom-call":
                t = re.search(r'custom_call_target="([^"]+)"', at)
                customs[t[1] if t else "?"] += int(k)
            if c in inner or o in _NO_BYTES:
                continue
            nbytes += k * (_bytes(s) + sum(_bytes(defs[x][1]) for x in a if x in defs))
    return {"flops": flops, "bytes": nbytes, "custom_calls": dict(customs),
            "unknown_loops": unknown}


def pallas_calls(closed_jaxpr) -> list[dict]:
    """``[{"name", "flops"}]`` for every ``pallas_call`` of a (closed) jaxpr, repeated by the
    lengths of the scans around it; the splash attention's FLOPs are 4·N·Lq·Lk·H (its
    ``cost_estimate`` when the kernel gives one)."""
    out = []

    def walk(jaxpr, mult):
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            if name == "pallas_call":
                est = eqn.params.get("cost_estimate")
                kname = str(eqn.params.get("name") or eqn.params.get("metadata") or "pallas")
                flops = float(est.flops) if est is not None else _splash_flops(eqn)
                out.append({"name": kname, "flops": flops * mult})
                continue
            inner = mult * (int(eqn.params["length"]) if name == "scan" else 1)
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                    j = getattr(sub, "jaxpr", None)
                    if j is not None and hasattr(j, "eqns"):
                        walk(j, inner)
                    elif hasattr(sub, "eqns"):
                        walk(sub, inner)

    walk(closed_jaxpr.jaxpr if hasattr(closed_jaxpr, "jaxpr") else closed_jaxpr, 1)
    return out


def _splash_flops(eqn) -> float:
    """4·N·Lq·Lk·H from the kernel's q [.., N, Lq, H] and k [.., N, Lk, H] operands."""
    import jax.numpy as jnp

    qs = [tuple(v.aval.shape) for v in eqn.invars if hasattr(v.aval, "shape")
          and len(v.aval.shape) >= 3 and jnp.issubdtype(v.aval.dtype, jnp.floating)]
    if len(qs) < 2:
        return 0.0
    q, k = qs[0], qs[1]
    return 4.0 * math.prod(q[:-1]) * k[-2] * q[-1]
