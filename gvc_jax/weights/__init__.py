"""Checkpoint readers, conversion tables and loaders, one module per model family.

Each family module (``dit``, ``vae``, ``t5``, ``clip``) has ``load(path, *, dtype, cache_dir,
progress) -> (module, fingerprint)``: ``path`` is the folder a user downloads, in the official
or the diffusers layout, and the architecture is read from its own config files (or, where the
official layout ships none, from the tensor shapes). ``convert_weights/`` builds its command
line on these.
"""
