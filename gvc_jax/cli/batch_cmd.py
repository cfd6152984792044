"""``gvc batch``: its flags and command (docs/batch.md)."""
from __future__ import annotations

import json
import os
import sys

from gvc_jax.cli.common import add_common, add_model_options


def add_parser(sub) -> None:
    from gvc_jax.codec.params import add_cli_flags
    from gvc_jax.codec.presets import PRESETS

    b = sub.add_parser("batch", help="code many videos, one .gvc each, as batches of GOPs",
                       description="Codes every input into OUT/NAME.gvc, GOPs of all inputs "
                                   "batched on the devices. Resumable: a rerun with the same "
                                   "--out reuses every finished GOP (docs/batch.md).")
    b.add_argument("inputs", nargs="+", help="videos (mp4/mkv/avi/y4m/npy or PNG folders), "
                                             "folders of videos, or .txt lists")
    b.add_argument("-o", "--out", required=True,
                   help="output folder (created; holds NAME.gvc and the job folder .gvc-job)")
    b.add_argument("--config", default=None,
                   help=f"codec preset: {', '.join(sorted(PRESETS))} (default as for compress)")
    b.add_argument("--weights", help="the model folder (a Wan 2.1 download) or a gaussian "
                                     "prior .npz")
    b.add_argument("--batch-gops", type=int, default=None,
                   help="GOPs coded per jitted batch (default 8 rounded up to a multiple of "
                        "the local device count; a batch is padded to such a multiple)")
    b.add_argument("--max-frames", type=int, help="code only the first N frames of each input")
    b.add_argument("--prompt", default="", help="text prompt for every input (sent in each "
                                                "stream)")
    b.add_argument("--negative-prompt", default="", help="negative prompt for --guidance")
    b.add_argument("--verify", action="store_true",
                   help="decode each finished .gvc and check it decodes")
    b.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    b.add_argument("--distributed", action="store_true",
                   help="several processes (hosts) share the inputs: call "
                        "jax.distributed.initialize() (also on when $JAX_COORDINATOR_ADDRESS "
                        "is set)")
    b.add_argument("--coordinator", help="host:port of process 0 (default "
                                         "$JAX_COORDINATOR_ADDRESS or the cluster's)")
    b.add_argument("--num-processes", type=int, help="processes in the job (default "
                                                     "$JAX_NUM_PROCESSES or the cluster's)")
    b.add_argument("--process-id", type=int, help="this process's rank (default "
                                                  "$JAX_PROCESS_ID or the cluster's)")
    add_cli_flags(b)
    add_model_options(b, placement=False)
    add_common(b)


def _env_int(name: str, value):
    from gvc_jax.codec.errors import UsageError

    if value is not None:
        return value
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise UsageError(f"${name} must be an integer, got {v!r}") from None


def init_distributed(a) -> tuple[int, int]:
    """``(process index, process count)``; initialises jax.distributed when asked for
    (docs/batch.md, "Several hosts"). Must run before anything touches a JAX backend."""
    import jax

    from gvc_jax.codec.errors import UsageError

    asked = a.distributed or a.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not asked:
        return 0, 1
    if not jax.distributed.is_initialized():
        kw = {"coordinator_address": a.coordinator,
              "num_processes": _env_int("JAX_NUM_PROCESSES", a.num_processes),
              "process_id": _env_int("JAX_PROCESS_ID", a.process_id)}
        try:
            # a long job may leave one process waiting for the others for hours at the end
            jax.distributed.initialize(**{k: v for k, v in kw.items() if v is not None},
                                       shutdown_timeout_seconds=7 * 24 * 3600)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--distributed: {e} (give --coordinator, --num-processes and "
                             "--process-id, or the JAX_* variables)") from None
    return jax.process_index(), jax.process_count()


def cmd_batch(a) -> int:
    from gvc_jax import batch
    from gvc_jax.codec.errors import UsageError
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.codec.params import overrides_from_args

    if a.batch_gops is not None and a.batch_gops < 1:
        raise UsageError(f"--batch-gops must be >= 1, got {a.batch_gops}")
    if a.max_frames is not None and a.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {a.max_frames}")
    overrides = overrides_from_args(a)
    if a.dtype:
        overrides["dtype"] = a.dtype
    prompt = Prompt(a.prompt, a.negative_prompt)
    index, count = init_distributed(a)
    try:
        from gvc_jax.progress import CodecProgress

        progress = CodecProgress.for_cli(a.quiet, a.progress)
        log = None if a.quiet else progress.line
        try:
            summary = batch.run(a.inputs, a.out, config=a.config, weights=a.weights,
                                overrides=overrides, prompt=prompt, max_frames=a.max_frames,
                                batch_gops=a.batch_gops, verify=a.verify,
                                cache_dir=False if a.no_cache else a.cache_dir,
                                progress=progress, log=log, process_index=index,
                                process_count=count)
        finally:
            progress.close()
    finally:
        if count > 1:
            import jax
            jax.distributed.shutdown()      # waits for the other processes
    if a.json:
        print(json.dumps(summary, indent=2))
    elif not a.quiet:
        who = f" (process {index + 1}/{count})" if count > 1 else ""
        print(f"{a.out}: {summary['videos_total']} video(s){who}, "
              f"{summary['videos_skipped']} finished earlier; {summary['gops_coded']} GOP(s) "
              f"coded, {summary['gops_reused']} reused", file=sys.stdout)
        if a.verify:
            for v in summary["videos"]:
                psnr = f", PSNR {v['psnr']:.2f} dB" if "psnr" in v else ""
                print(f"{v['output']}: decodes ({v['frames']} frames of {v['width']}x"
                      f"{v['height']}){psnr}", file=sys.stdout)
    return 0
