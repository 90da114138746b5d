#!/usr/bin/env python3
"""The benchmark's workloads, and a scattered change of a given share of
each.

  workload.py gen DIR [--kind text] [--dump-mib 256] [--files 20000]
                      [--seed 1]
  workload.py mutate DIR [--kind text] [--percent 1] [--seed 2]

Kinds:
  text     DIR/dump.sql (INSERT lines of about 100 bytes, like pg_dump's
           --inserts output) and DIR/files/NN/fNNNNN.txt (text of 1 to 34
           KiB, 17.5 KiB on average).  The change rewrites PERCENT % of the
           dump's lines, chosen at random all over the file, and changes a
           line in PERCENT % of the files; every file it touches is written
           beside and renamed, as a database or an editor would.
  binary   the same dump, and binary files (DIR/files/NN/fNNNNN.bin, 1 to
           34 KiB of bytes that do not compress).  The change rewrites the
           dump as above and edits PERCENT % of the files in place: 1 to 4
           KiB overwritten at a random offset, the size kept (a database's
           pages, a VM image, a mail store).
  dump     the dump alone, rewritten as above: one large file.
  renames  the text files, and a 100 MiB binary file DIR/blob.bin.  The
           change moves things and changes none: one directory of files
           renamed, PERCENT % of the files moved to another directory, and
           blob.bin renamed (what a reorganisation, or a file store's
           users, do).

The same seed gives the same bytes."""

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


def file_path(root, i, ext=".txt"):
    return os.path.join(root, "files", "%02d" % (i % 100),
                        "f%05d%s" % (i, ext))


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


KINDS = ("text", "binary", "dump", "renames")


def gen_dump(args, rng):
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
    return "%d dump lines (%d bytes)" % (row, size)


def gen_files(args, rng, binary):
    for d in range(100):
        os.makedirs(os.path.join(args.dir, "files", "%02d" % d),
                    exist_ok=True)
    for i in range(args.files):
        target = rng.randint(1024, 34 * 1024)
        if binary:
            with open(file_path(args.dir, i, ".bin"), "wb") as f:
                f.write(rng.randbytes(target))
            continue
        lines = []
        n = 0
        while n < target:
            lines.append(text_line(rng))
            n += len(lines[-1])
        with open(file_path(args.dir, i), "w") as f:
            f.write("".join(lines))
    return "%d %s files" % (args.files, "binary" if binary else "text")


def gen(args):
    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    what = []
    if args.kind in ("text", "binary", "dump"):
        what.append(gen_dump(args, rng))
    if args.kind != "dump":
        what.append(gen_files(args, rng, args.kind == "binary"))
    if args.kind == "renames":
        with open(os.path.join(args.dir, "blob.bin"), "wb") as f:
            for _ in range(100):
                f.write(rng.randbytes(1 << 20))
        what.append("a 100 MiB file")
    print("workload %s: %s" % (args.kind, ", ".join(what)))


def mutate_dump(args, rng, share):
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
    return "%d dump lines" % changed


def file_dirs(args):
    top = os.path.join(args.dir, "files")
    return [os.path.join(top, d) for d in sorted(os.listdir(top))]


def mutate_files(args, rng, share):
    nfiles = 0
    for d in file_dirs(args):
        for name in sorted(os.listdir(d)):
            if rng.random() >= share:
                continue
            p = os.path.join(d, name)
            if name.endswith(".bin"):
                # In place: the file is not replaced.
                size = os.path.getsize(p)
                n = min(size, rng.randint(1024, 4096))
                with open(p, "r+b") as f:
                    f.seek(rng.randrange(size - n + 1))
                    f.write(rng.randbytes(n))
            else:
                with open(p) as f:
                    lines = f.readlines()
                lines[rng.randrange(len(lines))] = text_line(rng)
                write_atomic(p, "".join(lines))
            nfiles += 1
    return "%d files %s" % (nfiles, "edited in place" if args.kind ==
                            "binary" else "changed")


def mutate_moves(args, rng, share):
    dirs = file_dirs(args)
    moved = 0
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if rng.random() >= share:
                continue
            to = rng.choice([x for x in dirs if x != d])
            os.rename(os.path.join(d, name), os.path.join(to, name))
            moved += 1
    d = rng.choice(dirs)
    n = len(os.listdir(d))
    os.rename(d, d + "-renamed-%d" % args.seed)
    blob = [x for x in os.listdir(args.dir) if x.startswith("blob")][0]
    os.rename(os.path.join(args.dir, blob),
              os.path.join(args.dir, "blob-%d.bin" % args.seed))
    return "%d files moved, a directory of %d files renamed, the 100 MiB " \
        "file renamed" % (moved, n)


def mutate(args):
    rng = random.Random(args.seed)
    share = args.percent / 100.0
    what = []
    if args.kind in ("text", "binary", "dump"):
        what.append(mutate_dump(args, rng, share))
    if args.kind in ("text", "binary"):
        what.append(mutate_files(args, rng, share))
    if args.kind == "renames":
        what.append(mutate_moves(args, rng, share))
    print("mutate: " + ", ".join(what))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--kind", choices=KINDS, default="text")
    g.add_argument("--dump-mib", type=int, default=256)
    g.add_argument("--files", type=int, default=20000)
    g.add_argument("--seed", type=int, default=1)
    m = sub.add_parser("mutate")
    m.add_argument("dir")
    m.add_argument("--kind", choices=KINDS, default="text")
    m.add_argument("--percent", type=float, default=1.0)
    m.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    gen(args) if args.cmd == "gen" else mutate(args)


if __name__ == "__main__":
    main()
