#!/bin/bash
# Plain files end to end with the files-export and files-import hooks: a
# tree with subdirectories, a symlink, odd names and modes reaches the
# standby exactly; changes and removals follow; nothing is left beside the
# standby directory; bad arguments get a one-line error.
source "$SRC/tests/it_lib.sh"

H=$SRC/conf/hooks
S=$T/site
mkdir -p "$S/a/b" "$S/empty"
echo one > "$S/a/b/one"
echo two > "$S/two words"
printf 'x%.0s' $(seq 3000) > "$S/a/big"
ln -s a/b/one "$S/link"
chmod 600 "$S/two words"
chain_setup "$T/c" "[$H/files-export, $S]" "[$H/files-import, $T/standby]"
chain_start || exit 1

check "cycle 1" exporter now --wait imported
check "the standby is an exact copy" same_tree "$S" "$T/standby"
check "modes are kept" [ "$(stat -c %a "$T/standby/two words")" = 600 ]
check "the symlink is a symlink" [ "$(readlink "$T/standby/link")" = a/b/one ]

echo changed > "$S/a/b/one"
rm "$S/two words"
rmdir "$S/empty"
mkdir "$S/new" && echo new > "$S/new/file"
check "cycle 2" exporter now --wait imported
check "changes and removals follow" same_tree "$S" "$T/standby"
check "nothing is left beside the standby directory" \
	[ "$(ls -d "$T"/standby* | wc -l)" = 1 ]
check "the hook said what it did" grep -q "files-import: $T/standby is version" "$T/c/importer.log"

UNDERSTUDY_BACKUP_DIR=$T/nowhere "$H/files-export" "$T/absent" 2> "$T/e"
check "files-export on a missing directory fails" [ $? -eq 1 ]
check "with a one-line error naming it" [ "$(wc -l < "$T/e")" = 1 ] && contains "$T/e" "$T/absent is not a directory"
"$H/files-import" 2> "$T/e"
check "files-import without DIR prints its usage (exit 2)" [ $? -eq 2 ] && contains "$T/e" "usage: files-import DIR"
touch "$T/plainfile"
UNDERSTUDY_BACKUP_DIR=$T/standby "$H/files-import" "$T/plainfile" 2> "$T/e"
check "files-import refuses a DIR that is a file" [ $? -eq 1 ] && contains "$T/e" "is not a directory"
finish
