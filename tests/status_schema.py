#!/usr/bin/env python3
"""Check `status --json` documents against the tables of docs/status.md.

  status_schema.py DOCS/status.md ROLE < status.json

Every field in the document must be in the tables with the type they give;
every field they do not mark optional must be there.  One line per
problem, exit 1 if any."""

import json
import re
import sys

SECTIONS = {"Every role": None, "Exporter": "exporter",
            "Pull-backup": "pullbackup", "Importer": "importer"}
RUNS = ("running", "last_run", "last_success")


def load_tables(path, role):
    fields = {}
    section = None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^## (.*)", line)
        if m:
            section = m.group(1).strip()
            continue
        m = re.match(r"^\| `([^`]+)` \| ([^|]+) \|", line)
        if not m or section not in SECTIONS:
            continue
        if SECTIONS[section] not in (None, role):
            continue
        path_, kind = m.group(1), m.group(2).strip()
        optional = kind.endswith(", optional")
        kind = kind.replace(", optional", "")
        types = set(kind.split(" or "))
        paths = [path_.replace("*.", r + ".", 1) for r in RUNS] \
            if path_.startswith("*.") else [path_]
        for p in paths:
            # A run's fields are optional where the run itself is.
            fields[p] = (types, optional)
    return fields


def kind_of(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def check(doc, fields):
    problems = []

    def walk(obj, prefix):
        for k, v in obj.items():
            p = prefix + k
            visit(p, v)
        # Children the tables require of this object.
        for p, (types, optional) in fields.items():
            if optional or not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "." in rest or "[]" in rest:
                continue
            if rest not in obj:
                problems.append("%s: missing (docs/status.md says it is "
                                "always there)" % p)

    def visit(p, v):
        if p not in fields:
            problems.append("%s: not in docs/status.md" % p)
            return
        types = fields[p][0]
        if kind_of(v) not in types:
            problems.append("%s: is %s, docs/status.md says %s" %
                            (p, kind_of(v), " or ".join(sorted(types))))
        if isinstance(v, dict):
            walk(v, p + ".")
        elif isinstance(v, list):
            for e in v:
                visit(p + "[]", e)

    walk(doc, "")
    return problems


def main():
    fields = load_tables(sys.argv[1], sys.argv[2])
    doc = json.load(sys.stdin)
    problems = check(doc, fields)
    for p in problems:
        print("%s status: %s" % (sys.argv[2], p), file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
