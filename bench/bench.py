#!/usr/bin/env python3
"""understudy against rdiff-backup, restic and rsync, on the same data, in
one go, for each workload.

  bench.py BUILD_DIR [--workload text,binary,dump,renames] [--dir DIR]
           [--dump-mib 256] [--files 20000] [--percent 1] [--keep]
           [--json FILE]

For each workload (workload.py's kinds; all four by default), in DIR/KIND:

1. Makes the workload (workload.py gen) in DIR/KIND/src.
2. Sets up the first version everywhere (not timed): understudy's three
   daemons on free loopback ports (export hook: the built files-export,
   with keep_last_export, so that it copies what changed and links the
   rest; import hook: files-import into a standby directory) run a first
   cycle; rdiff-backup backs up into DIR/KIND/rdiff, restic into
   DIR/KIND/restic.  Then a first change of PERCENT %, and a cycle of each
   (not timed either): understudy picks each file's delta block size from
   what the previous cycle saw, as it does in service.  A copy for rsync
   goes to DIR/KIND/rsync.
3. Changes the workload again (mutate, another seed), and waits for the
   pull-backup to finish the signatures it makes ahead after a pull
   (Chain.settle).
4. Times, one after the other, each after a sync (quiesce(): no step
   pays for the writes of the ones before): understudy's incremental chain
   (`now --wait imported`: export, pull into the archive, push, import
   into a standby directory); rdiff-backup's incremental backup, then its
   restore of the newest version into a standby directory (the SlapOS
   chain); restic's backup, then its restore of the newest snapshot into
   a standby directory; one rsync hop (--no-whole-file: the delta
   algorithm) onto the version before; the restore of the previous
   version by understudy-pullbackup and by rdiff-backup.
5. Prints a table for each workload: wall time, CPU time, bytes on the
   wire, peak RSS of each daemon, and the ratios the targets are stated
   in; then one line per workload.

Nothing here is a test: the numbers go to docs/benchmarks.md."""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def exporter_yaml(source, port, state_dir, src, pb_port, tok, links=False,
                  build=None):
    """An exporter's config: files-export (built in build) of src, keeping
    the last export for it to link to (or, links, hard links of src:
    scale.py), notifying one pull-backup, exports only when told."""
    hook = os.path.join(HERE, "export-hardlinks") if links else \
        os.path.join(build, "exporter", "files-export")
    return """source: %s
listen: 127.0.0.1:%d
state_dir: %s
export_command: [%s, %s]
keep_last_export: %s
schedule: "off"
notify: [http://127.0.0.1:%d]
token_file: %s
""" % (source, port, state_dir, hook, src, "false" if links else "true",
       pb_port, tok)


def quiesce():
    """Before each timed step: what the steps before it wrote (the
    workload's mutation, the untimed copies and backups) goes to disk
    first.  understudy's daemons make what they write durable with
    syncfs(), which writes everything dirty on the filesystem; without
    this, the first of them to sync paid for the setup's writes (a
    600 MiB `cp -a` among them), and rdiff-backup, restic and rsync,
    which never sync, for nothing."""
    os.sync()


def run(cmd, **kw):
    """Run cmd; return (wall seconds, CPU seconds of it and its children,
    stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=dict(os.environ, RESTIC_PASSWORD="b"),
                       **kw)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                p.stderr.strip()[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + \
        (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def peak_rss_children():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def proc_cpu(pid):
    """CPU seconds of a running process and of its waited-for children
    (the hooks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def proc_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Chain:
    """understudy's three daemons on loopback, as the tests set them up."""

    def __init__(self, build, work, src):
        self.build = build
        self.dir = os.path.join(work, "chain")
        os.makedirs(self.dir)
        self.ports = {}
        for role in ("exporter", "pullbackup", "importer"):
            p = free_port()
            while p in self.ports.values():
                p = free_port()
            self.ports[role] = p
        self.token = os.urandom(32).hex()
        tok = os.path.join(self.dir, "token")
        with open(tok, "w") as f:
            f.write(self.token + "\n")
        os.chmod(tok, 0o600)
        ex, pb, im = (self.ports[r] for r in
                      ("exporter", "pullbackup", "importer"))
        self.standby = os.path.join(work, "understudy-standby")
        self.write("exporter", exporter_yaml(
            "db", ex, os.path.join(self.dir, "exporter"), src, pb, tok,
            build=build))
        self.write("pullbackup", """listen: 127.0.0.1:%d
archive_dir: %s/archive
token_file: %s
sources:
  db:
    exporter: http://127.0.0.1:%d
    importers: [http://127.0.0.1:%d]
""" % (pb, self.dir, tok, ex, im))
        self.write("importer", """listen: 127.0.0.1:%d
state_dir: %s/importer
token_file: %s
sources:
  db:
    pullbackup: http://127.0.0.1:%d
    import_command: [%s, %s]
""" % (im, self.dir, tok, pb, os.path.join(self.build, "importer", "files-import"),
       self.standby))
        self.procs = {}

    def write(self, role, text):
        with open(os.path.join(self.dir, role + ".yaml"), "w") as f:
            f.write(text)

    def prog(self, role):
        return os.path.join(self.build, role, "understudy-" + role)

    def cmd(self, role, *args):
        return [self.prog(role), "-c", os.path.join(self.dir, role + ".yaml")
                ] + list(args)

    def start(self):
        for role in ("exporter", "pullbackup", "importer"):
            log = open(os.path.join(self.dir, role + ".log"), "a")
            self.procs[role] = subprocess.Popen(self.cmd(role, "serve"),
                                                stderr=log, stdout=log)
            for _ in range(100):
                if subprocess.run(self.cmd(role, "status"),
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                sys.exit("bench: the %s did not start" % role)

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(60)

    def metric(self, role, name):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/metrics" % self.ports[role],
            headers={"Authorization": "Bearer " + self.token})
        total = 0
        with urllib.request.urlopen(req, timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or \
                        line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def wire(self):
        """Bytes on the wire of each hop: what the server sent (files and
        deltas) and the signatures it was sent."""
        return {hop: self.metric(role, "understudy_served_bytes_total") +
                self.metric(role, "understudy_served_signature_bytes_total")
                for hop, role in (("pull", "exporter"),
                                  ("push", "pullbackup"))}

    def cpu(self):
        return sum(proc_cpu(p.pid) for p in self.procs.values())

    def hwm(self):
        return {r: proc_hwm(p.pid) for r, p in self.procs.items()}

    def settle(self, timeout=300):
        """Wait for the pull-backup's background work after a cycle: the
        signatures it makes ahead for the next pull (docs/protocol.md),
        at nice 19, which the untimed rdiff-backup run and the mutation
        right after the warm-up cycle starve.  In service, cycles are
        minutes apart."""
        sigs = os.path.join(self.dir, "archive", "db", "signatures")
        end = time.time() + timeout
        while time.time() < end:
            if not os.path.isdir(sigs) or not any(
                    n.endswith(".src") for n in os.listdir(sigs)):
                return
            time.sleep(0.1)
        sys.exit("bench: the pull-backup's signatures made ahead did "
                 "not finish in %d s" % timeout)

    def cycle(self):
        w0, c0 = self.wire(), self.cpu()
        wall, cli_cpu, out = run(self.cmd("exporter", "now", "--wait",
                                          "imported", "--json"))
        w1, c1 = self.wire(), self.cpu()
        return {"wall": wall, "cpu": c1 - c0 + cli_cpu,
                "wire": {k: w1[k] - w0[k] for k in w0},
                "run": json.loads(out)}


def rsync_stats(out):
    stats = {}
    for line in out.splitlines():
        for key, name in (("Literal data:", "literal"),
                          ("Total bytes sent:", "sent"),
                          ("Total bytes received:", "received")):
            if line.startswith(key):
                stats[name] = int(line.split(":")[1].split()[0]
                                  .replace(",", ""))
    return stats


def du(path):
    out = subprocess.run(["du", "-sb", path], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    return int(out.split()[0])


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def restic(repo, *args, **kw):
    return ["restic", "-r", repo, "--quiet"] + list(args)


def one_workload(a, kind, work):
    """The whole run for one workload, in work; its results."""
    src = os.path.join(work, "src")
    wl = [sys.executable, os.path.join(HERE, "workload.py")]
    res = {"kind": kind,
           "workload": {"dump_mib": a.dump_mib, "files": a.files,
                        "percent": a.percent}}
    chain = Chain(os.path.abspath(a.build), work, src)
    rdiff = os.path.join(work, "rdiff")
    rrepo = os.path.join(work, "restic")
    try:
        print("bench %s: making the workload in %s" % (kind, src),
              flush=True)
        _, _, out = run(wl + ["gen", src, "--kind", kind, "--dump-mib",
                              str(a.dump_mib), "--files", str(a.files)])
        res["workload"]["made"] = out.strip()
        res["workload"]["bytes"] = du(src)
        print("bench %s: first version everywhere (not timed)" % kind,
              flush=True)
        chain.start()
        res["first_cycle"] = chain.cycle()
        run(["rdiff-backup", "backup", src, rdiff])
        run(restic(rrepo, "init"))
        run(restic(rrepo, "backup", "."), cwd=src)
        # A first change, so that understudy's delta block sizes come
        # from what a cycle saw, as they do in service (not timed).
        print("bench %s: a first change, not timed" % kind, flush=True)
        run(wl + ["mutate", src, "--kind", kind, "--percent",
                  str(a.percent), "--seed", "2"])
        res["warmup_cycle"] = chain.cycle()
        run(["rdiff-backup", "backup", src, rdiff])
        run(restic(rrepo, "backup", "."), cwd=src)
        run(["cp", "-a", src, os.path.join(work, "rsync")])
        print("bench %s: changing it" % kind, flush=True)
        _, _, out = run(wl + ["mutate", src, "--kind", kind, "--percent",
                              str(a.percent), "--seed", "3"])
        res["workload"]["change"] = out.strip()

        print("bench %s: understudy's incremental chain" % kind, flush=True)
        chain.settle()
        quiesce()
        res["understudy"] = chain.cycle()
        res["understudy"]["rss"] = chain.hwm()

        print("bench %s: rdiff-backup backup, then restore" % kind,
              flush=True)
        quiesce()
        w, c, _ = run(["rdiff-backup", "backup", src, rdiff])
        rss_before = peak_rss_children()
        res["rdiff_backup"] = {"wall": w, "cpu": c}
        quiesce()
        w, c, _ = run(["rdiff-backup", "restore", "--at", "now", rdiff,
                       os.path.join(work, "rdiff-standby")])
        res["rdiff_restore"] = {"wall": w, "cpu": c}
        res["rdiff_peak_rss"] = max(rss_before, peak_rss_children())

        print("bench %s: restic backup, then restore" % kind, flush=True)
        quiesce()
        w, c, _ = run(restic(rrepo, "backup", "."), cwd=src)
        res["restic_backup"] = {"wall": w, "cpu": c}
        quiesce()
        w, c, _ = run(restic(rrepo, "restore", "latest", "--target",
                             os.path.join(work, "restic-standby")))
        res["restic_restore"] = {"wall": w, "cpu": c}

        print("bench %s: one rsync hop" % kind, flush=True)
        quiesce()
        w, c, out = run(["rsync", "-a", "--no-whole-file", "--delete",
                         "--stats", src + "/",
                         os.path.join(work, "rsync") + "/"])
        res["rsync"] = {"wall": w, "cpu": c, **rsync_stats(out)}

        print("bench %s: restore of the previous version" % kind,
              flush=True)
        quiesce()
        w, c, _ = run(chain.cmd("pullbackup", "restore", "db", "--at", "1B",
                                os.path.join(work, "understudy-previous")))
        res["understudy_restore_previous"] = {"wall": w, "cpu": c}
        quiesce()
        w, c, _ = run(["rdiff-backup", "restore",
                       "--at", "1B", rdiff,
                       os.path.join(work, "rdiff-previous")])
        res["rdiff_restore_previous"] = {"wall": w, "cpu": c}
        same = subprocess.run(["diff", "-r", "-q",
                               os.path.join(work, "understudy-previous"),
                               os.path.join(work, "rdiff-previous")],
                              stdout=subprocess.PIPE, text=True)
        res["previous_versions_equal"] = same.returncode == 0
        for name, d in (("understudy", chain.standby),
                        ("rdiff", os.path.join(work, "rdiff-standby")),
                        ("restic", os.path.join(work, "restic-standby"))):
            same = subprocess.run(["diff", "-r", "-q", "--no-dereference",
                                   src, d], stdout=subprocess.PIPE,
                                  text=True)
            res.setdefault("standby_equal", {})[name] = \
                same.returncode == 0
        res["archive_bytes"] = du(os.path.join(chain.dir, "archive"))
        res["rdiff_repo_bytes"] = du(rdiff)
        res["restic_repo_bytes"] = du(rrepo)
    finally:
        chain.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--workload", default="text,binary,dump,renames")
    ap.add_argument("--dir")
    ap.add_argument("--dump-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    kinds = a.workload.split(",")
    for k in kinds:
        if k not in ("text", "binary", "dump", "renames"):
            sys.exit("bench: no workload %r (text, binary, dump, renames)"
                     % k)
    for tool in ("rdiff-backup", "rsync", "restic"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is not installed" % tool)
    work = a.dir or tempfile.mkdtemp(prefix="understudy-bench.")
    os.makedirs(work, exist_ok=True)
    res = {"machine": {"cpus": os.cpu_count(),
                       "kernel": os.uname().release},
           "workloads": []}
    try:
        for k in kinds:
            d = os.path.join(work, k)
            os.makedirs(d)
            r = one_workload(a, k, d)
            report(r)
            res["workloads"].append(r)
            if not a.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    summary(res["workloads"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


def report(r):
    u = r["understudy"]
    rb, rr, rs = r["rdiff_backup"], r["rdiff_restore"], r["rsync"]
    tb, tr = r["restic_backup"], r["restic_restore"]
    up, rp = r["understudy_restore_previous"], r["rdiff_restore_previous"]
    wire = u["wire"]["pull"]
    rows = [
        ("understudy: incremental chain (export, pull, archive, push, "
         "import)", u["wall"], u["cpu"],
         "%s pull + %s push" % (mib(u["wire"]["pull"]),
                                mib(u["wire"]["push"]))),
        ("rdiff-backup: incremental backup", rb["wall"], rb["cpu"], "-"),
        ("rdiff-backup: restore to the standby", rr["wall"], rr["cpu"], "-"),
        ("restic: backup", tb["wall"], tb["cpu"], "-"),
        ("restic: restore to the standby", tr["wall"], tr["cpu"], "-"),
        ("rsync --no-whole-file: one hop, no history", rs["wall"],
         rs["cpu"], "%s literal, %s sent+received" % (
             mib(rs["literal"]), mib(rs["sent"] + rs["received"]))),
        ("understudy: restore of the previous version", up["wall"],
         up["cpu"], "-"),
        ("rdiff-backup: restore of the previous version", rp["wall"],
         rp["cpu"], "-"),
    ]
    print()
    print("### Workload %s" % r["kind"])
    print()
    print("%s: %s; %s" % (mib(r["workload"]["bytes"]),
                          r["workload"]["made"], r["workload"]["change"]))
    print()
    print("| what | wall | CPU | bytes on the wire |")
    print("| --- | ---: | ---: | --- |")
    for what, wall, cpu, b in rows:
        print("| %s | %.1f s | %.1f s | %s |" % (what, wall, cpu, b))
    print()
    print("Peak RSS: " + ", ".join("%s %s" % (k, mib(v)) for k, v in
                                   u["rss"].items()) +
          "; rdiff-backup %s" % mib(r["rdiff_peak_rss"]))
    print("Archive: understudy %s, rdiff-backup %s, restic %s; previous "
          "versions restored equal: %s; standbys equal to the source: %s"
          % (mib(r["archive_bytes"]), mib(r["rdiff_repo_bytes"]),
             mib(r["restic_repo_bytes"]), r["previous_versions_equal"],
             ", ".join("%s %s" % kv for kv in r["standby_equal"].items())))
    print()
    ratios = [
        ("chain / (rdiff-backup backup + restore)",
         u["wall"] / (rb["wall"] + rr["wall"]), 0.2),
        ("chain / (restic backup + restore)",
         u["wall"] / (tb["wall"] + tr["wall"]), 0.5),
        ("chain / one rsync hop", u["wall"] / rs["wall"], 1.5),
        ("pull hop bytes / rsync literal data", wire / max(rs["literal"], 1),
         0.25),
        ("restore previous: understudy / rdiff-backup",
         up["wall"] / rp["wall"], 0.3),
        ("peak RSS of the largest daemon, MiB",
         max(u["rss"].values()) / 1048576.0, 64),
    ]
    if r["kind"] == "renames":
        ratios.append(("pull hop bytes / the 100 MiB file renamed",
                       wire / float(100 << 20), 0.01))
    print("| ratio | measured | target | met |")
    print("| --- | ---: | ---: | --- |")
    for what, val, target in ratios:
        print("| %s | %.2f | <= %g | %s |" % (what, val, target,
                                              "yes" if val <= target
                                              else "no"))
    r["ratios"] = {w: v for w, v, _ in ratios}


def summary(rs):
    """One line per workload: the times the targets compare."""
    print()
    print("| workload | understudy chain | SlapOS chain (rdiff-backup "
          "backup + restore) | restic backup + restore | one rsync hop |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rs:
        u = r["understudy"]["wall"]
        slap = r["rdiff_backup"]["wall"] + r["rdiff_restore"]["wall"]
        rest = r["restic_backup"]["wall"] + r["restic_restore"]["wall"]
        hop = r["rsync"]["wall"]
        print("| %s | %.1f s | %.1f s (chain %.2f x) | %.1f s (chain "
              "%.2f x) | %.1f s (chain %.2f x) |" % (
                  r["kind"], u, slap, u / slap, rest, u / rest, hop,
                  u / hop))


if __name__ == "__main__":
    main()
