#!/usr/bin/env python3
"""understudy's physical PostgreSQL hooks against pgBackRest, on one
pgbench database, in one go (issue 17's PostgreSQL target).

  pg.py BUILD_DIR [--scale 50] [--seconds 30] [--compress auto|zstd|off]
        [--increments gzip|zstd] [--dir DIR] [--keep]

Run as root (the clusters run as the user postgres).  In DIR (a new
temporary directory by default):

1. A primary cluster (initdb --allow-group-access) with WAL archiving to
   pgBackRest (compress-type zst, process-max 2), pgbench -i -s SCALE, a
   backup role that is not a superuser.
2. Not timed: pgBackRest's stanza and full backup, restored as a standby
   cluster (--type=standby) and started; understudy's three daemons on
   loopback (postgresql-physical-export with keep_last_export,
   postgresql-physical-import into a standby cluster of its own) run a
   first cycle.  Then SECONDS of pgbench, and a cycle of each, still not
   timed (warm).
3. SECONDS of pgbench again, a CHECKPOINT and a sync (each tool's
   pg_backup_start would otherwise flush pgbench's writes for the one
   after it); then, timed, one after the other: understudy's
   chain (export, pull into the archive, push, import: the standby runs
   with the new data); pgBackRest's incremental backup, then the standby
   stopped, `restore --delta --type=standby`, started.
4. Both standbys checked against the primary (pgbench_history's count and
   the accounts' sum), and a table for docs/benchmarks.md.

Nothing here is a test."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import Chain, free_port, run, mib, du  # noqa: E402


def pgbin():
    vers = sorted(os.listdir("/usr/lib/postgresql"), key=int)
    return "/usr/lib/postgresql/%s/bin" % vers[-1]


def as_pg(args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args,
                          check=True, **kw)


class Cluster:
    def __init__(self, work, name, port):
        self.dir = os.path.join(work, name)
        self.port = port
        self.sock = work
        self.log = os.path.join(work, name + ".log")

    def opts(self):
        return "-p %d -k %s" % (self.port, self.sock)

    def start(self):
        as_pg([os.path.join(pgbin(), "pg_ctl"), "-D", self.dir, "-l",
               self.log, "-w", "-t", "600", "-o", self.opts(), "start"],
              stdout=subprocess.DEVNULL)

    def stop(self, mode="fast"):
        subprocess.run(["runuser", "-u", "postgres", "--",
                        os.path.join(pgbin(), "pg_ctl"), "-D", self.dir,
                        "-m", mode, "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sql(self, q, db="bench"):
        return subprocess.run(
            ["psql", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
             "-qAt", "-d", db, "-c", q], stdout=subprocess.PIPE, text=True,
            check=True).stdout.strip()


def pgbench(primary, seconds):
    as_pg(["pgbench", "-h", primary.sock, "-p", str(primary.port), "-n",
           "-c", "2", "-T", str(seconds), "bench"],
          stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--scale", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--dir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--compress", default="auto",
                    help="both sources' compress key (auto: off on loopback)")
    ap.add_argument("--increments", default="gzip",
                    help="the pull-backup's increment_compression")
    a = ap.parse_args()
    if os.getuid() != 0:
        sys.exit("pg.py: run as root (the clusters run as postgres)")
    work = a.dir or tempfile.mkdtemp(prefix="understudy-pgbench.")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    shutil.chown(work, "postgres", "postgres")
    primary = Cluster(work, "primary", free_port())
    pgbr_sb = Cluster(work, "pgbackrest-standby", free_port())
    us_sb = Cluster(work, "understudy-standby", free_port())
    conf = os.path.join(work, "pgbackrest.conf")
    chain = None
    try:
        print("pg: initdb, pgbench -i -s %d" % a.scale, flush=True)
        as_pg([os.path.join(pgbin(), "initdb"), "-D", primary.dir,
               "--auth=trust", "-U", "postgres", "--allow-group-access"],
              stdout=subprocess.DEVNULL)
        with open(conf, "w") as f:
            f.write("""[global]
repo1-path=%(w)s/pgbackrest-repo
compress-type=zst
process-max=2
start-fast=y
log-level-console=warn
log-level-file=off
lock-path=%(w)s/pgbackrest-lock
spool-path=%(w)s/pgbackrest-spool

[bench]
pg1-path=%(p)s
pg1-port=%(port)d
pg1-socket-path=%(w)s
pg1-user=postgres
""" % {"w": work, "p": primary.dir, "port": primary.port})
        shutil.chown(conf, "postgres", "postgres")
        with open(os.path.join(primary.dir, "postgresql.auto.conf"),
                  "a") as f:
            f.write("archive_mode = on\narchive_command = 'pgbackrest "
                    "--config=%s --stanza=bench archive-push %%p'\n" % conf)
        primary.start()
        primary.sql("CREATE DATABASE bench", db="postgres")
        as_pg(["pgbench", "-h", work, "-p", str(primary.port), "-i", "-q",
               "-s", str(a.scale), "bench"], stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL)
        for q in ("CREATE ROLE understudy_backup LOGIN REPLICATION",
                  "GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean)"
                  " TO understudy_backup",
                  "GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO "
                  "understudy_backup"):
            primary.sql(q, db="postgres")
        size = int(primary.sql("SELECT pg_database_size('bench')"))
        print("pg: database %s" % mib(size), flush=True)

        pgbr = ["pgbackrest", "--config=" + conf, "--stanza=bench"]

        def pgbr_incr():
            """An incremental backup, then the standby stopped, restored
            with --delta and started; when the backup ended."""
            as_pg(pgbr + ["--type=incr", "backup"], stdout=subprocess.DEVNULL)
            done = time.time()
            pgbr_sb.stop()
            as_pg(pgbr + ["--type=standby", "--delta",
                          "--pg1-path=" + pgbr_sb.dir, "restore"],
                  stdout=subprocess.DEVNULL)
            pgbr_sb.start()
            return done
        print("pg: pgBackRest stanza, full backup, standby (not timed)",
              flush=True)
        as_pg(pgbr + ["stanza-create"], stdout=subprocess.DEVNULL)
        as_pg(pgbr + ["--type=full", "backup"], stdout=subprocess.DEVNULL)
        as_pg(pgbr + ["--type=standby", "--pg1-path=" + pgbr_sb.dir,
                      "restore"], stdout=subprocess.DEVNULL)
        pgbr_sb.start()

        print("pg: understudy's first cycle (not timed)", flush=True)
        os.environ["FILES_IMPORT"] = os.path.join(
            os.path.abspath(a.build), "importer", "files-import")
        os.environ["FILES_EXPORT"] = os.path.join(
            os.path.abspath(a.build), "exporter", "files-export")
        chain = Chain(os.path.abspath(a.build), work, None)
        hooks = os.path.join(SRC, "conf", "hooks")
        ex, pb = chain.ports["exporter"], chain.ports["pullbackup"]
        chain.write("exporter", """source: db
listen: 127.0.0.1:%d
state_dir: %s/exporter
export_command: [%s/postgresql-physical-export, %s, --host, %s, --port, '%d',
                 --username, understudy_backup, --dbname, postgres]
keep_last_export: true
schedule: "off"
notify: [http://127.0.0.1:%d]
token_file: %s/token
hook_timeout: 1h
""" % (ex, chain.dir, hooks, primary.dir, work, primary.port, pb, chain.dir))
        chain.write("pullbackup", """listen: 127.0.0.1:%d
archive_dir: %s/archive
token_file: %s/token
sources:
  db:
    exporter: http://127.0.0.1:%d
    importers: [http://127.0.0.1:%d]
    compress: %s
    increment_compression: %s
""" % (pb, chain.dir, chain.dir, ex, chain.ports["importer"], a.compress,
            a.increments))
        chain.write("importer", """listen: 127.0.0.1:%d
state_dir: %s/importer
token_file: %s/token
sources:
  db:
    pullbackup: http://127.0.0.1:%d
    import_command: [%s/postgresql-physical-import, %s, '%s']
    hook_timeout: 1h
    compress: %s
""" % (chain.ports["importer"], chain.dir, chain.dir, pb, hooks, us_sb.dir,
            us_sb.opts(), a.compress))
        chain.start()
        chain.cycle()
        print("pg: %d s of pgbench, a warm cycle of each (not timed)"
              % a.seconds, flush=True)
        pgbench(primary, a.seconds)
        chain.cycle()
        pgbr_incr()

        print("pg: %d s of pgbench, then timed" % a.seconds, flush=True)
        pgbench(primary, a.seconds)
        # Both begin with pg_backup_start's checkpoint: the first to run
        # would flush pgbench's writes for the other.  A checkpoint and a
        # sync first, so that neither pays it.
        primary.sql("CHECKPOINT")
        os.sync()
        repo0 = du(os.path.join(work, "pgbackrest-repo"))
        c = chain.cycle()
        t0 = time.time()
        t1 = pgbr_incr()
        t2 = time.time()
        repo1 = du(os.path.join(work, "pgbackrest-repo"))

        # Both standbys have every committed write (the primary is idle).
        q = "SELECT count(*), sum(abalance) FROM pgbench_accounts"
        h = "SELECT count(*) FROM pgbench_history"
        want = (primary.sql(q), primary.sql(h))
        for sb in (us_sb, pgbr_sb):
            for _ in range(100):
                if (sb.sql(q), sb.sql(h)) == want:
                    break
                time.sleep(0.2)
        got_us = (us_sb.sql(q), us_sb.sql(h)) == want
        got_br = (pgbr_sb.sql(q), pgbr_sb.sql(h)) == want
        res = {"scale": a.scale, "seconds": a.seconds, "db_bytes": size,
               "compress": a.compress, "increments": a.increments,
               "chain": c["wall"], "chain_cpu": c["cpu"],
               "wire": c["wire"], "incr_backup": t1 - t0,
               "restore_delta": t2 - t1, "repo_growth": repo1 - repo0,
               "standby_equal": {"understudy": got_us, "pgbackrest": got_br}}
        print(json.dumps(res, indent=1))
        ratio = c["wall"] / (t2 - t0)
        print("""
| what | wall | notes |
| --- | ---: | --- |
| understudy: chain (export, pull, archive, push, import, standby started) | %.1f s | %s pull + %s push |
| pgBackRest: incremental backup | %.1f s | repository +%s |
| pgBackRest: standby stopped, restore --delta, started | %.1f s | |
| ratio chain / (backup + restore) | %.2f | target <= 1 |

Standbys equal to the primary: understudy %s, pgBackRest %s; database %s,
pgbench -s %d, %d s of pgbench -c 2 before the timed cycle; compress: %s,
increment_compression: %s.""" % (
            c["wall"], mib(c["wire"]["pull"]), mib(c["wire"]["push"]),
            t1 - t0, mib(repo1 - repo0), t2 - t1, ratio, got_us, got_br,
            mib(size), a.scale, a.seconds, a.compress, a.increments))
    finally:
        if chain is not None:
            chain.stop()
        for cl in (us_sb, pgbr_sb, primary):
            cl.stop("immediate")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("pg: kept %s" % work)


if __name__ == "__main__":
    main()
