"""Checkpoint readers, conversion tables and loaders (docs/weights.md).

One module per model family (``dit``, ``vae``, ``t5``, ``clip``, ``lpips``): ``read(path,
layout)`` lists a checkpoint's tensors lazily, ``conversion(ckpt, cfg, dtype=None)`` is the
family's one conversion (:class:`gvc_jax.weights.table.Conversion`: ``.run()`` converts,
``.fingerprint()`` fingerprints read-only), and ``load(path, *, dtype, cache_dir, progress) ->
(module, fingerprint)`` loads from the folder a user downloads, in the official or the
diffusers layout, through the converted-weights cache; the architecture is read from the
folder's own config files (or, where the official layout ships none, from the tensor shapes).
:mod:`gvc_jax.weights.wan` loads a whole Wan 2.1 folder for the codec. ``convert_weights/``
builds its command line on these modules. This package may import ``gvc_jax.models`` and
``gvc_jax.metrics`` (the networks it fills); they never import it.
"""
