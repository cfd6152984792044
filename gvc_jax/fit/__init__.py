"""Does a codec configuration fit an accelerator? Compile it for the target and ask the compiler.

``fit(target, config, size, frames, ...)`` compiles one GOP's programs (the DiT encoder and
decoder scans with the codebook search, the VAE, umT5, CLIP) with abstract parameters for a TPU
topology described by libtpu (from any host, no TPU needed) or the local GPU, and reports
per-chip memory, whether it fits, and a roofline time estimate (docs/fit.md). TPU figures are
compiled and fitted, not run.
"""
from gvc_jax.fit.api import PROGRAMS, fit  # noqa: F401
from gvc_jax.fit.report import format_table  # noqa: F401
from gvc_jax.fit.targets import NAMES as TARGETS, FitError  # noqa: F401
