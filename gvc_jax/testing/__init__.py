"""Tools to try and test gvc-jax without real weights (docs/testing.md).

* :mod:`.random_wan`: ``python -m gvc_jax.testing.random_wan OUT`` writes a Wan 2.1 checkpoint
  folder with random weights (tiny or full size, official or diffusers layout, T2V/I2V/FLF2V)
  that ``gvc compress --weights OUT`` accepts; :mod:`.random_wan_tiny` and
  :mod:`.random_wan_full` are its writers, :mod:`.stream_files` the chunked file writers.
* :mod:`.torch_gvc`: an independent PyTorch GVC encoder/decoder loop, the reference of the
  parity tests.
* :mod:`.refs`: constructor arguments and random weights of the PyTorch reference models;
  :mod:`.wan22`: the official Wan modules (PyPI ``wan22``) imported one by one.
* :mod:`.fuzz`: the fuzz targets of the ``.gvc`` and safetensors parsers.

Nothing in gvc_jax outside this package imports it. Importing it imports no torch: the PyTorch
stack is optional (``pip install -e '.[testing]'`` and ``pip install --no-deps wan22==2.2.11``),
and a missing piece raises :class:`.deps.MissingDependency` with one line naming what to install.
"""
