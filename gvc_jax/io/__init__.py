"""Video I/O: uint8 RGB frames [T, H, W, 3] from/to mp4, mkv, avi, y4m, npy and PNG folders."""
from gvc_jax.io.errors import VideoIOError
from gvc_jax.io.video import FFMPEG_EXTS, Video, find_sample_clip, guess_fps, read_video, write_video

__all__ = ["Video", "VideoIOError", "read_video", "write_video", "find_sample_clip", "guess_fps", "FFMPEG_EXTS"]
