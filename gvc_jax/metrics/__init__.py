"""Quality metrics on uint8 video [T,H,W,3], returning per-frame values (see docs/metrics.md)."""
from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.ms_ssim import ms_ssim, ms_ssim_supported
from gvc_jax.metrics.psnr import psnr, psnr_mean, psnr_sequence, psnr_y, psnr_y_mean, psnr_y_sequence
from gvc_jax.metrics.lpips import LPIPS  # jax and flax load on first use; weights: gvc_jax.weights.lpips

__all__ = [
    "LPIPS",
    "MetricUnavailable",
    "ms_ssim",
    "ms_ssim_supported",
    "psnr",
    "psnr_mean",
    "psnr_sequence",
    "psnr_y",
    "psnr_y_mean",
    "psnr_y_sequence",
]
