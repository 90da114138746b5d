#!/bin/bash
# zstd on the wire (issue 17): with compress: zstd on both sources, over
# TLS on loopback, files and deltas cross compressed (what each hop
# received is a fraction of a compressible tree) and arrive whole; status
# says so; by default a loopback link is not compressed (auto), and
# compress: off, reloaded, sends the bytes as they are.  With
# increment_compression: zstd, the archive's increments are zstd, and an
# older version comes back through them.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S"
# log SEED VERB FILE: 16 MB of log-like text.
log() {
	python3 - "$@" <<'EOP'
import random, sys
r = random.Random(int(sys.argv[1]))
with open(sys.argv[3], "w") as f:
    for i in range(200000):
        f.write("2026-11-26T10:%02d:%02d host%d %s /api/v1/items/%d 200 %dms\n"
                % (i // 3600 % 60, i // 60 % 60, r.randint(1, 9), sys.argv[2],
                   r.randint(1, 99999), r.randint(1, 500)))
EOP
}
log 7 GET "$S/app.log"
head -c 2M /dev/urandom > "$S/noise.bin"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_tls || exit 1
chain_start || exit 1

field() { # ROLE PYTHON-EXPR over the status as s
	"$1" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
total=$(du -cb "$S"/* | tail -1 | cut -f1)
check "cycle 1, loopback, compress not set" exporter now --wait imported
check "auto: the pull-backup does not compress on loopback" \
	[ "$(field pullbackup 's["sources"][0]["compress"]')" = off ]
check "nor the importer" [ "$(field importer 's["sources"][0]["compress"]')" = off ]
got=$(field pullbackup 's["sources"][0]["last_pull"]["bytes_received"]')
echo "    pulled $got bytes of $total"
check "the pull received the whole tree" [ "$got" -ge "$total" ]

sed -i 's/^    importers: \(.*\)$/    importers: \1\n    compress: zstd\n    increment_compression: zstd/' "$T/c/pullbackup.yaml"
sed -i 's/^    hook_timeout: 5m$/    hook_timeout: 5m\n    compress: zstd/' "$T/c/importer.yaml"
kill -HUP "$PID_pullbackup" "$PID_importer"
check "both reloaded" eventually eval 'grep -q reloaded "$T/c/pullbackup.log" && grep -q reloaded "$T/c/importer.log"'
check "status says the pull-backup compresses" [ "$(field pullbackup 's["sources"][0]["compress"]')" = zstd ]
check "and the importer" [ "$(field importer 's["sources"][0]["compress"]')" = zstd ]

# A new tree: every file fetched whole, compressed.
cp "$S/app.log" "$T/app.cycle1"
rm "$S/app.log" && mv "$S/noise.bin" "$S/noise-old.bin"
log 8 POST "$S/app2.log"
head -c 2M /dev/urandom > "$S/noise.bin"
total=$(du -cb "$S/app2.log" "$S/noise.bin" | tail -1 | cut -f1)
check "cycle 2, compressed" exporter now --wait imported
got=$(field pullbackup 's["sources"][0]["last_pull"]["bytes_received"]')
echo "    pulled $got bytes for $total new"
check "the pull received at most 45% of the new bytes" [ "$got" -le $((total * 45 / 100)) ]
check "and more than the noise alone" [ "$got" -ge $((2 * 1024 * 1024)) ]
got=$(field importer 's["sources"][0]["last_import"]["bytes_received"]')
echo "    imported $got bytes for $total new"
check "the import received at most 45% of the new bytes" [ "$got" -le $((total * 45 / 100)) ]
check "the standby equals the source" same_tree "$S" "$T/standby"

cp "$S/app2.log" "$T/app2.cycle2"
# Edited: deltas, compressed too.
python3 - "$S/app2.log" <<'EOP'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines(True)
for i in range(0, len(lines), 50):
    lines[i] = lines[i].replace("POST", "PUT ")
open(p, "w").write("".join(lines))
EOP
check "cycle 3, a delta" exporter now --wait imported
got=$(field pullbackup 's["sources"][0]["last_pull"]["bytes_received"]')
echo "    pulled $got bytes for the edited file"
check "the pull took it by delta" grep -q "archived version $(standby_version): .*1 by delta" "$T/c/pullbackup.log"
check "the standby equals the source" same_tree "$S" "$T/standby"
check "the archive verifies, every version" pullbackup verify db --all
# increment_compression: zstd from cycle 2 on: version 1's increment was
# written at cycle 2's commit, version 2's at cycle 3's.
check "increments are zstd since the reload" \
	[ -n "$(find "$T/c/archive/db/versions" -name '*.rdelta.zst' -o -name '*.full.zst' | head -1)" ]
check "and none gzip" [ -z "$(find "$T/c/archive/db/versions" -name '*.gz' | head -1)" ]
pullbackup restore db --at 1B "$T/v2" > /dev/null
check "version 2, restored through a zstd reverse delta, is cycle 2's" \
	cmp "$T/v2/app2.log" "$T/app2.cycle2"
pullbackup restore db --at 2B "$T/v1" > /dev/null
check "version 1's log, kept whole in a zstd increment, is cycle 1's" \
	cmp "$T/v1/app.log" "$T/app.cycle1"

sed -i 's/^    compress: zstd$/    compress: off/' "$T/c/pullbackup.yaml"
kill -HUP "$PID_pullbackup"
check "the pull-backup reloaded, off" eventually eval '[ "$(field pullbackup "s[\"sources\"][0][\"compress\"]")" = off ]'
head -c 3M /dev/zero > "$S/zeros"
check "cycle 4, off" exporter now --wait imported
got=$(field pullbackup 's["sources"][0]["last_pull"]["bytes_received"]')
echo "    pulled $got bytes for 3 MiB of zeros"
check "off: the zeros crossed as they are" [ "$got" -ge $((3 * 1024 * 1024)) ]
got=$(field importer 's["sources"][0]["last_import"]["bytes_received"]')
check "the importer, still zstd, took them compressed" [ "$got" -le 100000 ]
check "the standby equals the source" same_tree "$S" "$T/standby"

# A bad value: one line, where.
sed -i 's/^    compress: off$/    compress: yes/' "$T/c/pullbackup.yaml"
pullbackup status > /dev/null 2> "$T/e"
check "a bad compress value is refused, saying where" grep -q 'pullbackup.yaml:[0-9]*:.*"compress" must be auto, zstd or off' "$T/e"
finish
