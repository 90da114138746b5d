#!/bin/bash
# Plain files end to end with the files-export and files-import hooks: a
# tree with subdirectories, a symlink, odd names and modes reaches the
# standby exactly; changes and removals follow; from the second import on
# only what changed is copied (the rest is linked from the last import, and
# shares nothing with understudy's copy), a file changed in the standby is
# mended, a change that keeps size and mtime still arrives; only the
# version mark is left beside the standby directory; bad arguments get a
# one-line error.
source "$SRC/tests/it_lib.sh"

H=$BUILD/exporter # the built files-export
B=$BUILD/importer # the built files-import and files-promote
S=$T/site
mkdir -p "$S/a/b" "$S/empty"
echo one > "$S/a/b/one"
echo two > "$S/two words"
printf 'x%.0s' $(seq 3000) > "$S/a/big"
ln -s a/b/one "$S/link"
chmod 600 "$S/two words"
chain_setup "$T/c" "[$H/files-export, $S]" "[$B/files-import, $T/standby]"
chain_tls || exit 1
chain_start || exit 1

check "cycle 1" exporter now --wait imported
check "the standby is an exact copy" same_tree "$S" "$T/standby"
check "modes are kept" [ "$(stat -c %a "$T/standby/two words")" = 600 ]
check "the symlink is a symlink" [ "$(readlink "$T/standby/link")" = a/b/one ]

check "the first import copied the whole tree" \
	grep -q "files-import: $T/standby is version .* files, copied)" "$T/c/importer.log"
ino_big=$(stat -c %i "$T/standby/a/big")

echo changed > "$S/a/b/one"
rm "$S/two words"
rmdir "$S/empty"
mkdir "$S/new" && echo new > "$S/new/file"
mkdir -p "$S/a/b2/c" && echo gone > "$S/a/b2/c/soon"
check "cycle 2" exporter now --wait imported
check "changes and removals follow" same_tree "$S" "$T/standby"
check "only the version mark is left beside the standby directory" \
	[ "$(ls -d "$T"/standby* | tr '\n' ' ')" = "$T/standby $T/standby.understudy-version " ]
check "the mark names the version imported" \
	[ "$(cat "$T/standby.understudy-version")" = "$(standby_version)" ]
check "the second import said it copied only what changed" \
	grep -q "files-import: $T/standby is version .* files, updated from version" "$T/c/importer.log"
check "an unchanged file was linked from the last import, not copied" \
	[ "$(stat -c %i "$T/standby/a/big")" = "$ino_big" ]
check "and shares nothing with understudy's copy" \
	[ "$(stat -c %h "$T/standby/a/big")" = 1 ]

# A file changed in the standby is mended; a change in the site that keeps
# size and mtime still arrives (the importer lists it as changed).
echo "not the site's" > "$T/standby/a/big"
cp -p "$S/a/b/one" "$T/one.before"
echo CHANGED > "$S/a/b/one"
touch -r "$T/one.before" "$S/a/b/one"
# A file that became a directory, and a directory that became a file.
rm "$S/new/file" && mkdir "$S/new/file" && echo inner > "$S/new/file/inner"
rm -r "$S/a/b2" && echo "now a file" > "$S/a/b2"
check "cycle 3" exporter now --wait imported
check "the third import said too it copied only what changed" \
	[ "$(grep -c "files-import: $T/standby is version .* files, updated from version" "$T/c/importer.log")" = 2 ]
check "the standby is the site again" same_tree "$S" "$T/standby"
check "the change that kept size and mtime arrived" \
	[ "$(cat "$T/standby/a/b/one")" = CHANGED ]
rm "$T/standby.understudy-version"
echo more > "$S/more"
check "cycle 4, without the mark" exporter now --wait imported
check "without the mark the whole tree is copied" \
	[ "$(grep -c "files-import: $T/standby is version .* files, copied)" "$T/c/importer.log")" = 2 ]
check "and the standby is right" same_tree "$S" "$T/standby"
check "the tree that had no mark is kept aside, and said so" \
	grep -q "files-import: $T/standby was not a copy made by this hook.*kept it as $T/standby.understudy-kept-" "$T/c/importer.log"
rm -rf "$T"/standby.understudy-kept-*

# With coreutils 9.1, cp --parents --remove-destination answered "File
# exists" for a changed file that follows, in the same call, a new one
# whose directory it had to create: status 123 every cycle, the standby
# never updated again.
mkdir "$S/a0" && echo new > "$S/a0/new"
echo "more, changed" > "$S/more"
check "cycle 5: a file in a new directory, then a changed one" exporter now --wait imported
check "updated from the last version" \
	[ "$(grep -c "files-import: $T/standby is version .* files, updated from version" "$T/c/importer.log")" = 3 ]
check "the standby is the site again" same_tree "$S" "$T/standby"

check "cycles with the mark keep nothing aside" no_entries "$T" "standby.understudy-kept-*"

# A directory renamed: its files are found by content on both hops, none
# fetched.
mv "$S/a0" "$S/a0-renamed"
mv "$S/a/big" "$S/big-moved"
check "cycle: a directory renamed, a file moved" exporter now --wait imported
check "the pull found them at their old paths" \
	grep -q "archived version $(standby_version): .* 2 of them moved, 0 by delta, 0 whole" "$T/c/pullbackup.log"
check "so did the import" \
	grep -q "imported version $(standby_version): .* 2 of them moved, 0 by delta, 0 whole" "$T/c/importer.log"
check "the standby is the site" same_tree "$S" "$T/standby"

# keep_last_export: the version archived stays served, and the next
# export copies only what changed, linking the rest to it.  A file edited
# in place in the site after that reaches the standby, and changes
# neither the version before nor the one served.
echo "keep_last_export: true" >> "$T/c/exporter.yaml"
kill -HUP "$PID_exporter"
check "the exporter reloaded" eventually grep -q "reloaded" "$T/c/exporter.log"
printf 'y%.0s' $(seq 5000) > "$S/a/inplace"
check "cycle 6, keeping the last export" exporter now --wait imported
v6=$(standby_version)
exported() { echo "$T/c/exporter/exports/$1/data"; }
check "archived, it is still served" [ -f "$(exported "$v6")/big-moved" ]
cp "$S/a/inplace" "$T/inplace.v6"
ino_big6=$(stat -c %i "$(exported "$v6")/big-moved")
ino_more6=$(stat -c %i "$(exported "$v6")/more")
printf 'z' | dd of="$S/a/inplace" bs=1 seek=100 conv=notrunc status=none
echo "changed again" > "$S/more"
check "cycle 7" exporter now --wait imported
v7=$(standby_version)
check "the export said it linked to the previous version" \
	grep -q "files-export: copied what changed since version $v6, linked the rest" "$T/c/exporter.log"
check "an unchanged file is one inode in both exports" \
	[ "$(stat -c %i "$(exported "$v7")/big-moved")" = "$ino_big6" ]
check "a changed one is not" \
	[ "$(stat -c %i "$(exported "$v7")/more")" != "$ino_more6" ]
check "nothing is linked to the site" \
	[ "$(stat -c %i "$(exported "$v7")/a/inplace")" != "$(stat -c %i "$S/a/inplace")" ]
check "the standby is the site, edit in place included" same_tree "$S" "$T/standby"
pullbackup restore db --at "$v6" "$T/restored6" > /dev/null
check "the version before is as it was" cmp -s "$T/restored6/a/inplace" "$T/inplace.v6"
printf 'w' | dd of="$S/a/inplace" bs=1 seek=200 conv=notrunc status=none
check "an edit in the site changes no export" \
	eval '! cmp -s "$S/a/inplace" "$(exported "$v7")/a/inplace"'
cp -p "$(exported "$v7")/a/inplace" "$S/a/inplace"
check "the version before, superseded, is no longer kept" eventually eval '[ ! -e "$(exported "$v6")" ]'

# A file written just before an export, then edited in place keeping its
# size and mtime: in the clock tick of that export's copy, it could look
# unchanged; files-export copies a file whose mtime is not 2 s older than
# the previous export, instead of linking it.
echo "racy one" > "$S/racy"
cp -p "$S/racy" "$T/racy.before"
check "cycle 8: a file just written" exporter now --wait imported
echo "racy two" > "$S/racy"
touch -r "$T/racy.before" "$S/racy"
check "cycle 9: edited keeping size and mtime" exporter now --wait imported
check "the edit reached the standby" [ "$(cat "$T/standby/racy")" = "racy two" ]
check "the export said what it copied and linked" \
	grep -Eq "files-export: copied what changed since version .* \([0-9]+ files: [1-9][0-9]* copied, [0-9]+ bytes; [1-9][0-9]* linked\)" "$T/c/exporter.log"

# A named pipe in the site: not something a version can hold; the export
# fails naming it, and the version before stays the newest.
mkfifo "$S/pipe"
exporter now --wait archived --timeout 20s > "$T/o" 2> "$T/e"
check "an export with a named pipe fails (exit 1)" [ $? -eq 1 ]
check "naming the pipe" contains "$T/e" "$S/pipe: not a file, directory or symlink"
check "the standby is still the version before" [ "$(cat "$T/standby/racy")" = "racy two" ]
rm "$S/pipe"
check "without it, a cycle completes" exporter now --wait imported
check "and the standby is the site" same_tree "$S" "$T/standby"

# Failback: files-promote, writes to the promoted tree, then an import
# onto it (this host re-joined as a standby) keeps them aside.
UNDERSTUDY_VERSION=v "$B/files-promote" "$T/standby" > "$T/o"
rc=$?
check "files-promote succeeds" eval '[ $rc -eq 0 ] && contains "$T/o" "takes writes"'
echo "written after promotion" > "$T/standby/promoted-write"
copy=$T/c/importer/sources/db/current/data
UNDERSTUDY_BACKUP_DIR=$copy UNDERSTUDY_VERSION=failback "$B/files-import" "$T/standby" > "$T/o" 2>&1
check "an import onto the promoted tree succeeds" [ $? -eq 0 ]
kept=$(sed -n 's/.*kept it as \(.*\); remove.*/\1/p' "$T/o")
check "keeping it aside, said so" eval '[ -n "$kept" ] && [ -f "$kept/promoted-write" ]'
check "while the standby is the version" same_tree "$S" "$T/standby"

UNDERSTUDY_BACKUP_DIR=$T/nowhere "$H/files-export" "$T/absent" 2> "$T/e"
check "files-export on a missing directory fails" [ $? -eq 1 ]
check "with a one-line error naming it" [ "$(wc -l < "$T/e")" = 1 ] && contains "$T/e" "$T/absent: not a directory to export"
"$H/files-export" "$S" 2> "$T/e"
check "files-export outside the exporter says so (exit 2)" [ $? -eq 2 ] && contains "$T/e" "not run by understudy-exporter"
# Entries that go while files-export reads the tree are left out (held at
# its first entry while a directory of the tree goes).
mkdir -p "$T/live/gone" "$T/e1" && echo keep > "$T/live/keep" && echo g > "$T/live/gone/g1"
UNDERSTUDY_FAULT=hold:files-export-entry UNDERSTUDY_FAULT_HOLD=$T/hold \
	UNDERSTUDY_BACKUP_DIR=$T/e1 "$H/files-export" "$T/live" > "$T/o" 2> "$T/e" &
fx=$!
check "files-export held at its first entry" within 10 test -e "$T/hold"
rm -r "$T/live/gone"
rm "$T/hold"
wait $fx
check "files-export: what went meanwhile is left out, no error" \
	eval '[ $? -eq 0 ] && [ ! -e "$T/e1/gone" ] && [ "$(cat "$T/e1/keep")" = keep ]'
# A file that becomes a named pipe between files-export's look and its
# copy: an error naming it, not a wait for a writer.
mkdir -p "$T/live2" "$T/e2" && echo x > "$T/live2/f"
UNDERSTUDY_FAULT=hold:files-export-copy UNDERSTUDY_FAULT_HOLD=$T/hold2 \
	UNDERSTUDY_BACKUP_DIR=$T/e2 timeout 20 "$H/files-export" "$T/live2" > "$T/o" 2> "$T/e" &
fx=$!
check "files-export held before its copy" within 10 test -e "$T/hold2"
rm "$T/live2/f" && mkfifo "$T/live2/f"
rm "$T/hold2"
wait $fx
check "a file turned pipe: exit 1, not a hang" [ $? -eq 1 ]
check "naming it" contains "$T/e" "$T/live2/f: no longer a file when read"
# --exclude: a pattern with a slash matches the path in DIR, one without
# the name at any depth; a named pipe excluded is no error, and an
# excluded directory is not read (the pipe in it would fail the copy).
mkdir -p "$T/x/pg_wal/sub" "$T/x/base/1/pgsql_tmp" "$T/x/deep/pg_wal" "$T/x/secret" "$T/e3"
echo w > "$T/x/pg_wal/0001" && echo s > "$T/x/pg_wal/sub/s" && echo r > "$T/x/base/1/123"
echo t > "$T/x/base/1/pgsql_tmp/t" && echo p > "$T/x/postmaster.pid"
echo q > "$T/x/deep/postmaster.pid" && echo d > "$T/x/deep/pg_wal/kept"
echo i > "$T/x/base/1/pg_internal.init" && mkfifo "$T/x/base/1/fifo"
mkfifo "$T/x/secret/pipe"
UNDERSTUDY_BACKUP_DIR=$T/e3 "$H/files-export" --exclude '/pg_wal/*' --exclude /postmaster.pid \
	--exclude 'pgsql_tmp*' --exclude pg_internal.init --exclude fifo --exclude secret \
	"$T/x" > "$T/o" 2> "$T/e"
check "files-export --exclude: exit 0" [ $? -eq 0 ]
check "what is excluded is left out, the rest copied" \
	eval '[ "$(cd "$T/e3" && find . | sort | tr "\n" " ")" = ". ./base ./base/1 ./base/1/123 ./deep ./deep/pg_wal ./deep/pg_wal/kept ./deep/postmaster.pid ./pg_wal " ]'
"$H/files-export" --exclude "$T/x" 2> "$T/e"
check "files-export --exclude without DIR: its usage (exit 2)" [ $? -eq 2 ] && contains "$T/e" "usage: files-export [--exclude PATTERN]... DIR"
UNDERSTUDY_BACKUP_DIR=$T/e3 "$H/files-export" --exclude cache/ "$T/x" 2> "$T/e"
check "an --exclude with a trailing slash: exit 2, said" [ $? -eq 2 ] && contains "$T/e" "--exclude 'cache/': a pattern is a name or a path"
# Renamed and moved: linked to the previous version's file with their
# bytes, found at another path; a file with the size and mtime of one that
# went but other bytes is copied; directory times survive the links.
mkdir -p "$T/m/a" "$T/m/b" "$T/em1" "$T/em2"
head -c 1048576 /dev/urandom > "$T/m/a/big"
head -c 4096 /dev/urandom > "$T/m/b/f1"
head -c 4096 /dev/urandom > "$T/m/b/f2"
touch -d '2020-01-01 00:00:00' "$T/m/a/big" "$T/m/b/f1" "$T/m/b/f2"
UNDERSTUDY_BACKUP_DIR=$T/em1 "$H/files-export" "$T/m" > "$T/o" 2> "$T/e"
check "files-export of a tree to rename in" [ $? -eq 0 ]
mv "$T/m/a" "$T/m/a-été"
mv "$T/m/b/f1" "$T/m/f1-moved"
head -c 4096 /dev/urandom > "$T/m/b/f3"
touch -d '2020-01-01 00:00:00' "$T/m/b/f3"
rm "$T/m/b/f2"
touch -d '2021-01-01 00:00:00' "$T/m/b" "$T/m"
UNDERSTUDY_BACKUP_DIR=$T/em2 UNDERSTUDY_PREVIOUS_BACKUP_DIR=$T/em1 \
	UNDERSTUDY_PREVIOUS_VERSION=$(date -u +%Y%m%dT%H%M%S.000Z) \
	"$H/files-export" "$T/m" > "$T/o" 2> "$T/e"
check "files-export after renames: exit 0" [ $? -eq 0 ]
check "a file in a renamed directory is linked to the previous version's" \
	[ "$(stat -c %i "$T/em2/a-été/big")" = "$(stat -c %i "$T/em1/a/big")" ]
check "so is a moved file" [ "$(stat -c %i "$T/em2/f1-moved")" = "$(stat -c %i "$T/em1/b/f1")" ]
check "one with another's size and mtime but other bytes is copied" cmp "$T/m/b/f3" "$T/em2/b/f3"
check "the export is the tree, directory times included" same_tree "$T/m" "$T/em2"
check "said" contains "$T/o" "(3 files: 1 copied, 4096 bytes; 2 linked, 2 of them renamed or moved)"
# As a user that is not root: a file moved into a read-only directory
# (its mode is set once the file is in).  setpriv runs the program (env
# before it): it finds the path with root's rights, so a checkout nobody
# cannot read (a clone in a mktemp directory) does not matter.
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null; then
	AS="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups"
	chmod 755 "$T"
	mkdir -p "$T/n/src/ro" "$T/n/e1" "$T/n/e2"
	head -c 8192 /dev/urandom > "$T/n/src/f"
	touch -d '2020-01-01 00:00:00' "$T/n/src/f"
	chown -R nobody "$T/n"
	env UNDERSTUDY_BACKUP_DIR="$T/n/e1" $AS "$H/files-export" "$T/n/src" > "$T/o" 2> "$T/e"
	check "as nobody, files-export of a tree" [ $? -eq 0 ]
	mv "$T/n/src/f" "$T/n/src/ro/f"
	chmod 555 "$T/n/src/ro"
	env UNDERSTUDY_BACKUP_DIR="$T/n/e2" UNDERSTUDY_PREVIOUS_BACKUP_DIR="$T/n/e1" \
		UNDERSTUDY_PREVIOUS_VERSION="$(date -u +%Y%m%dT%H%M%S.000Z)" \
		$AS "$H/files-export" "$T/n/src" > "$T/o" 2> "$T/e"
	check "a file moved into a read-only directory: exit 0" [ $? -eq 0 ]
	check "linked to the previous version's" [ "$(stat -c %i "$T/n/e2/ro/f")" = "$(stat -c %i "$T/n/e1/f")" ]
	check "the directory read-only in the export too" same_tree "$T/n/src" "$T/n/e2"
	chmod -R u+w "$T/n"
fi
"$B/files-import" 2> "$T/e"
check "files-import without DIR prints its usage (exit 2)" [ $? -eq 2 ] && contains "$T/e" "usage: files-import DIR"
touch "$T/plainfile"
UNDERSTUDY_BACKUP_DIR=$T/standby "$B/files-import" "$T/plainfile" 2> "$T/e"
check "files-import refuses a DIR that is a file" [ $? -eq 1 ] && contains "$T/e" "is not a directory"
finish
