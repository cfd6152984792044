"""Coverage-guided fuzzing of the .gvc parsers with atheris (docs/cli.md, "Hostile inputs").

    .venv/bin/python bench/fuzz_gvc.py --inputs 100000 --out bench/results/fuzz.json

Runs libFuzzer (through atheris) on :func:`gvc_jax.testing.fuzz.gvc_harness.TestOneInput` in a
child process, seeded with the committed corpus (tests/fuzz/corpus: real streams of the gaussian
config and of Wan T2V, plus inputs that reached new coverage), with a per-input time bound
(``-timeout``).
The gvc_jax modules are instrumented for coverage (not jax/numpy). A Python exception other than
BitstreamError is a crash; libFuzzer writes it as ``crash-*`` and a hang as ``timeout-*`` under the
artifact folder. The JSON holds inputs, crashes, hangs, coverage (libFuzzer's ``cov:`` edge count
and ``ft:`` features of the final line), seconds and the command. ``--merge-into DIR`` then adds
to DIR the inputs of the run that reach new coverage (libFuzzer ``-merge=1``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(libfuzzer_args: list[str], argv0: str | None = None) -> None:
    import atheris

    sys.path.insert(0, ROOT)
    with atheris.instrument_imports(include=["gvc_jax"]):
        import gvc_jax.bitstream.container  # noqa: F401  (instrumented)
        import gvc_jax.codec.api  # noqa: F401
        import gvc_jax.codec.core  # noqa: F401
        import gvc_jax.codec.codec_model  # noqa: F401
        import gvc_jax.codec.params  # noqa: F401
    from gvc_jax.testing.fuzz import gvc_harness

    # libFuzzer's -merge=1 re-runs argv[0] itself: an executable wrapper is passed then.
    atheris.Setup([argv0 or sys.argv[0]] + libfuzzer_args, gvc_harness.TestOneInput)
    atheris.Fuzz()


def _final_stats(log: str) -> dict:
    out = {}
    for line in log.splitlines():
        m = re.match(r"#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)", line)
        if m:
            out = {"runs": int(m.group(1)), "event": m.group(2), "cov": int(m.group(3)),
                   "ft": int(m.group(4))}
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    if m:
        out["executed_units"] = int(m.group(1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs to run (libFuzzer -runs)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/fuzz.json"))
    ap.add_argument("--timeout", type=int, default=10, help="seconds per input before a hang")
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests/fuzz/corpus"),
                    help="seed corpus (read only)")
    ap.add_argument("--work", default=None, help="folder for the inputs the run finds "
                                                 "(default: a temporary folder)")
    ap.add_argument("--merge-into", default=None,
                    help="afterwards add the inputs that reach new coverage to this folder")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--argv0", default=None, help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args(argv)
    if a.child:
        child(rest, a.argv0)
        return 0
    work = a.work or tempfile.mkdtemp(prefix="gvc_fuzz_work_")
    art = os.path.join(work, "artifacts")
    found = os.path.join(work, "found")
    os.makedirs(art, exist_ok=True)
    os.makedirs(found, exist_ok=True)
    lf = [found, a.corpus, f"-runs={a.inputs}", f"-timeout={a.timeout}", f"-max_len={a.max_len}",
          f"-seed={a.seed}", "-rss_limit_mb=4096", "-print_final_stats=1",
          f"-artifact_prefix={art}/"]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *lf]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.time() - t0
    log = proc.stdout
    with open(os.path.join(work, "fuzz.log"), "w") as f:
        f.write(log)
    stats = _final_stats(log)
    crashes = sorted(glob.glob(os.path.join(art, "crash-*")) + glob.glob(os.path.join(art, "oom-*")))
    hangs = sorted(glob.glob(os.path.join(art, "timeout-*")) + glob.glob(os.path.join(art, "slow-unit-*")))
    import atheris

    result = {
        "inputs": stats.get("executed_units", stats.get("runs")),
        "crashes": len(crashes),
        "hangs": len(hangs),
        "coverage": {"edges": stats.get("cov"), "features": stats.get("ft"),
                     "note": "libFuzzer's cov: (instrumented gvc_jax edges) and ft: of the last "
                             "status line"},
        "seconds": round(seconds, 1),
        "execs_per_second": round(stats.get("runs", 0) / seconds, 1) if seconds else None,
        "per_input_timeout_s": a.timeout,
        "max_len": a.max_len,
        "seed_corpus": os.path.relpath(a.corpus, ROOT),
        "seed_files": len(os.listdir(a.corpus)) if os.path.isdir(a.corpus) else 0,
        "new_inputs_found": len(os.listdir(found)),
        "exit_code": proc.returncode,
        "atheris": getattr(atheris, "__version__", None) or _pkg_version("atheris"),
        "python": sys.version.split()[0],
        "machine": f"{os.cpu_count()} CPU cores, CPU only",
        "command": "python bench/fuzz_gvc.py " + " ".join(
            shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
        "libfuzzer_args": lf[2:],
        "artifacts": [os.path.basename(p) for p in crashes + hangs],
        "harness": "gvc_jax/testing/fuzz/gvc_harness.py",
    }
    if a.merge_into:
        os.makedirs(a.merge_into, exist_ok=True)
        before = set(os.listdir(a.merge_into))
        wrapper = os.path.join(work, "fuzz_child.sh")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                    f"{shlex.quote(os.path.abspath(__file__))} --child \"$@\"\n")
        os.chmod(wrapper, 0o755)
        mcmd = [sys.executable, os.path.abspath(__file__), "--child", "--argv0", wrapper,
                "-merge=1", f"-max_len={a.max_len}", a.merge_into, a.corpus, found]
        with open(os.path.join(work, "merge.log"), "w") as log_f:
            subprocess.run(mcmd, cwd=ROOT, stdout=log_f, stderr=subprocess.STDOUT)
        result["merged_new_files"] = len(set(os.listdir(a.merge_into)) - before)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps({k: result[k] for k in ("inputs", "crashes", "hangs", "coverage", "seconds")}))
    if crashes or hangs:
        print("artifacts in", art, file=sys.stderr)
        print(log[-4000:], file=sys.stderr)
    return 1 if crashes or hangs or proc.returncode else 0


def _pkg_version(name):
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    sys.exit(main())
