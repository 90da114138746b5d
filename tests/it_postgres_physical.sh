#!/bin/bash
# PostgreSQL moved physically (issue 17, point 6): a primary cluster under
# pgbench, exported by postgresql-physical-export through a role that is
# not a superuser (LOGIN REPLICATION, EXECUTE on pg_backup_start/stop),
# imported by postgresql-physical-import into a hot standby that is
# replaced file by file and started.  The standby has pgbench's committed
# writes as of the backup, passes pg_amcheck, is read only; the second
# export links what did not change and the pull fetches a fraction; after
# promotion the application's own role (not a superuser) writes to its
# tables.  An import stops a server only when it is a standby.  The
# primary's WAL is in a directory of its own (initdb --waldir, pg_wal a
# symlink): the export has a pg_wal directory, never the symlink.
source "$SRC/tests/it_lib.sh"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || ! id postgres > /dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
	echo "skip - needs root, PostgreSQL's server and user"
	finish
	exit $?
fi
H=$SRC/conf/hooks
PG=$(mktemp -d "${TMPDIR:-/tmp}/understudy-pgp.XXXXXX")
chown postgres: "$PG"
chmod 755 "$PG"
P1=$(free_port)
P2=$(free_port)
as_pg() { runuser -u postgres -- "$@"; }
stop_pg() {
	for c in primary standby; do
		[ -d "$PG/$c" ] && as_pg "$PGBIN/pg_ctl" -D "$PG/$c" -m immediate stop > /dev/null 2>&1
	done
	rm -rf "$PG"
}
trap 'stop_pg; cleanup' EXIT
# The WAL elsewhere, as on a host with a disk for it (pg_wal a symlink).
as_pg "$PGBIN/initdb" -D "$PG/primary" --waldir "$PG/primary-wal" --auth=trust -U postgres \
	--allow-group-access > "$PG/initdb.log" 2>&1 || { cat "$PG/initdb.log"; bad "initdb"; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$PG/primary" -l "$PG/primary.log" -w \
	-o "-p $P1 -k $PG -c listen_addresses=''" start > /dev/null ||
	{ cat "$PG/primary.log"; bad "start the primary"; exit 1; }
ok "the primary is up on port $P1"
conn1=(--host "$PG" --port "$P1")
conn2=(--host "$PG" --port "$P2")
primary() { psql "${conn1[@]}" -U postgres -qAt -d app -c "$1" 2>&1; }
standby() { psql "${conn2[@]}" -U postgres -qAt -d app -c "$1" 2>&1; }
standby_as_app() { psql "${conn2[@]}" -U app -qAt -d app -c "$1" 2>&1; }
psql "${conn1[@]}" -U postgres -qAt -d postgres \
	-c "CREATE ROLE understudy_backup LOGIN REPLICATION" \
	-c "GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO understudy_backup" \
	-c "GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO understudy_backup" \
	-c "CREATE ROLE app LOGIN PASSWORD 'app secret'" \
	-c "CREATE DATABASE app OWNER app" > /dev/null
psql "${conn1[@]}" -U postgres -qAt -d app -c "CREATE EXTENSION amcheck" > /dev/null
psql "${conn1[@]}" -U app -qAt -d app \
	-c "CREATE TABLE orders (id serial PRIMARY KEY, what text);
	    INSERT INTO orders (what) SELECT 'order ' || i FROM generate_series(1, 1000) i;" > /dev/null
pgbench "${conn1[@]}" -U app -i -q -s 5 app > "$T/pgbench-init" 2>&1 ||
	{ cat "$T/pgbench-init"; bad "pgbench -i as app"; }
check "the backup role is not a superuser" \
	[ "$(primary "SELECT rolsuper FROM pg_roles WHERE rolname = 'understudy_backup'")" = f ]

# (An exporter in the cluster's group would read PGDATA; the tests run the
# daemons as root.)
c1="$PG/primary, --host, $PG, --port, '$P1', --username, understudy_backup, --dbname, postgres"
opts="'-p $P2 -k $PG'"
chain_setup "$T/c" "[$H/postgresql-physical-export, $c1]" \
	"[$H/postgresql-physical-import, $PG/standby, $opts]"
echo "keep_last_export: true" >> "$T/c/exporter.yaml"
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/postgresql-physical-promote, $PG/standby, $opts]|" "$T/c/importer.yaml"
CHAIN_ENV="FILES_EXPORT=$BUILD/exporter/files-export FILES_IMPORT=$BUILD/importer/files-import FILES_PROMOTE=$BUILD/importer/files-promote"
chain_start || exit 1
CHAIN_ENV=

pgbench "${conn1[@]}" -U app -n -c 2 -T 600 app > "$T/pgbench" 2>&1 &
bench=$!
check "cycle 1 with pgbench writing" exporter now --wait imported
grep -h "postgresql-physical" "$T/c/exporter.log" "$T/c/importer.log" | cut -c1-200
check "the standby runs, in recovery" [ "$(standby 'SELECT pg_is_in_recovery()')" = t ]
check "it has the 1000 rows" [ "$(standby 'SELECT count(*) FROM orders')" = 1000 ]
check "cycle 2 with pgbench writing" exporter now --wait imported
wal=$(ls -d "$T"/c/exporter/exports/*/data/pg_wal | tail -1)
check "pg_wal, a symlink on the primary, is a directory in the export" \
	eval '[ -L "$PG/primary/pg_wal" ] && [ -d "$wal" ] && [ ! -L "$wal" ]'
check "with PGDATA's mode and owner" \
	[ "$(stat -c %a:%U "$wal")" = "$(stat -c %a:%U "$PG/primary")" ]
check "the export linked what did not change" \
	grep -q "postgresql-physical-export: .*unchanged files linked to the last export" "$T/c/exporter.log"
got=$(pullbackup status --json | python3 -c 'import json,sys; l=json.load(sys.stdin)["sources"][0]["last_pull"]; print(l["unchanged"], l["files"])')
echo "    cycle 2: unchanged, files: $got"
check "the pull took most files from the last version" [ "${got% *}" -gt $((${got#* } / 2)) ]
kill "$bench"
wait "$bench" 2> /dev/null
check "the standby runs again, in recovery" [ "$(standby 'SELECT pg_is_in_recovery()')" = t ]
n2=$(standby 'SELECT count(*) FROM pgbench_history')
check "it has pgbench's writes of cycle 2 ($n2 rows)" [ "$n2" -gt 0 ]
check "balances agree with the history, as in any committed state" \
	[ "$(standby 'SELECT sum(abalance) FROM pgbench_accounts')" = "$(standby 'SELECT coalesce(sum(delta), 0) FROM pgbench_history')" ]
check "read only" grep -q "read-only transaction" <(standby "INSERT INTO orders (what) VALUES ('no')")
"$PGBIN/pg_amcheck" "${conn2[@]}" -U postgres --heapallindexed --database app > "$T/amcheck" 2>&1
check "pg_amcheck finds the standby clean" [ $? -eq 0 ]
cat "$T/amcheck"
# The export hook as the exporter's user would run it: not root, with the
# cluster's group (initdb --allow-group-access made PGDATA 0750).
if id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null; then
	# (copies of the hook and files-export: the checkout may be where
	# nobody cannot read, as a clone in a mktemp directory is)
	mkdir "$T/as-nobody" && chown nobody "$T/as-nobody" && chmod 755 "$T"
	cp "$H/postgresql-physical-export" "$T/pgx"
	cp "$BUILD/exporter/files-export" "$T/files-export"
	(cd / && UNDERSTUDY_BACKUP_DIR=$T/as-nobody FILES_EXPORT=$T/files-export setpriv --reuid=nobody --regid="$(id -g nobody)" \
		--groups="$(id -g postgres)" "$T/pgx" "$PG/primary" \
		--host "$PG" --port "$P1" --username understudy_backup --dbname postgres) > "$T/o" 2>&1
	check "the export hook as nobody, in the cluster's group" [ $? -eq 0 ]
	cat "$T/o"
	check "made a backup label and the WAL" \
		eval '[ -s "$T/as-nobody/backup_label" ] && ls "$T/as-nobody/pg_wal" | grep -q "^[0-9A-F]\{24\}$"'
fi
check "cycle 3, pgbench stopped" exporter now --wait imported
sum='SELECT count(*), sum(abalance) FROM pgbench_accounts'
check "the standby has the primary's last state" [ "$(standby "$sum")" = "$(primary "$sum")" ]
sum='SELECT count(*) FROM pgbench_history'
check "and its whole history" [ "$(standby "$sum")" = "$(primary "$sum")" ]

importer promote db > "$T/o" 2>&1
check "promote succeeds" [ $? -eq 0 ]
cat "$T/o"
check "the promoted standby takes writes" [ "$(standby 'SELECT pg_is_in_recovery()')" = f ]
check "app, not a superuser, writes to its table" \
	[ "$(standby_as_app "INSERT INTO orders (what) VALUES ('after promotion') RETURNING id > 1000")" = t ]
pgbench "${conn2[@]}" -U app -n -c 2 -T 2 app > "$T/pgbench2" 2>&1
check "pgbench as app on the promoted standby" [ $? -eq 0 ]
check "the files-import mark is gone" [ ! -e "$PG/standby.understudy-version" ]

# A server in PGDATA that takes writes is not stopped by an import.
UNDERSTUDY_BACKUP_DIR=$T/c/importer/sources/db/current/data FILES_IMPORT=$BUILD/importer/files-import \
	"$H/postgresql-physical-import" "$PG/standby" "-p $P2 -k $PG" > "$T/o" 2>&1
check_fails "an import onto a server that takes writes fails" [ $? -eq 0 ]
check "saying why" grep -q "is not a standby (in production)" "$T/o"
check "and the server still runs, writable" [ "$(standby 'SELECT pg_is_in_recovery()')" = f ]
finish
