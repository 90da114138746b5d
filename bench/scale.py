#!/usr/bin/env python3
"""understudy at scale: memory with one big file, status under many sources.

  scale.py BUILD_DIR big [--gib 10] [--dir DIR] [--keep]
  scale.py BUILD_DIR sources [--sources 100] [--mib 16] [--nice N]
           [--dir DIR]
  scale.py BUILD_DIR rate [--rate 16Mbit] [--seconds 30] [--dir DIR]

big: one exporter, one pull-backup, one importer on loopback; a file of
GIB GiB (pseudo-random, so that deltas do real work) goes through the
whole chain once (whole), then 1 MiB of it changes in three places and it
goes again (by delta, 64 KiB blocks).  Prints each daemon's peak RSS
(VmHWM) after each cycle.

sources: SOURCES exporters, each with a file of MIB MiB, and one
pull-backup that pulls them all at once (--nice N runs the exporters at
that niceness: on one machine they stand for other hosts, and at equal
priority their hashing takes the pull-backup's cores); while it pulls, `status` is run
over and over, and the daemon's status request alone (GET /v1/status over
a new connection, without the command's start).  Prints how long each
took (median and worst), how many pulls were under way, and how late the
pull-backup's event loop ran (its /metrics: the daemon's own share, without
the clients' start or scheduling).

rate: one exporter, one pull-backup, one importer on loopback, each
source with bandwidth_limit RATE; a pseudo-random file of RATE x SECONDS
bytes goes through the chain once.  While each hop runs, its daemon's
status is read every 0.2 s: the rate is the bytes received between the
first and the last sample over the time between them.  Prints each
hop's rate and how far it is from RATE.

Nothing here is a test: the numbers go to docs/benchmarks.md."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import exporter_yaml, free_port, proc_hwm, mib  # noqa: E402


def ports(n):
    seen = set()
    while len(seen) < n:
        seen.add(free_port())
    return list(seen)


def start(build, role, conf, log, nice=0):
    prog = os.path.join(build, role, "understudy-" + role)
    p = subprocess.Popen([prog, "-c", conf, "serve"], stdout=log, stderr=log,
                         preexec_fn=(lambda: os.nice(nice)) if nice else None)
    for _ in range(200):
        if subprocess.run([prog, "-c", conf, "status"],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("scale: the %s (%s) did not start" % (role, conf))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def token(work):
    tok = os.path.join(work, "token")
    write(tok, os.urandom(32).hex() + "\n")
    os.chmod(tok, 0o600)
    return tok


def fill_random(path, size, seed):
    """size bytes from a seeded stream (openssl's AES-CTR is fast)."""
    with open(path, "wb") as f:
        p = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pass",
             "pass:%d" % seed, "-pbkdf2", "-in", "/dev/zero"],
            stdout=subprocess.PIPE)
        left = size
        while left > 0:
            chunk = p.stdout.read(min(left, 1 << 22))
            f.write(chunk)
            left -= len(chunk)
        p.kill()
        p.wait()


def big(a, build, work):
    src = os.path.join(work, "src")
    os.makedirs(src)
    data = os.path.join(src, "big.img")
    print("scale: writing %d GiB of pseudo-random data" % a.gib, flush=True)
    fill_random(data, a.gib << 30, 1)
    tok = token(work)
    ex, pb, im = ports(3)
    write(os.path.join(work, "exporter.yaml"), exporter_yaml(
        "big", ex, os.path.join(work, "exporter"), src, pb, tok, links=True))
    write(os.path.join(work, "pullbackup.yaml"), """listen: 127.0.0.1:%d
archive_dir: %s/archive
token_file: %s
sources:
  big:
    exporter: http://127.0.0.1:%d
    importers: [http://127.0.0.1:%d]
""" % (pb, work, tok, ex, im))
    write(os.path.join(work, "importer.yaml"), """listen: 127.0.0.1:%d
state_dir: %s/importer
token_file: %s
sources:
  big:
    pullbackup: http://127.0.0.1:%d
    import_command: [/bin/true]
""" % (im, work, tok, pb))
    log = open(os.path.join(work, "daemons.log"), "a")
    procs = {r: start(build, r, os.path.join(work, r + ".yaml"), log)
             for r in ("exporter", "pullbackup", "importer")}
    now = [os.path.join(build, "exporter", "understudy-exporter"), "-c",
           os.path.join(work, "exporter.yaml"), "now", "--wait", "imported",
           "--timeout", "1h"]
    res = {"gib": a.gib, "cycles": []}
    try:
        for what in ("whole", "delta"):
            if what == "delta":
                with open(data, "r+b") as f:
                    for off in (1 << 30, (a.gib << 30) // 2,
                                (a.gib << 30) - (1 << 20)):
                        f.seek(off)
                        f.write(os.urandom((1 << 20) // 3))
            print("scale: cycle (%s)" % what, flush=True)
            t0 = time.monotonic()
            subprocess.run(now, check=True, stdout=subprocess.DEVNULL)
            res["cycles"].append({
                "what": what, "wall": time.monotonic() - t0,
                "rss": {r: proc_hwm(p.pid) for r, p in procs.items()}})
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(120)
    for c in res["cycles"]:
        print("%d GiB file, %s: %.0f s; peak RSS %s" % (
            a.gib, c["what"], c["wall"], ", ".join(
                "%s %s" % (r, mib(v)) for r, v in c["rss"].items())))
    return res


def hop_rate(cmd, until):
    """Sample cmd's status (its first source's progress) every 0.2 s while
    until() is false: (bytes, seconds) between the first and the last
    sample that saw the job."""
    first = last = None
    while not until():
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True).stdout
        try:
            prog = json.loads(out)["sources"][0].get("progress")
        except (ValueError, KeyError, IndexError):
            prog = None
        if prog:
            sample = (time.monotonic(), prog["bytes_received"])
            first = first or sample
            last = sample
        time.sleep(0.2)
    if first is None or last is None or last[0] <= first[0]:
        return None
    return last[1] - first[1], last[0] - first[0]


def rate(a, build, work):
    bps = rate_parse(a.rate)
    src = os.path.join(work, "src")
    os.makedirs(src)
    size = int(bps * a.seconds)
    print("scale: writing %s of pseudo-random data" % mib(size), flush=True)
    fill_random(os.path.join(src, "data"), size, 1)
    tok = token(work)
    ex, pb, im = ports(3)
    write(os.path.join(work, "exporter.yaml"), exporter_yaml(
        "r", ex, os.path.join(work, "exporter"), src, pb, tok, links=True))
    write(os.path.join(work, "pullbackup.yaml"), """listen: 127.0.0.1:%d
archive_dir: %s/archive
token_file: %s
sources:
  r:
    exporter: http://127.0.0.1:%d
    importers: [http://127.0.0.1:%d]
    bandwidth_limit: %s
""" % (pb, work, tok, ex, im, a.rate))
    write(os.path.join(work, "importer.yaml"), """listen: 127.0.0.1:%d
state_dir: %s/importer
token_file: %s
sources:
  r:
    pullbackup: http://127.0.0.1:%d
    import_command: [/bin/true]
    bandwidth_limit: %s
""" % (im, work, tok, pb, a.rate))
    log = open(os.path.join(work, "daemons.log"), "a")
    procs = {r: start(build, r, os.path.join(work, r + ".yaml"), log)
             for r in ("exporter", "pullbackup", "importer")}

    def cmd(role):
        return [os.path.join(build, role, "understudy-" + role), "-c",
                os.path.join(work, role + ".yaml"), "status", "--json"]

    def state(role, key):
        out = subprocess.run(cmd(role), stdout=subprocess.PIPE,
                             text=True).stdout
        return json.loads(out)["sources"][0].get(key)

    res = {"rate": a.rate, "bytes_per_second": bps, "size": size}
    try:
        now = subprocess.Popen([
            os.path.join(build, "exporter", "understudy-exporter"), "-c",
            os.path.join(work, "exporter.yaml"), "now", "--wait",
            "imported", "--timeout", "1h"], stdout=subprocess.DEVNULL)
        res["pull"] = hop_rate(cmd("pullbackup"),
                               lambda: state("pullbackup", "last_pull"))
        res["import"] = hop_rate(cmd("importer"),
                                 lambda: now.poll() is not None)
        now.wait()
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(120)
    for hop in ("pull", "import"):
        if res[hop] is None:
            print("%s: no progress seen" % hop)
            continue
        got = res[hop][0] / res[hop][1]
        res[hop + "_rate"] = got
        print("%s at %s (%d bytes/s): %.0f bytes/s over %.1f s, %+.1f%%" % (
            hop, a.rate, bps, got, res[hop][1], (got / bps - 1) * 100))
    return res


def rate_parse(text):
    """The config's rate syntax (common/config.c): bytes per second."""
    units = {"bit": 1 / 8.0, "Kbit": 1e3 / 8, "Mbit": 1e6 / 8,
             "Gbit": 1e9 / 8, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9,
             "KiB": 1024.0, "MiB": 1048576.0, "GiB": 1073741824.0}
    t = text[:-2] if text.endswith("/s") else text
    for u in sorted(units, key=len, reverse=True):
        if t.endswith(u):
            return float(t[:-len(u)]) * units[u]
    sys.exit("scale: bad rate %r" % text)


def sources(a, build, work):
    tok = token(work)
    pb_port, *ex_ports = ports(a.sources + 1)
    log = open(os.path.join(work, "daemons.log"), "a")
    procs = []
    pb_conf = ["listen: 127.0.0.1:%d" % pb_port,
               "archive_dir: %s/archive" % work, "token_file: %s" % tok,
               "sources:"]
    print("scale: %d exporters, %d MiB each" % (a.sources, a.mib),
          flush=True)
    try:
        for i, port in enumerate(ex_ports):
            name = "s%03d" % i
            src = os.path.join(work, "src", name)
            os.makedirs(src)
            fill_random(os.path.join(src, "data"), a.mib << 20, i)
            conf = os.path.join(work, name + ".yaml")
            write(conf, exporter_yaml(name, port, os.path.join(
                work, "ex-" + name), src, pb_port, tok, links=True))
            procs.append(start(build, "exporter", conf, log, a.nice))
            pb_conf += ["  %s:" % name,
                        "    exporter: http://127.0.0.1:%d" % port]
        conf = os.path.join(work, "pullbackup.yaml")
        write(conf, "\n".join(pb_conf) + "\n")
        procs.append(start(build, "pullbackup", conf, log))
        status = [os.path.join(build, "pullbackup", "understudy-pullbackup"),
                  "-c", conf, "status", "--json"]
        ex = os.path.join(build, "exporter", "understudy-exporter")
        print("scale: every exporter exports; the pull-backup pulls all",
              flush=True)
        # All at once, while status is asked over and over.
        nows = [subprocess.Popen([ex, "-c", os.path.join(
            work, "s%03d.yaml" % i), "now"], stdout=subprocess.DEVNULL)
            for i in range(a.sources)]
        with open(tok) as f:
            secret = f.read().strip()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/v1/status" % pb_port,
            headers={"Authorization": "Bearer " + secret,
                     "X-Understudy-Protocol": "1"})
        times, http_times, pulling, archived = [], [], [], 0
        t_end = time.monotonic() + 600
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            out = subprocess.run(status, check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            times.append(time.monotonic() - t0)
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
            http_times.append(time.monotonic() - t0)
            st = json.loads(out)
            srcs = st.get("sources", [])
            pulling.append(sum(1 for s in srcs if s.get("pulling")))
            archived = sum(1 for s in srcs if s.get("newest_version"))
            if archived == a.sources:
                break
            time.sleep(0.02)
        for p in nows:
            p.wait()
        mreq = urllib.request.Request(
            "http://127.0.0.1:%d/metrics" % pb_port, headers=req.headers)
        with urllib.request.urlopen(mreq, timeout=30) as r:
            metrics = dict(l.split(" ", 1) for l in r.read().decode()
                           .splitlines() if l and not l.startswith("#"))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    res = {"sources": a.sources, "mib": a.mib, "nice": a.nice, "calls": len(times),
           "median": statistics.median(times), "worst": max(times),
           "http_median": statistics.median(http_times),
           "http_worst": max(http_times),
           "max_pulling": max(pulling), "archived": archived,
           "loop_lag_max": float(metrics["understudy_loop_lag_max_seconds"]),
           "loop_stalls": int(metrics["understudy_loop_stalls_total"])}
    print("%d sources of %d MiB: status answered %d times while pulling "
          "(up to %d pulls at once): the command median %.0f ms, worst "
          "%.0f ms; the request alone median %.0f ms, worst %.0f ms; %d of "
          "%d archived" % (a.sources, a.mib, len(times), max(pulling),
                           res["median"] * 1000, res["worst"] * 1000,
                           res["http_median"] * 1000,
                           res["http_worst"] * 1000, archived, a.sources))
    print("the pull-backup's event loop: late by %.0f ms at most, more than "
          "100 ms late %d times" % (res["loop_lag_max"] * 1000,
                                     res["loop_stalls"]))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("mode", choices=("big", "sources", "rate"))
    ap.add_argument("--rate", default="16Mbit")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--gib", type=int, default=10)
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--dir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = a.dir or tempfile.mkdtemp(prefix="understudy-scale.")
    os.makedirs(work, exist_ok=True)
    try:
        res = {"big": big, "sources": sources, "rate": rate}[a.mode](
            a, build, work)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
