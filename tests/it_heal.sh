#!/bin/bash
# Every hop verified, and damage mended (issue 14, part 2).  A byte that
# rotted in the pull-backup's newest copy was linked into every later
# version and served to every standby, and one added later failed for
# ever; now the next cycle finds it and fetches the file again.  A
# standby whose copy rotted said OK; now a check (the verify verb, or the
# daemon's own every verify_every) makes its health CRITICAL, promote
# refuses it (unless forced), and the next import mends it.
source "$SRC/tests/it_lib.sh"

copy_chain
echo constant > "$S/g"
head -c 200000 /dev/urandom > "$S/big"
chain_start || exit 1
check "a first cycle" exporter now --wait imported

# Rot: same size, same mtime, other bytes, in the mirror.
M=$T/c/archive/db/current
printf 'CONSTANT\n' > "$T/g.bad"
touch -r "$M/g" "$T/g.bad"
cat "$T/g.bad" > "$M/g"
touch -r "$T/g.bad" "$M/g"
pullbackup verify db > "$T/o"
check "verify finds the rot (exit 1)" [ $? -eq 1 ]
check "naming the file" contains "$T/o" "g"

echo two > "$S/f"
check "the next cycle" exporter now --wait imported
check "the pull-backup says it mended the file" \
	grep -q "the local copy of g is damaged .*mending it" "$T/c/pullbackup.log"
check "status counts it" bash -c "timeout 60 '$PULLBACKUP' -c '$T/c/pullbackup.yaml' status --json | grep -q '\"mended\":1'"
check "every version verifies again" pullbackup verify db --all
check "the standby has the right content" [ "$(cat "$T/standby/g")" = constant ]

# A standby added later takes the whole version from the pull-backup.
IM2_PORT=$(free_port)
sed -e "s|127.0.0.1:$IM_PORT|127.0.0.1:$IM2_PORT|" -e "s|$T/c/importer|$T/c/importer2|" \
	-e "s|import-hook, $T/standby|import-hook, $T/standby2|" \
	-e "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    verify_every: 2s|" "$T/c/importer.yaml" > "$T/c/importer2.yaml"
kill "$PID_pullbackup" && wait "$PID_pullbackup" 2> /dev/null
sed -i "s|    importers: .*|    importers: [http://127.0.0.1:$IM_PORT, http://127.0.0.1:$IM2_PORT]|" "$T/c/pullbackup.yaml"
chain_start_one "$IMPORTER" importer2 || exit 1
chain_start_one "$PULLBACKUP" pullbackup || exit 1
echo three > "$S/f"
check "a cycle to both standbys" exporter now --wait imported
check "the standby added later is exact" same_tree "$S" "$T/standby2"

# Rot in a standby's copy.
rot() {
	printf 'CONSTANT\n' > "$T/g.bad"
	touch -r "$1/g" "$T/g.bad"
	cat "$T/g.bad" > "$1/g"
	touch -r "$T/g.bad" "$1/g"
}
C=$T/c/importer/sources/db/current/data
rot "$C"
importer check > "$T/o"
check "before any check, the standby says OK" [ $? -eq 0 ]
importer verify db > "$T/o"
check "verify finds it (exit 1)" [ $? -eq 1 ]
check "naming the file" contains "$T/o" "BAD g"
importer check > "$T/o"
check "then the standby's check is CRITICAL" [ $? -eq 2 ]
check "saying the copy is damaged" contains "$T/o" "is damaged"
importer status --json > "$T/st.json"
check "status shows the damage" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["sources"][0]
sys.exit(0 if s["damage"]["bad"] == 1 and s["damage"]["first"].startswith("g ") else 1)' "$T/st.json"
importer promote db > /dev/null 2> "$T/e"
check "promote refuses a damaged copy (exit 1)" [ $? -eq 1 ]
check "saying why, and --force" grep -q "is damaged.*--force" "$T/e"
check "and the standby still takes imports" contains <(importer status) "role_of_this_host: standby"
echo four > "$S/f"
check "the next cycle" exporter now --wait imported
check "the importer mended the file from the pull-backup" \
	grep -q "the local copy of g is damaged .*mending it" "$T/c/importer.log"
check "its check is OK again" importer check
check "the standby is exact again" same_tree "$S" "$T/standby"

# The daemon's own check, every verify_every (2 s here): no verb needed.
rot "$T/c/importer2/sources/db/current/data"
i2check() { ! timeout 60 "$IMPORTER" -c "$T/c/importer2.yaml" check > /dev/null; }
check "the second standby's own check finds its rot" eventually i2check

# verify --repair mends from an intact copy of the content: another path
# or version with the same SHA-256, or the exporter while it still serves
# the version; and says what it cannot mend.
echo constant > "$S/g-copy"
echo five > "$S/f"
check "a cycle with a second copy of g's content" exporter now --wait imported
rot "$M"
pullbackup verify db --repair > "$T/o" 2>&1
check "verify --repair exits 0 when all is mended" [ $? -eq 0 ]
check "saying from where" grep -q "MENDED version .*: g: from g-copy of version" "$T/o"
check "the newest verifies" pullbackup verify db
newest=$(pullbackup list db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
older=$(pullbackup list db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["id"])')
for inc in "$T/c/archive/db/versions/$older/increment/"*.gz; do
	printf 'not gzip at all' > "$inc"
done
pullbackup verify db --all --repair > "$T/o" 2>&1
check "an increment that rotted, with its content nowhere else: exit 1" [ $? -eq 1 ]
check "saying it could not be mended, and why" grep -q "NOT MENDED version $older: f: no intact copy" "$T/o"
# The exporter serves its newest export until every pull-backup has it:
# with a second one down, it still does.
kill "$PID_exporter" && wait "$PID_exporter" 2> /dev/null
sed -i "s|^notify: \[\(.*\)\]|notify: [\1, http://127.0.0.1:9]|" "$T/c/exporter.yaml"
chain_start_one "$EXPORTER" exporter || exit 1
echo six > "$S/f"
head -c 100000 /dev/urandom > "$S/unique"
# Asked of the daemon directly: now would wait for the second.
curl -s -o /dev/null -X POST -H 'X-Understudy-Protocol: 1' \
	-H "Authorization: Bearer $(cat "$T/c/token")" --data '{}' \
	"http://127.0.0.1:$EX_PORT/v1/now"
archived() { [ "$(pullbackup list db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" != "$newest" ]; }
check "the pull-backup archives it" eventually archived
printf 'X' | dd of="$M/unique" bs=1 seek=10 conv=notrunc 2> /dev/null
pullbackup verify db --repair > "$T/o" 2>&1
check "a file nowhere else in the archive is mended from the exporter" \
	grep -q "MENDED version .*: unique: from the exporter at" "$T/o"
check "and the newest verifies" pullbackup verify db
finish
