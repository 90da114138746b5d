#!/bin/bash
# The archive verbs on a real archive of four versions: changed, restore of
# a subtree and of one file, verify finding a flipped byte in the mirror, a
# reverse delta and a manifest, prune, export (tar, tar.gz), vc-export,
# catalog; an archive copied to another place is adopted with its history;
# two daemons on one archive are refused; a dead lock holder blocks nothing.
source "$SRC/tests/it_lib.sh"
SYSPY=/usr/bin/python3
[ -x "$SYSPY" ] || SYSPY=python3

make_copy_hooks
S=$T/src
mkdir -p "$S/dir/sub" "$S/old-dir"
for i in $(seq 1 20); do echo "line $i of a file that will change" >> "$S/dir/sub/text"; done
echo keep > "$S/keep"
echo "goes away" > "$S/old-dir/gone"
ln -s keep "$S/link"
head -c 3M /dev/urandom > "$S/dir/blob"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_tls || exit 1
chain_start || exit 1

version() {
	exporter now --wait imported > /dev/null || bad "cycle $1"
	tree_sig "$S" > "$T/sig$1"
	rm -rf "$T/copy$1" && cp -a "$S" "$T/copy$1"
}
version 1
sed -i 's/line 5 /LINE FIVE /' "$S/dir/sub/text"
echo added > "$S/dir/new"
version 2
rm -rf "$S/old-dir"
dd if=/dev/urandom of="$S/dir/blob" bs=64k count=1 seek=10 conv=notrunc status=none
version 3
ln -sfn dir/new "$S/link"
chmod 600 "$S/keep"
version 4

# changed
pullbackup changed db --since 3B --json > "$T/changed.json"
check "changed --since 3B lists added, changed and removed" $SYSPY -c '
import json, sys
c = json.load(open(sys.argv[1]))
ok = c["added"] == ["dir/new"] and sorted(c["removed"]) == ["old-dir", "old-dir/gone"] \
    and sorted(c["changed"]) == ["dir/blob", "dir/sub/text", "keep", "link"]
print(c); sys.exit(0 if ok else 1)' "$T/changed.json"
pullbackup changed db --since 1B > "$T/changed.txt"
check "changed prints a summary" contains "$T/changed.txt" "0 added, 2 changed, 0 removed"
check "changed --since 1B names the mode and symlink changes" grep -q "^changed  *keep" "$T/changed.txt"

# restore: a subtree and a single file of older versions
pullbackup restore db/dir --at 2B "$T/r-dir" > /dev/null
check "restore db/dir --at 2B gives that subtree" same_tree "$T/copy2/dir" "$T/r-dir"
pullbackup restore db/dir/sub/text --at 3B "$T/r-file" > /dev/null
check "restore of one file gives that file" cmp "$T/copy1/dir/sub/text" "$T/r-file"
pullbackup restore db/old-dir --at now "$T/r-none" 2> "$T/err"
check "restore of a path not in the version fails" [ $? -eq 1 ]
check "and names it" contains "$T/err" "has no old-dir"
pullbackup restore db/../etc --at now "$T/r-bad" 2> "$T/err"
check "restore of a path with .. is refused" [ $? -eq 2 ]

# verify, and a flipped byte anywhere is found
check "verify --all on a sound archive" pullbackup verify db --all
A=$T/c/archive/db
flip() {	# flip one byte of file $1 at offset $2
	local f=$1 off=$2 b
	b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	printf "$(printf '\\%03o' $(( (b + 1) % 256 )))" |
		dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
cp "$A/current/dir/sub/text" "$T/save"
flip "$A/current/dir/sub/text" 10
pullbackup verify db --all > "$T/v1" 2>&1
check "a flipped byte in the mirror fails verify" [ $? -eq 1 ]
check "verify names the file and the newest version" grep -q "BAD version $(ls "$A/versions" | sort | tail -1): dir/sub/text" "$T/v1"
cp "$T/save" "$A/current/dir/sub/text"
touch -r "$T/copy4/dir/sub/text" "$A/current/dir/sub/text"
delta=$(ls "$A"/versions/*/increment/*.rdelta.gz | head -1)
cp "$delta" "$T/save"
flip "$delta" $(( $(stat -c %s "$delta") / 2 ))
pullbackup verify db --all > "$T/v2" 2>&1
check "a flipped byte in a reverse delta fails verify" [ $? -eq 1 ]
cat "$T/v2" | grep BAD | head -3
cp "$T/save" "$delta"
man=$(ls "$A"/versions/*/manifest | head -1)
cp "$man" "$T/save"
# One hex digit of the first file's SHA-256, changed.
$SYSPY - "$man" <<'EOP'
import sys
p = sys.argv[1]
lines = open(p).read().split("\n")
for i, l in enumerate(lines):
    if l.startswith("F "):
        f = l.split(" ")
        f[4] = ("0" if f[4][0] != "0" else "1") + f[4][1:]
        lines[i] = " ".join(f)
        break
open(p, "w").write("\n".join(lines))
EOP
pullbackup verify db --all > "$T/v3" 2>&1
check "a changed manifest fails verify" [ $? -eq 1 ]
check "verify says the manifest is damaged" grep -q "manifest is damaged" "$T/v3"
cp "$T/save" "$man"
check "verify --all passes again once repaired" pullbackup verify db --all

# export as tar and tar.gz: extracting gives the version
pullbackup export db --at 1B -o "$T/v3.tar" 2> /dev/null
mkdir "$T/x3" && tar -xpf "$T/v3.tar" -C "$T/x3"
check "export --format tar extracts to the version" same_tree "$T/copy3" "$T/x3"
pullbackup export db --at now --format tar.gz > "$T/v4.tgz"
mkdir "$T/x4" && tar -xzpf "$T/v4.tgz" -C "$T/x4"
check "export --format tar.gz to stdout extracts to the version" same_tree "$T/copy4" "$T/x4"

# vc-export: every version as plain files, again only what is new
pullbackup vc-export db -o "$T/vc" > /dev/null 2> "$T/vc.err"
ids=$(pullbackup list db --json | $SYSPY -c 'import json,sys; print(" ".join(v["id"] for v in reversed(json.load(sys.stdin))))')
k=1
for id in $ids; do
	check "vc-export version $k equals it" same_tree "$T/copy$k" "$T/vc/$id"
	k=$((k + 1))
done
pullbackup vc-export db -o "$T/vc" 2> "$T/vc2.err" > /dev/null
check "a second vc-export writes nothing new" contains "$T/vc2.err" "0 version(s) written, 4 already there"
pullbackup vc-export db -o "$T/vc-latest" --latest 2 > /dev/null 2>&1
check "vc-export --latest 2" [ "$(ls "$T/vc-latest" | wc -l)" = 2 ]

# catalog is YAML with every version and its manifest
pullbackup catalog db > "$T/catalog.yaml"
check "catalog parses as YAML with 4 versions and their manifests" $SYSPY -c '
import yaml, sys
c = yaml.safe_load(open(sys.argv[1]))
v = c["versions"]
ok = len(v) == 4 and any(e["path"] == "dir/sub/text" for e in v[0]["manifest"])
sys.exit(0 if ok else 1)' "$T/catalog.yaml"

# prune: dry run, keep-last, never the newest
pullbackup prune db --keep-last 2 --dry-run > "$T/p1"
check "prune --dry-run says what would go" [ "$(grep -c 'would remove' "$T/p1")" = 2 ]
check "and removes nothing" [ "$(pullbackup list db --json | $SYSPY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 4 ]
pullbackup prune db --keep-last 3 > "$T/p2"
check "prune --keep-last 3 removes the oldest" [ "$(grep -c '^removed' "$T/p2")" = 1 ]
pullbackup restore db --at 2B "$T/r-after-prune" > /dev/null
check "the oldest remaining version still restores" same_tree "$T/copy2" "$T/r-after-prune"
sleep 1
pullbackup prune db --older-than 1s > "$T/p3"
check "prune --older-than 1s keeps the newest" [ "$(pullbackup list db --json | $SYSPY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
check "verify after prunes" pullbackup verify db --all
pullbackup prune db 2> "$T/err"
check "prune without options uses the config's retention" [ $? -eq 0 ]

# Two daemons on one archive are refused.
sed "s/listen: .*/listen: 127.0.0.1:$(free_port)/" "$T/c/pullbackup.yaml" > "$T/pb2.yaml"
timeout 10 "$PULLBACKUP" -c "$T/pb2.yaml" serve 2> "$T/err"
check "a second daemon on the same archive exits 1" [ $? -eq 1 ]
check "saying two writers are refused" contains "$T/err" "two writers are refused"

# A lock held by a dead process is no obstacle.
# (One process holds it, so that killing it leaves no child behind.)
$SYSPY -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(300)' "$A/lock" "$T/locked" &
holder=$!
for i in $(seq 1 50); do [ -e "$T/locked" ] && break; sleep 0.1; done
check "the lock is held" [ -e "$T/locked" ]
kill -9 $holder
wait $holder 2> /dev/null
check "after its holder died, the lock is free" timeout 10 "$PULLBACKUP" -c "$T/c/pullbackup.yaml" list db

# An archive copied elsewhere is adopted with its whole history.
version 5
chain_stop
mkdir -p "$T/moved"
cp -a "$T/c/archive" "$T/moved/archive"
rm -rf "$T/c/archive"
sed -i "s|archive_dir: .*|archive_dir: $T/moved/archive|" "$T/c/pullbackup.yaml"
chain_start || exit 1
n=$(pullbackup list db --json | $SYSPY -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "the moved archive keeps its versions ($n)" [ "$n" = 2 ]
echo "after the move" > "$S/moved"
version 6
check "a cycle after the move adds a version" [ "$(pullbackup list db --json | $SYSPY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3 ]
pullbackup restore db --at 2B "$T/r-moved" > /dev/null
check "the oldest version survives the move bit for bit" same_tree "$T/copy4" "$T/r-moved"
check "verify --all after the move" pullbackup verify db --all

# Readers while the daemon pulls and commits: every restore equals the
# copy saved for its version, verify --all always passes, export works.
mkdir -p "$T/byid"
save_by_id() {
	local id
	id=$(pullbackup list db --json | $SYSPY -c 'import json,sys; print([v["id"] for v in json.load(sys.stdin) if v["state"] == "completed"][0])')
	rm -rf "$T/byid/$id" && cp -a "$S" "$T/byid/$id"
}
save_by_id
readers() {
	local reads=0 fails=0 id
	while [ ! -e "$T/stop-readers" ]; do
		for id in $(ls "$T/byid"); do
			rm -rf "$T/rr"
			if pullbackup restore db --at "$id" "$T/rr" > /dev/null 2>&1; then
				same_tree "$T/byid/$id" "$T/rr" 2> /dev/null || fails=$((fails + 1))
			elif pullbackup list db --json | grep -q "\"$id\""; then
				fails=$((fails + 1))	# listed, yet not restorable
			fi
			pullbackup verify db --all > /dev/null 2>&1 || fails=$((fails + 1))
			pullbackup export db --at now 2> /dev/null | tar -tf - > /dev/null 2>&1 ||
				fails=$((fails + 1))
			reads=$((reads + 1))
		done
	done
	echo "$reads $fails" > "$T/readers.out"
}
readers &
rpid=$!
for k in 1 2 3; do
	echo "concurrent change $k" > "$S/concurrent"
	head -c 2M /dev/urandom > "$S/dir/blob"
	exporter now --wait archived > /dev/null || bad "concurrent cycle $k"
	save_by_id
done
touch "$T/stop-readers"
wait $rpid
read reads fails < "$T/readers.out"
echo "readers: $reads rounds, $fails failures"
check "readers ran during the cycles ($reads rounds)" [ "$reads" -ge 3 ]
check "no reader ever saw an inconsistent archive" [ "$fails" = 0 ]
finish
