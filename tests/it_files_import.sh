#!/bin/bash
# files-import on its own, as the importer runs it: the first import copies
# the whole tree; the next ones update DIR in place, writing only what
# changed (files edited in place, renamed directories with UTF-8 names,
# types that changed, a change that kept size and mtime, which only
# UNDERSTUDY_CHANGED reveals), mending what was changed in DIR.  A file
# renamed or moved is moved within DIR, not written again, when DIR's
# copy has its bytes.  A failure
# while copying leaves DIR untouched; one while applying rolls DIR back to
# the previous version, directory mtimes included; a crash while applying
# is rolled back by the next run, or by files-promote.  As a user that is
# not root, read-only directories are updated too.
source "$SRC/tests/it_lib.sh"

B=$BUILD/importer
D=$T/standby
faults=$(grep -c '^#define UNDERSTUDY_FAULTS 1' "$BUILD/understudy-config.h")

# imp VERSION SRC [PREVIOUS]: files-import of SRC as VERSION into D; the
# changed list is $T/changed.
imp() {
	env UNDERSTUDY_BACKUP_DIR="$2" UNDERSTUDY_VERSION="$1" \
		${3:+UNDERSTUDY_PREVIOUS_VERSION=$3 UNDERSTUDY_CHANGED=$T/changed} \
		${FAULT:+UNDERSTUDY_FAULT=$FAULT} $AS "$B/files-import" "$D" > "$T/out" 2>&1
	local rc=$?
	cat "$T/out"
	return $rc
}
AS=
FAULT=
: > "$T/changed"

V1=$T/v1
mkdir -p "$V1/docs/été" "$V1/empty" "$V1/data/deep/er" "$V1/was-dir/x"
echo one > "$V1/docs/été/résumé.txt"
head -c 100000 /dev/urandom > "$V1/data/blob"
echo keep > "$V1/data/deep/er/keep"
echo file > "$V1/was-file"
echo x > "$V1/was-dir/x/y"
echo same > "$V1/same-size"
: > "$V1/zero"
ln -s docs "$V1/link"
chmod 640 "$V1/data/blob"
head -c 1048576 /dev/urandom > "$V1/big"
head -c 4096 /dev/urandom > "$V1/forged"
head -c 4096 /dev/urandom > "$V1/mended"

check "the first import copies the tree" imp v1 "$V1"
check "and says so" grep -q "files-import: $D is version v1 (10 files, copied)" "$T/out"
check "the standby is v1" same_tree "$V1" "$D"
check "the mark names v1" [ "$(cat "$D.understudy-version")" = v1 ]
ino_blob=$(stat -c %i "$D/data/blob")
ino_big=$(stat -c %i "$D/big")
ino_mended=$(stat -c %i "$D/mended")

V2=$T/v2
cp -a "$V1" "$V2"
# Edited in place, same size, mtime put back: only the list says so.
cp -p "$V2/same-size" "$T/ref"
echo SAME > "$V2/same-size"
touch -r "$T/ref" "$V2/same-size"
printf '%s\0' same-size > "$T/changed"
mv "$V2/docs/été" "$V2/docs/hiver ❄"
rm "$V2/was-file" && mkdir "$V2/was-file" && echo in > "$V2/was-file/in"
rm -r "$V2/was-dir" && echo now > "$V2/was-dir"
ln -sfn data "$V2/link"
mkdir -p "$V2/new/a/b" && echo new > "$V2/new/a/b/c"
rm "$V2/zero"
chmod 700 "$V2/data/deep"
touch -d '2020-01-02 03:04:05.123456789' "$V2/docs"
# Moved: a big file into a new directory.  Not moved: a file of the same
# size and mtime as one that went, with other bytes; one whose copy in DIR
# was changed on the standby, size and mtime kept.
mv "$V2/big" "$V2/new/big"
head -c 4096 /dev/urandom > "$V2/forged-2"
touch -r "$V2/forged" "$V2/forged-2"
rm "$V2/forged"
mv "$V2/mended" "$V2/new/mended"
cp -p "$D/mended" "$T/ref"
printf 'changed on the standby' | dd of="$D/mended" conv=notrunc status=none
touch -r "$T/ref" "$D/mended"
check "the second import updates in place" imp v2 "$V2" v1
check "and says what it wrote" \
	grep -q "files-import: $D is version v2 (10 files, updated from version v1: 9 written (2 of them moved within DIR), 5 removed)" "$T/out"
check "a moved file is DIR's own, moved" [ "$(stat -c %i "$D/new/big")" = "$ino_big" ]
check "one changed on the standby is written" [ "$(stat -c %i "$D/new/mended")" != "$ino_mended" ]
check "with the version's bytes" cmp "$V2/new/mended" "$D/new/mended"
check "as is one with only size and mtime alike" cmp "$V2/forged-2" "$D/forged-2"
check "a moved file has one path" [ "$(stat -c %h "$D/new/big")" = 1 ]
check "the standby is v2" same_tree "$V2" "$D"
check "the change that kept size and mtime arrived" [ "$(cat "$D/same-size")" = SAME ]
check "an unchanged file stays where it was" [ "$(stat -c %i "$D/data/blob")" = "$ino_blob" ]
check "sharing nothing with the version" [ "$(stat -c %h "$D/docs/hiver ❄/résumé.txt")" = 1 ]
check "only the mark is left beside the standby" \
	[ "$(ls -d "$T"/standby* | tr '\n' ' ')" = "$D $D.understudy-version " ]

# Changed on the standby: mended.  Nothing else written.
echo "the standby's own" > "$D/data/deep/er/keep"
echo stray > "$D/stray"
# A file the version now has twice: DIR's copy of it has another path
# that goes, linked to the one that stays, and is not moved (the two
# would be one file, sharing writes).
ln "$D/same-size" "$D/stray-link"
cp -p "$V2/same-size" "$V2/same-size-copy"
: > "$T/changed"
check "a third import of the same tree mends the standby" imp v2b "$V2" v2
check "writing only what differs" \
	grep -q "updated from version v2: 2 written, 2 removed)" "$T/out"
check "a file with two paths in DIR is not moved" \
	[ "$(stat -c %i "$D/same-size-copy")" != "$(stat -c %i "$D/same-size")" ]
check "each has one" [ "$(stat -c %h "$D/same-size")$(stat -c %h "$D/same-size-copy")" = 11 ]
check "the standby is v2 again" same_tree "$V2" "$D"

V3=$T/v3
cp -a "$V2" "$V3"
for i in 1 2 3 4 5; do echo "$i" > "$V3/new/f$i"; done
echo changed > "$V3/new/a/b/c"
rm -r "$V3/docs"
mv "$V3/new/big" "$V3/big-again"
touch -d '2021-01-01' "$V3/new"
printf '%s\0' new/a/b/c > "$T/changed"
cp -a "$D" "$T/before"

if [ "$faults" = 1 ]; then
	FAULT=enospc:files-import-copy
	check_fails "a disk full while copying fails the import" imp v3 "$V3" v2b
	check "saying DIR is unchanged" grep -q "no room to copy it (DIR is unchanged)" "$T/out"
	check "which it is" same_tree "$T/before" "$D"
	check "with its mark" [ "$(cat "$D.understudy-version")" = v2b ]
	check "and no undo area left" [ ! -e "$D.understudy-undo" ]

	FAULT=enospc:files-import-apply
	check_fails "a failure at the last step of applying fails the import" imp v3 "$V3" v2b
	check "saying it rolled back" grep -q "$D: rolled back to the previous version" "$T/out"
	check "to the previous version, directory times included" same_tree "$T/before" "$D"
	check "with its mark" [ "$(cat "$D.understudy-version")" = v2b ]
	check "and no undo area left" [ ! -e "$D.understudy-undo" ]

	FAULT=files-import-apply:4
	imp v3 "$V3" v2b
	check "a crash while applying leaves the undo area" [ -f "$D.understudy-undo/journal" ]
	FAULT=
	check "the next run" imp v3 "$V3" v2b
	check "rolls back first" grep -q "$D: rolled back an update to version v3 that was cut short" "$T/out"
	check "then updates" grep -q "is version v3 (.*updated from version v2b" "$T/out"
	check "the standby is v3" same_tree "$V3" "$D"
	check "its moved file DIR's own" [ "$(stat -c %i "$D/big-again")" = "$ino_big" ]

	rm -rf "$D" && cp -a "$T/before" "$D" && echo v2b > "$D.understudy-version"
	FAULT=files-import-apply:6
	imp v3 "$V3" v2b
	FAULT=
	UNDERSTUDY_VERSION=v2b "$B/files-promote" "$D" > "$T/out" 2>&1
	check "files-promote after a crash rolls back" \
		grep -q "rolled back an update to version v3 that was cut short" "$T/out"
	check "the promoted standby is the last version imported" same_tree "$T/before" "$D"
	check "with no mark" [ ! -e "$D.understudy-version" ]
	check "nor undo area" [ ! -e "$D.understudy-undo" ]
	echo v2b > "$D.understudy-version"
else
	echo "# fault points not compiled: failure and crash cases skipped"
fi

# As a user that is not root (the unit's), with read-only directories.
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null; then
	chmod 755 "$T"
	mkdir "$T/u" && chown nobody "$T/u"
	mv "$D" "$D.understudy-version" "$T/u/"
	D=$T/u/standby
	V4=$T/v4
	cp -a "$V3" "$V4"
	chmod 555 "$V4/new/a" "$V4/data"
	chown -R nobody "$V4" "$D" "$D.understudy-version"
	: > "$T/changed"
	AS="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups"
	check "as nobody: read-only directories are made" imp v4 "$V4" v2b
	check "the standby is v4" same_tree "$V4" "$D"
	cp -a "$V4" "$T/v5"
	chmod u+w "$T/v5/new/a" "$T/v5/data"
	echo more > "$T/v5/new/a/more" && rm "$T/v5/data/blob"
	chmod 555 "$T/v5/new/a" "$T/v5/data"
	chown -R nobody "$T/v5"
	check "and written in" imp v5 "$T/v5" v4
	check "the standby is v5" same_tree "$T/v5" "$D"
	# A roll-back that cannot complete (a directory it must write in
	# is no longer the user's) says so, and leaves the undo area and
	# the mark: files-promote fails rather than hand over a tree that
	# is not one version.
	if [ "$faults" = 1 ]; then
		cp -a "$T/v5" "$T/v6"
		echo x1 > "$T/v6/x1" && echo x2 > "$T/v6/x2" && echo x3 > "$T/v6/x3"
		chown -R nobody "$T/v6"
		FAULT=files-import-apply:3
		imp v6 "$T/v6" v5
		FAULT=
		chown root "$D"
		env UNDERSTUDY_VERSION=v5 $AS "$B/files-promote" "$D" > "$T/out" 2>&1
		check_fails "files-promote fails when the roll-back cannot complete" [ $? -eq 0 ]
		cat "$T/out"
		check "saying which path" grep -q "roll-back: $D/x" "$T/out"
		check "the mark stays" [ "$(cat "$D.understudy-version")" = v5 ]
		check "and the undo area" [ -f "$D.understudy-undo/journal" ]
		chown nobody "$D"
		env UNDERSTUDY_VERSION=v5 $AS "$B/files-promote" "$D" > "$T/out" 2>&1
		check "once it can, files-promote rolls back" grep -q "rolled back an update to version v6" "$T/out"
		check "the standby is v5 again" same_tree "$T/v5" "$D"
	fi
	AS=
	chmod -R u+w "$D" "$V4" "$T/v5"
fi

finish
