#!/usr/bin/env python3
"""The benchmark's workload: a SQL-like dump and many small files, and a
scattered change of a given share of both.

  workload.py gen DIR [--dump-mib 256] [--files 20000] [--seed 1]
  workload.py mutate DIR [--percent 1] [--seed 2]

gen writes DIR/dump.sql (INSERT lines of about 100 bytes, like pg_dump's
--inserts output) and DIR/files/NN/fNNNNN.txt (text of 1 to 34 KiB, 17.5
KiB on average).  mutate rewrites PERCENT % of the dump's lines, chosen at
random all over the file, and changes a line in PERCENT % of the files;
every file it touches is written beside and renamed, as a database or an
editor would.  The same seed gives the same bytes."""

import argparse
import os
import random

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet "
         "kilo lima mike november oscar papa quebec romeo sierra tango "
         "uniform victor whiskey xray yankee zulu order invoice customer "
         "shipped pending paid refund warehouse berlin paris lisbon "
         "tokyo lagos lima quito").split()
CITIES = ("berlin", "paris", "lisbon", "tokyo", "lagos", "quito", "oslo",
          "cairo", "dakar", "hanoi")


def dump_line(rng, row):
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
    return ("INSERT INTO orders VALUES (%d, %d, '%s', '%s', %d.%02d, "
            "'2026-%02d-%02d');\n" % (
                row, rng.randint(1, 999999), rng.choice(CITIES), words,
                rng.randint(1, 9999), rng.randint(0, 99),
                rng.randint(1, 12), rng.randint(1, 28)))


def text_line(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) \
        + "\n"


def file_path(root, i):
    return os.path.join(root, "files", "%02d" % (i % 100), "f%05d.txt" % i)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def gen(args):
    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    limit = args.dump_mib << 20
    size = 0
    row = 0
    with open(os.path.join(args.dir, "dump.sql"), "w") as f:
        f.write("-- a SQL dump for understudy's benchmark\n"
                "CREATE TABLE orders (id bigint, customer int, city text, "
                "note text, amount numeric, day date);\n")
        buf = []
        while size < limit:
            row += 1
            line = dump_line(rng, row)
            size += len(line)
            buf.append(line)
            if len(buf) == 10000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    for d in range(100):
        os.makedirs(os.path.join(args.dir, "files", "%02d" % d),
                    exist_ok=True)
    for i in range(args.files):
        target = rng.randint(1024, 34 * 1024)
        lines = []
        n = 0
        while n < target:
            lines.append(text_line(rng))
            n += len(lines[-1])
        with open(file_path(args.dir, i), "w") as f:
            f.write("".join(lines))
    print("workload: %d dump lines (%d bytes), %d files" %
          (row, size, args.files))


def mutate(args):
    rng = random.Random(args.seed)
    share = args.percent / 100.0
    path = os.path.join(args.dir, "dump.sql")
    changed = 0
    with open(path) as src, open(path + ".tmp", "w") as dst:
        buf = []
        for line in src:
            if line.startswith("INSERT") and rng.random() < share:
                row = int(line[27:line.index(",", 27)])
                line = dump_line(rng, row)
                changed += 1
            buf.append(line)
            if len(buf) == 10000:
                dst.write("".join(buf))
                buf = []
        dst.write("".join(buf))
    os.replace(path + ".tmp", path)
    nfiles = 0
    for d in range(100):
        for name in sorted(os.listdir(os.path.join(args.dir, "files",
                                                   "%02d" % d))):
            if rng.random() >= share:
                continue
            p = os.path.join(args.dir, "files", "%02d" % d, name)
            with open(p) as f:
                lines = f.readlines()
            lines[rng.randrange(len(lines))] = text_line(rng)
            write_atomic(p, "".join(lines))
            nfiles += 1
    print("mutate: %d dump lines and %d files changed" % (changed, nfiles))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--dump-mib", type=int, default=256)
    g.add_argument("--files", type=int, default=20000)
    g.add_argument("--seed", type=int, default=1)
    m = sub.add_parser("mutate")
    m.add_argument("dir")
    m.add_argument("--percent", type=float, default=1.0)
    m.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    gen(args) if args.cmd == "gen" else mutate(args)


if __name__ == "__main__":
    main()
