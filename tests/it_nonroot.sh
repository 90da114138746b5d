#!/bin/bash
# Directory modes from the wire wedged a pull-backup and an importer that
# do not run as root (the documented User=understudy setup): a 0000
# directory made every later commit fail with EACCES, a 0555 one was never
# removed from trash/ (issue 14, part 4).  Here the exporter runs as root,
# as on many live hosts, and the pull-backup and importer as nobody; the
# archive keeps the modes as data and a restore applies them.
source "$SRC/tests/it_lib.sh"

if [ "$(id -u)" != 0 ] || ! id nobody > /dev/null 2>&1 ||
	! command -v setpriv > /dev/null; then
	echo "skip - needs root, the user nobody and setpriv"
	finish
	exit
fi
copy_chain
# The tree: a directory nobody may enter, a read-only one, a file nobody
# may read; the exporter (root) reads them all.
mkdir -p "$S/locked/deeper" "$S/ro"
echo secret > "$S/locked/f"
echo deeper > "$S/locked/deeper/g"
echo ro > "$S/ro/h"
echo hidden > "$S/unreadable"
chmod 0000 "$S/locked" "$S/unreadable"
chmod 0555 "$S/ro"
# The daemons' binaries and files where nobody reaches them.
mkdir "$T/bin"
cp "$PULLBACKUP" "$IMPORTER" "$T/bin/"
PULLBACKUP=$T/bin/understudy-pullbackup
IMPORTER=$T/bin/understudy-importer
chmod 755 "$T" "$T/bin"
chown -R nobody: "$T/c" "$T/import-hook"
chmod 755 "$T/import-hook"
# The standby, and where restores go: somewhere nobody may write.
mkdir -p "$T/n"
chown nobody: "$T/n"
sed -i "s|$T/standby|$T/n/standby|" "$T/c/importer.yaml"

chain_start_one "$EXPORTER" exporter || exit 1
CHAIN_AS="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups"
chain_start_one "$PULLBACKUP" pullbackup || exit 1
chain_start_one "$IMPORTER" importer || exit 1
check "the pull-backup runs as nobody" [ "$(ps -o user= -p "$PID_pullbackup")" = nobody ]

check "a first cycle" exporter now --wait imported
echo two > "$S/f"
echo "ro changed" > "$S/ro/h.new"
check "a second cycle: the commit over a 0000 directory" exporter now --wait imported
echo three > "$S/f"
check "a third" exporter now --wait imported
trash_empty() { [ -z "$(ls -A "$T/c/archive/db/trash")" ]; }
check "trash/ empties, 0555 directories too" eventually trash_empty
check "the standby has the locked directory's files" \
	[ "$(cat "$T/n/standby/locked/f" "$T/n/standby/locked/deeper/g")" = "secret
deeper" ]
check "and the newest content" [ "$(cat "$T/n/standby/f")" = three ]
check "verify --all as nobody" pullbackup verify db --all
pullbackup restore db --at now "$T/n/restored" > "$T/o" 2>&1
check "restore as nobody exits 0" [ $? -eq 0 ]
check "with the modes as exported" \
	[ "$(stat -c %a "$T/n/restored/locked" "$T/n/restored/ro" "$T/n/restored/unreadable" | tr '\n' ' ')" = "0 555 0 " ]
CHAIN_AS=
pullbackup restore db --at now "$T/restored-root" > "$T/o" 2>&1
check "restore as root gives the tree exactly" same_tree "$S" "$T/restored-root"
check "the mirror's directories are open to their owner" \
	[ "$(stat -c %a "$T/c/archive/db/current/locked")" = 700 ]
chain_stop
chmod -R u+rwx "$S" "$T/n/restored" 2> /dev/null
finish
