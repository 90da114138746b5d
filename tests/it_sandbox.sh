#!/bin/bash
# The shipped units' sandbox with the shipped hooks at their documented
# paths (issue 14, part 3): the three daemons run as a user that is not
# root, each under its own unit's file settings (ProtectSystem=strict,
# ReadWritePaths=, StateDirectory=, PrivateTmp=, NoNewPrivileges=, emulated
# by unit_sandbox.sh in a mount namespace of its own, as there is no
# systemd here), the state where the units put it, and the application's
# SQLite database in WAL mode at /srv/app/app.db on both hosts.  A cycle,
# a second one after writes, promotion, and the application writing to the
# promoted copy.  With /srv read-only (the units before this), the export
# hook cannot open the WAL database and the import hook cannot write beside
# the standby's.
source "$SRC/tests/it_lib.sh"

if [ "$(id -u)" != 0 ] || ! id nobody > /dev/null 2>&1 || ! command -v setpriv > /dev/null ||
	! command -v sqlite3 > /dev/null || ! unshare -m true 2> /dev/null; then
	echo "skip - needs root, mount namespaces, the user nobody, setpriv and sqlite3"
	finish
	exit
fi
H=$SRC/conf/hooks
USER_IDS=$(id -u nobody):$(id -g nobody)
units=$BUILD/systemd
for u in exporter pullbackup importer; do
	check "understudy-$u.service was generated" [ -f "$units/understudy-$u.service" ]
done

# The hosts' own directories: /srv and the units' state directories.
mkdir -p "$T/live/srv/app" "$T/standby/srv/app" "$T/live/state" "$T/backup/archive" \
	"$T/standby/state"
sqlite3 "$T/live/srv/app/app.db" "PRAGMA journal_mode = WAL;
	CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
	INSERT INTO notes (body) VALUES ('first'), ('second');" > /dev/null
chown -R nobody: "$T/live" "$T/backup" "$T/standby"

chain_setup "$T/c" "[$H/sqlite-export, /srv/app/app.db]" "[$H/sqlite-import, /srv/app/app.db]"
sed -i "s|^state_dir: .*|state_dir: /var/lib/understudy/exporter|" "$T/c/exporter.yaml"
sed -i "s|^archive_dir: .*|archive_dir: /var/lib/understudy/archive|" "$T/c/pullbackup.yaml"
sed -i "s|^state_dir: .*|state_dir: /var/lib/understudy/importer|" "$T/c/importer.yaml"
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/sqlite-promote, /srv/app/app.db]|" "$T/c/importer.yaml"
chown nobody: "$T/c/token"
chmod 755 "$T" "$T/c"

# sandboxed ROLE HOST STATE: what runs ROLE's daemon under its unit.
sandboxed() {
	# The source and build trees too: a fresh clone may be under /tmp.
	echo "env SANDBOX_USER=$USER_IDS $SRC/tests/unit_sandbox.sh $units/understudy-$1.service" \
		"--bind $SRC $SRC --bind $BUILD $BUILD --bind $T/c $T/c --bind $T/$2/$3 /var/lib/understudy/$(basename "$3")" \
		"$([ "$2" = backup ] || echo "--bind $T/$2/srv /srv") --"
}
# The state directories are named after the role (the units' paths).
mv "$T/live/state" "$T/live/exporter"
mv "$T/standby/state" "$T/standby/importer"
CHAIN_AS=$(sandboxed exporter live exporter)
chain_start_one "$EXPORTER" exporter || exit 1
CHAIN_AS=$(sandboxed pullbackup backup archive)
chain_start_one "$PULLBACKUP" pullbackup || exit 1
CHAIN_AS=$(sandboxed importer standby importer)
chain_start_one "$IMPORTER" importer || exit 1
CHAIN_AS=

check "the exporter runs as nobody" [ "$(stat -c %U "/proc/$PID_exporter")" = nobody ]
check "in a mount namespace of its own" [ "$(readlink "/proc/$PID_exporter/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]
check "where / is read-only" grep -q ' / / ro,' "/proc/$PID_exporter/mountinfo"

exporter now --wait imported > "$T/o" 2>&1
check "a cycle under the units' sandbox" [ $? -eq 0 ]
cat "$T/o"
standby_db=$T/standby/srv/app/app.db
check "the standby database has the rows" [ "$(sqlite3 "$standby_db" 'SELECT count(*) FROM notes')" = 2 ]
check "the exporter's state is where the unit keeps it" [ -d "$T/live/exporter/exports" ]
check "the archive too" [ -d "$T/backup/archive/db" ]
check "the standby copy belongs to the daemon's user" [ "$(stat -c %U "$standby_db")" = nobody ]

sqlite3 "$T/live/srv/app/app.db" "INSERT INTO notes (body) VALUES ('third')"
check "cycle 2, the application's WAL not yet checkpointed" exporter now --wait imported
check "the standby has the write" [ "$(sqlite3 "$standby_db" 'SELECT body FROM notes WHERE id = 3')" = third ]
check "and no other WAL than its own" [ ! -s "$standby_db-wal" ]
importer promote db > "$T/o" 2>&1
check "promote under the sandbox" [ $? -eq 0 ]
cat "$T/o"
check "the application writes to the promoted copy" \
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
	sqlite3 "$standby_db" "PRAGMA journal_mode = WAL; INSERT INTO notes (body) VALUES ('promoted')"
finish
