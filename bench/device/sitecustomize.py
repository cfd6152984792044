"""For the lent GPU machine only (jax 0.11.2 there; never imported by the library): flax 0.12.8,
the newest flax the package index here offers, defines its hijax Variable classes (disabled by
default, flax_hijax_variable=False) at import time from names jax 0.11.2's
jax.experimental.hijax no longer has, and fails to import. Copied as sitecustomize.py into the
--target folder of the carried wheels (on PYTHONPATH), it gives the missing names from
jax._src.hijax where there, else inert placeholders. Checked on CPU by deleting the names from
jax 0.10.2; not yet run on the GPU machine.
"""
try:
    import jax.experimental.hijax as _pub
    from jax._src import core as _core
    from jax._src import hijax as _src

    class _HiPrimitive(_core.Primitive):
        pass

    class _MutableHiType(_core.AbstractValue):
        pass

    class _AvalQDD:
        pass

    class _AvalMutableQDD:
        pass

    _ph = {"HiPrimitive": _HiPrimitive, "MutableHiType": _MutableHiType, "AvalQDD": _AvalQDD,
           "AvalMutableQDD": _AvalMutableQDD}
    _done = []
    for _n in ("AbstractValue", "AvalMutableQDD", "AvalQDD", "HiPrimitive", "MutableHiType",
               "Zero", "control_flow_allowed_effects", "register_hitype"):
        if not hasattr(_pub, _n):
            if hasattr(_src, _n):
                setattr(_pub, _n, getattr(_src, _n))
                _done.append(_n + "<-_src")
            elif _n in _ph:
                setattr(_pub, _n, _ph[_n])
                _done.append(_n + "<-placeholder")
    if _done:
        import sys
        print(f"sitecustomize: jax.experimental.hijax shimmed: {_done}", file=sys.stderr)
except Exception as _e:  # noqa: BLE001
    import sys
    print(f"sitecustomize: {_e!r}", file=sys.stderr)
