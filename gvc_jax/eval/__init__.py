"""Evaluation: our configs and classical baselines on a set of videos, with
PSNR / MS-SSIM / LPIPS, honest rates and RD reports (``gvc eval``).

Modules: ``inputs`` (video lists, UVG raw .yuv, resizing), ``baselines``
(x264/x265/VVC/AV1 through ffmpeg), ``runner`` (rows, resume), ``report``
(csv/json/markdown/PNG).
"""
