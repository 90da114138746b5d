#!/bin/bash
# A real SQLite service, end to end with the shipped hooks: rows written on
# the primary reach the standby, more writes and another cycle, then the
# standby is promoted and takes writes.
source "$SRC/tests/it_lib.sh"

H=$SRC/conf/hooks
P=$T/primary/app.db
D=$T/standby/app.db
mkdir -p "$T/primary"
sqlite3 "$P" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
	INSERT INTO t (v) VALUES ('first'), ('second');" > /dev/null
chain_setup "$T/c" "[$H/sqlite-export, $P]" "[$H/sqlite-import, $D]"
chain_tls || exit 1
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/sqlite-promote, $D]|" "$T/c/importer.yaml"
chain_start || exit 1

check "cycle 1" exporter now --wait imported
check "the standby has the primary's rows" [ "$(sqlite3 "$D" 'SELECT group_concat(v) FROM t')" = "first,second" ]

# Writes while the application keeps its connection (WAL, uncheckpointed).
sqlite3 "$P" "INSERT INTO t (v) VALUES ('third'); UPDATE t SET v = 'FIRST' WHERE id = 1; DELETE FROM t WHERE id = 2;"
check "cycle 2" exporter now --wait imported
check "the standby has the changes" [ "$(sqlite3 "$D" 'SELECT group_concat(v) FROM t')" = "FIRST,third" ]
check "the standby passes integrity_check" [ "$(sqlite3 "$D" 'PRAGMA integrity_check')" = ok ]

importer promote db > "$T/o"
check "promote succeeds" [ $? -eq 0 ]
check "the promote hook checked the database" contains "$T/o" "ready to take writes"
sqlite3 "$D" "INSERT INTO t (v) VALUES ('written on the promoted standby')"
check "the promoted standby takes writes" [ "$(sqlite3 "$D" 'SELECT count(*) FROM t')" = 3 ]
sqlite3 "$P" "INSERT INTO t (v) VALUES ('late write on the old primary')"
exporter now --wait archived > /dev/null 2>&1
check "the old primary's later cycle is refused: it is fenced (exit 1)" [ $? -eq 1 ]
check "a later cycle does not overwrite the promoted database" [ "$(sqlite3 "$D" 'SELECT count(*) FROM t')" = 3 ]
pullbackup restore db --at now "$T/r" > /dev/null
check "the archive's newest is still the version promoted, not the old primary's late write" \
	[ "$(sqlite3 "$T/r/database.sqlite" 'SELECT group_concat(v) FROM t')" = "FIRST,third" ]
check "no database was kept aside by the cycles" [ -z "$(ls "$D".understudy-kept-* 2> /dev/null)" ]
# Failback: this host takes imports again, its database has writes of its
# own (uncheckpointed, in its WAL): the import keeps it aside.
copy=$T/c/importer/sources/db/current/data
sqlite3 "$D" "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;" > /dev/null
python3 -c "import sqlite3,sys
c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint = 0')
c.execute(\"INSERT INTO t (v) VALUES ('only in the WAL')\"); c.commit()
import os; os._exit(0)" "$D"
check "the promoted database has a write in its WAL" [ -s "$D-wal" ]
UNDERSTUDY_BACKUP_DIR=$copy UNDERSTUDY_VERSION=failback "$H/sqlite-import" "$D" > "$T/o" 2>&1
check "an import onto it succeeds" [ $? -eq 0 ]
cat "$T/o"
kept=$(sed -n 's/.*kept it as \(.*\); remove.*/\1/p' "$T/o")
check "and says where it kept the database that took writes" eval '[ -n "$kept" ] && [ -f "$kept" ]'
check "which has them all, its WAL's too" \
	[ "$(sqlite3 "$kept" "SELECT count(*) FROM t WHERE v IN ('written on the promoted standby', 'only in the WAL')")" = 2 ]
check "while the database is the copy" [ "$(sqlite3 "$D" 'SELECT group_concat(v) FROM t')" = "FIRST,third" ]
UNDERSTUDY_BACKUP_DIR=$copy UNDERSTUDY_VERSION=again "$H/sqlite-import" "$D" > "$T/o" 2>&1
check "the next import keeps nothing more" eval '[ "$(ls -d "$D".understudy-kept-* | wc -l)" = 1 ] && ! grep -q kept "$T/o"'

# A relative path is the working directory's: the hook changed directory
# first, so sqlite3 made an empty database there and exported it.
mkdir "$T/rel-out"
(cd "$T" && UNDERSTUDY_BACKUP_DIR=$T/rel-out "$H/sqlite-export" primary/app.db > /dev/null)
check "sqlite-export with a relative path exits 0" [ $? -eq 0 ]
check "and exports the database, not an empty one" \
	[ "$(sqlite3 "$T/rel-out/database.sqlite" 'SELECT count(*) FROM t')" -ge 2 ]
check "nothing is created in the backup directory but the copy" \
	[ "$(ls "$T/rel-out")" = database.sqlite ]
finish
