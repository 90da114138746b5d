#!/bin/bash
# What makes a cycle cheap, checked on a real chain: the exporter hashes
# only what changed (hash cache); the pull-backup keeps the deltas it pulls,
# relays them to the importer (no signature, no delta computed) and derives
# the archive's reverse deltas from them, which restore the old version
# exactly; the importer links unchanged files from its last good copy,
# after hashing them, and a copy damaged in place is found and fetched.
source "$SRC/tests/it_lib.sh"

S=$T/src
mkdir -p "$S/d"
# A dump-like file of 4 MB and a few small files.
python3 - "$S/dump.sql" <<'EOP'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(40000):
        f.write("INSERT INTO t VALUES (%d, 'row %d of the table', %d);\n" % (i, i, i * 7 % 1000))
EOP
for i in 1 2 3; do echo "small $i" > "$S/d/f$i"; done
# Written an hour ago: a file written in the second before a scan is not
# cached (below).
find "$S" -exec touch -h -d '-1 hour' {} +
# Export: hard links of the tree, as a snapshot tool would give.
cat > "$T/export-links" <<'EOH'
#!/bin/sh
set -e
cp -al "$1/." "$UNDERSTUDY_BACKUP_DIR/"
EOH
chmod +x "$T/export-links"
make_copy_hooks
chain_setup "$T/c" "[$T/export-links, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1

check "cycle 1" exporter now --wait imported
check "the exporter hashed every file the first time" \
	grep -q "4 files, .* bytes (4 hashed" "$T/c/exporter.log"
cp -a "$S" "$T/v1"

# Change one line in a hundred (by a new file, renamed in, as a dump does)
# and one small file.
python3 - "$S/dump.sql" <<'EOP'
import os, sys
p = sys.argv[1]
lines = open(p).read().split("\n")
for i in range(0, len(lines) - 1, 100):
    lines[i] = lines[i].replace("row", "ROW changed")
open(p + ".new", "w").write("\n".join(lines))
os.rename(p + ".new", p)
EOP
echo "small 2, changed" > "$S/d/f2.new" && mv "$S/d/f2.new" "$S/d/f2"
touch -d '-1 hour' "$S/dump.sql" "$S/d/f2"
ino_before=$(stat -c %i "$T/c/importer/sources/db/current/data/d/f1")
check "cycle 2" exporter now --wait imported
check "the exporter hashed only the two changed files" \
	grep -q "4 files, .* bytes (2 hashed" "$T/c/exporter.log"
check "the standby has version 2" same_tree "$S" "$T/standby"
check "the importer patched both with the deltas the pull-backup kept" \
	grep -q "2 by delta, 0 whole, 0 resumed; 2 deltas relayed as stored" "$T/c/importer.log"
curl -s -H "Authorization: Bearer $(cat "$T/c/token")" \
	"http://127.0.0.1:$PB_PORT/metrics" > "$T/metrics"
check "the pull-backup counts them" grep -q "^understudy_served_stored_deltas_total 2$" "$T/metrics"
check "and was sent no signature" grep -q "^understudy_served_signature_bytes_total 0$" "$T/metrics"
check "the pull-backup keeps the deltas of its last pull" \
	[ "$(ls "$T/c/archive/db/deltas" | grep -c '\.delta$')" = 2 ]
check "the archive's increments came from them, not from librsync anew" \
	bash -c "! grep -q 'computing it anew' '$T/c/pullbackup.log'"
check "the unchanged file is a link to the last good copy, not a copy" \
	[ "$(stat -c %i "$T/c/importer/sources/db/current/data/d/f1")" = "$ino_before" ]
pullbackup restore db --at 1B "$T/restored" > /dev/null
check "the reverse deltas restore version 1 exactly" same_tree "$T/v1" "$T/restored"
check "archive verify finds nothing wrong" pullbackup verify db

# A file written less than a second before the scan could be written again
# within the same clock tick, size kept: it is not cached, so hashed each
# time (here its mtime is ahead of the clock).
touch -d '+1 hour' "$S/d/f1"
check "cycle with d/f1 just written" exporter now --wait imported
check "cycle again, nothing written" exporter now --wait imported
check "d/f1 was hashed both times, nothing else" \
	[ "$(grep -c "4 files, .* bytes (1 hashed" "$T/c/exporter.log")" = 2 ]

# A stored delta that does not fit, and a last good copy damaged in place
# (same size and mtime): the importer finds both and still gets it right.
kill "$PID_importer" && wait "$PID_importer" 2>/dev/null
# d/f1, the first file, is checked by the sync itself; dump.sql, the
# last, by the thread that checks from the end.
for f in d/f1 dump.sql; do
python3 - "$T/c/importer/sources/db/current/data/$f" <<'EOP'
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.write(b"X")
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
EOP
done
echo "small 3, changed" > "$S/d/f3.new" && mv "$S/d/f3.new" "$S/d/f3"
check "cycle 3, archived while the importer is down" exporter now --wait archived
for f in "$T/c/archive/db/deltas/"*.delta; do printf 'garbage' > "$f"; done
v3=$(pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["newest_version"])')
chain_start_one "$IMPORTER" importer
for i in $(seq 1 300); do
	[ "$(standby_version)" = "$v3" ] && break
	sleep 0.2
done
check "the importer imported version 3 once back" [ "$(standby_version)" = "$v3" ]
check "the standby is right" same_tree "$S" "$T/standby"
check "the damaged copy was found and fetched again" \
	contains "$T/c/importer.log" "the local copy of d/f1 is damaged"
check "and the damaged dump, by the other thread" \
	contains "$T/c/importer.log" "the local copy of dump.sql is damaged"
check "the bad stored delta was refused, then a delta computed" \
	grep -q "stored delta of d/f3: .*another way" "$T/c/importer.log"
c=$(curl -s -o /dev/null -w "%{http_code}" -H "X-Understudy-Protocol: 1" -H "Authorization: Bearer $(cat "$T/c/token")" \
	"http://127.0.0.1:$PB_PORT/v1/sources/db/versions/$v3/delta?path=d/f3&from=$(printf %064d 0)")
check "a stored delta from an unknown base is 204" [ "$c" = 204 ]
c=$(curl -s -o /dev/null -w "%{http_code}" -H "X-Understudy-Protocol: 1" -H "Authorization: Bearer $(cat "$T/c/token")" \
	"http://127.0.0.1:$PB_PORT/v1/sources/db/versions/$v3/delta?path=d/f3&from=../../x")
check "a GET of a delta without a valid from is 400" [ "$c" = 400 ]
finish
