#!/bin/bash
# The whole cycle, three times over a tree that changes in every way (and
# holds a file over 100 MB): after each cycle the importer's copy and the
# standby equal the source, and every archived version restores bit for bit.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S/dir/nested" "$S/gone-dir/inner"
echo "first line" > "$S/edit.txt"
: > "$S/empty"
echo "to be removed" > "$S/remove-me"
echo "to be renamed" > "$S/rename-me"
echo "mode" > "$S/private" && chmod 600 "$S/private"
echo "deep" > "$S/dir/nested/deep.txt"
echo "bye" > "$S/gone-dir/inner/f"
printf 'spaces and %%percent\n' > "$S/name with spaces %.txt"
ln -s edit.txt "$S/link"
ln -s /nonexistent/target "$S/dangling"
head -c 110M /dev/urandom > "$S/big.bin"

chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1

cycle() {
	local n=$1
	exporter now --wait imported > "$T/now$n.out" 2>&1
	local rc=$?
	cat "$T/now$n.out"
	check "cycle $n: now --wait imported exits 0" [ $rc -eq 0 ]
	check "cycle $n: now printed the stages" contains "$T/now$n.out" \
		"imported on 1 of 1 importers"
	check "cycle $n: importer copy equals the source" \
		same_tree "$S" "$T/c/importer/sources/db/current/data"
	check "cycle $n: standby (import hook) equals the source" \
		same_tree "$S" "$T/standby"
	check "cycle $n: archive mirror equals the source" \
		same_tree "$S" "$T/c/archive/db/current"
	check "cycle $n: importer verify" importer verify db
	# The copies an import and a pull replaced are removed once they
	# have reported, off the chain's way.
	check "cycle $n: the importer's replaced copy is removed" \
		eventually no_entries "$T/c/importer/sources/db" 'replaced.*'
	check "cycle $n: the archive's replaced mirror is removed" \
		eventually no_entries "$T/c/archive/db/trash" '*'
	tree_sig "$S" > "$T/sig$n"
	# Every version so far restores bit for bit.
	pullbackup list db --json > "$T/list$n.json"
	local count
	count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/list$n.json")
	check "cycle $n: the archive holds $n versions" [ "$count" = "$n" ]
	local k
	for k in $(seq 1 "$n"); do
		local back=$((n - k))
		rm -rf "$T/restore"
		if pullbackup restore db --at "${back}B" "$T/restore" > /dev/null; then
			check "cycle $n: version $k (${back}B) restores bit for bit" \
				diff <(tree_sig "$T/restore") "$T/sig$k"
		else
			bad "cycle $n: restore of ${back}B failed"
		fi
	done
}

cycle 1

# After a pull, the signature the next pull will post for each large file
# that changed is made ahead, in the background.
SIGS=$T/c/archive/db/signatures
presigned() {
	no_entries "$SIGS" '*.src' &&
		[ "$(find "$SIGS" -name '*.sig' | wc -l)" = 1 ]
}
last_pull() {
	pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["last_pull"][sys.argv[1]])' "$1"
}
check "after cycle 1: the big file's signature is made ahead" eventually presigned

# Memory stays bounded whatever the file size: after moving a 110 MB file
# through each daemon, none has ever held anything near it in memory.
# (Not under ASan, whose quarantine keeps freed memory on purpose.)
if ldd "$PULLBACKUP" | grep -q libasan; then
	echo "skip - memory bound under ASan"
else
	for r in exporter pullbackup importer; do
		pid=$(eval echo "\$PID_$r")
		hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
		echo "$r: peak resident memory ${hwm} kB"
		check "$r stays under 48 MB while moving a 110 MB file" [ "$hwm" -lt 49152 ]
	done
fi

# Edits, inserts, deletions, renames, new and removed directories, symlink
# and mode changes, an empty file filled, and the big file changed inside.
echo "second line" >> "$S/edit.txt"
echo "now filled" > "$S/empty"
rm "$S/remove-me"
mv "$S/rename-me" "$S/renamed"
mkdir -p "$S/new-dir/sub"
echo "new" > "$S/new-dir/sub/new.txt"
rm -rf "$S/gone-dir"
ln -sfn dir/nested/deep.txt "$S/link"
chmod 640 "$S/private"
: > "$S/new-empty"
dd if=/dev/urandom of="$S/big.bin" bs=1M count=1 seek=50 conv=notrunc status=none
head -c 1M /dev/urandom >> "$S/big.bin"
cycle 2

# The delta algorithm did its work on the big file: far less than its size
# crossed the wire.
pullbackup status --json > "$T/pbstatus.json"
received=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sources"][0]["last_pull"]["bytes_received"])' "$T/pbstatus.json")
echo "cycle 2: pull-backup received $received bytes for a 111 MB version"
check "cycle 2: changed files came as deltas (received < 16 MB)" [ "$received" -lt 16000000 ]
check "cycle 2: the big file's delta was asked with the signature made ahead" \
	[ "$(last_pull signatures_ahead)" = 1 ]
check "after cycle 2: its next signature is made ahead, the old one gone" \
	eventually presigned
# A damaged one is made anew, and the delta still comes.
for f in "$SIGS"/*.sig; do head -c 5000 /dev/urandom > "$f"; done

# export and restore stream: their memory does not grow with the 111 MB file.
if ldd "$PULLBACKUP" | grep -q libasan; then
	echo "skip - memory bound under ASan"
else
	peak() {	# peak resident kB of a command, its output discarded
		python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
	}
	kb=$(peak "$PULLBACKUP" -c "$T/c/pullbackup.yaml" export db --at 1B --format tar.gz)
	echo "export of the 111 MB version (tar.gz): peak ${kb} kB"
	check "export streams in bounded memory (< 48 MB)" [ "$kb" -lt 49152 ]
	rm -rf "$T/rmem"
	kb=$(peak "$PULLBACKUP" -c "$T/c/pullbackup.yaml" restore db --at 1B "$T/rmem")
	echo "restore of an older 110 MB version through a reverse delta: peak ${kb} kB"
	check "restore streams in bounded memory (< 48 MB)" [ "$kb" -lt 49152 ]
	rm -rf "$T/rmem"
fi

# A file becomes a directory and a directory a file; the big file shrinks.
rm "$S/edit.txt" && mkdir "$S/edit.txt" && echo "inside" > "$S/edit.txt/x"
rm -rf "$S/new-dir" && echo "was a dir" > "$S/new-dir"
truncate -s 101M "$S/big.bin"
cycle 3
check "cycle 3: the damaged signature made ahead was made anew" \
	grep -q "the signature made ahead for big.bin did not serve; making it anew" \
	"$T/c/pullbackup.log"
check "cycle 3: and the big file still came by delta (received < 16 MB)" \
	[ "$(last_pull bytes_received)" -lt 16000000 ]
check "cycle 3: not with the damaged signature" [ "$(last_pull signatures_ahead)" = 0 ]

# A fourth cycle with nothing changed is cheap and still a new version.
cycle 4
pullbackup status --json > "$T/pbstatus4.json"
check "cycle 4: nothing changed, nothing but the manifest moved" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["sources"][0]["last_pull"]
sys.exit(0 if p["unchanged"] == p["files"] and p["bytes_received"] == 0 else 1)' "$T/pbstatus4.json"

# Events that arrive at once: each is acknowledged once durably queued
# (the commit thread writes them in batches, off the event loop), and the
# daemon answers status meanwhile.
events_before=$(pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_received"])')
seq -w 1 30 | xargs -P 30 -I{} curl -s -o "$T/ev-{}.json" -w '%{http_code}\n' \
	-X POST -H 'X-Understudy-Protocol: 1' -H "Authorization: Bearer $(cat "$T/c/token")" \
	--data '{"proto":1,"type":"backup.ready","source":"db","version":"20261121T0000{}.000Z","from":"http://127.0.0.1:'"$EX_PORT"'"}' \
	"http://127.0.0.1:$PB_PORT/v1/events" > "$T/ev-codes" &
xargs_pid=$!
check "status answers while they are written" pullbackup status
wait $xargs_pid
check "30 events at once: every one answered 200" [ "$(grep -c '^200$' "$T/ev-codes")" = 30 ]
# They race: one that arrives after a newer version of the same source is
# rightly answered "not queued" (superseded), and is not counted.
queued=$(cat "$T"/ev-*.json | grep -c '"queued":true')
superseded=$(cat "$T"/ev-*.json | grep -c '"queued":false,"note":"a newer version is already queued"')
check "and every answer says queued, or superseded by a newer one" \
	[ "$queued" -ge 1 -a $((queued + superseded)) -eq 30 ]
events_after=$(pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_received"])')
check "the pull-backup counts every event it queued" [ $((events_after - events_before)) = "$queued" ]

finish
