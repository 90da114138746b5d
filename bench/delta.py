#!/usr/bin/env python3
"""The delta alone: understudy's (common/fdelta.c) against librsync's.

  delta.py BUILD_DIR [--dump-mib 256] [--percent 1] [--blocks 2048,4096]
      [--dir DIR]

Makes the bench's dump (bench/workload.py), changes PERCENT of its lines,
then for each block size: a signature of the old dump as the sync makes
one (build/bench/delta-tool), and the delta of the new dump against it,
timed, made by `rdiff delta` (librsync) and by delta-tool (what the
server runs), each on one core; both must patch (`rdiff patch`) to the
new dump.  The disk is synced before each timed step.  Prints a table for
docs/benchmarks.md.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(cmd):
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--dump-mib", type=int, default=256)
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--blocks", default="2048,4096")
    ap.add_argument("--dir")
    args = ap.parse_args()
    tool = os.path.join(args.build, "bench", "delta-tool")
    if not os.access(tool, os.X_OK):
        sys.exit("delta.py: no %s (build first)" % tool)
    top = args.dir or tempfile.mkdtemp(prefix="understudy-delta.")
    work = os.path.join(top, "w")
    os.makedirs(work, exist_ok=True)
    wl = [sys.executable, os.path.join(HERE, "workload.py")]
    subprocess.run(wl + ["gen", work, "--kind", "dump", "--dump-mib",
                         str(args.dump_mib)], check=True)
    old = os.path.join(top, "old.sql")
    new = os.path.join(work, "dump.sql")
    shutil.copyfile(new, old)
    subprocess.run(wl + ["mutate", work, "--kind", "dump", "--percent",
                         str(args.percent)], check=True)
    print("| block | librsync (`rdiff delta`) | understudy (`fdelta`) | "
          "delta size, librsync / understudy |")
    print("| ---: | ---: | ---: | ---: |")
    for block in args.blocks.split(","):
        sig = os.path.join(top, "sig")
        subprocess.run([tool, "signature", block, old, sig], check=True)
        theirs, ours = os.path.join(top, "d.rs"), os.path.join(top, "d.us")
        for p in (theirs, ours):
            if os.path.exists(p):
                os.unlink(p)
        t_rs = timed(["taskset", "-c", "0", "rdiff", "delta", sig, new,
                      theirs])
        t_us = timed(["taskset", "-c", "0", tool, "delta", sig, new, ours])
        for d in (theirs, ours):
            out = os.path.join(top, "out")
            if os.path.exists(out):
                os.unlink(out)
            subprocess.run(["rdiff", "patch", old, d, out], check=True)
            if not filecmp.cmp(out, new, shallow=False):
                sys.exit("delta.py: %s does not patch to the new dump" % d)
        print("| %s | %.2f s | %.2f s | %.1f / %.1f MB |" % (
            block, t_rs, t_us, os.path.getsize(theirs) / 1e6,
            os.path.getsize(ours) / 1e6))
    if not args.dir:
        shutil.rmtree(top)


if __name__ == "__main__":
    main()
