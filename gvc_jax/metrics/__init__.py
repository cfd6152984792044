"""Quality metrics on uint8 video [T,H,W,3]."""
from gvc_jax.metrics.psnr import psnr, psnr_mean, psnr_sequence

__all__ = ["psnr", "psnr_mean", "psnr_sequence"]
