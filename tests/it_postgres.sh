#!/bin/bash
# PostgreSQL end to end, the way an application uses it: two clusters on
# loopback (initdb as an unprivileged user), a non-superuser role `app`
# with a password owning its database (pgbench tables, a serial column, a
# grant to another role), pgbench writing on the primary during the export
# cycles.  The standby must have the role (password and membership), the
# owners and grants, be closed to `app` and read-only, pass pg_amcheck,
# swap without a moment where the database does not exist, and after
# promotion take pgbench and sequence writes as `app`.  Then a failback:
# importing onto a database that takes writes keeps it aside.
source "$SRC/tests/it_lib.sh"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || ! id postgres > /dev/null 2>&1; then
	echo "skip - PostgreSQL server or its user is not installed"
	finish
	exit $?
fi
H=$SRC/conf/hooks
PG=$(mktemp -d "${TMPDIR:-/tmp}/understudy-pg.XXXXXX")
chown postgres: "$PG"
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
for c in primary:$P1 standby:$P2; do
	name=${c%%:*}
	port=${c##*:}
	as_pg "$PGBIN/initdb" -D "$PG/$name" --auth=trust -U postgres > "$PG/$name.initdb" 2>&1 ||
		{ cat "$PG/$name.initdb"; bad "initdb $name"; exit 1; }
	as_pg "$PGBIN/pg_ctl" -D "$PG/$name" -l "$PG/$name.log" -w \
		-o "-p $port -k $PG -c listen_addresses=''" start > /dev/null ||
		{ cat "$PG/$name.log"; bad "start $name"; exit 1; }
done
ok "two clusters up on ports $P1 and $P2"
conn1=(--host "$PG" --port "$P1" --username postgres)
conn2=(--host "$PG" --port "$P2" --username postgres)
primary() { psql "${conn1[@]}" -qAt -d app -c "$1" 2>&1; }
standby() { psql "${conn2[@]}" -qAt -d app -c "$1" 2>&1; }
standby_as_app() { psql --host "$PG" --port "$P2" --username app -qAt -d app -c "$1" 2>&1; }
psql "${conn1[@]}" -qAt -d postgres -c "CREATE ROLE app LOGIN PASSWORD 'app secret'" \
	-c "CREATE ROLE reporting NOLOGIN" -c "GRANT reporting TO app" \
	-c "CREATE DATABASE app OWNER app" -c "ALTER ROLE app SET search_path = public, other" > /dev/null
psql "${conn1[@]}" -qAt -d app -c "CREATE EXTENSION amcheck" > /dev/null
psql --host "$PG" --port "$P1" --username app -qAt -d app \
	-c "CREATE TABLE orders (id serial PRIMARY KEY, what text);
	    INSERT INTO orders (what) SELECT 'order ' || i FROM generate_series(1, 1000) i;
	    GRANT SELECT ON orders TO reporting;" > /dev/null
pgbench --host "$PG" --port "$P1" --username app -i -q -s 2 app > "$T/pgbench-init" 2>&1 ||
	{ cat "$T/pgbench-init"; bad "pgbench -i as app"; }

c1="--host, $PG, --port, '$P1', --username, postgres"
c2="--host, $PG, --port, '$P2', --username, postgres"
chain_setup "$T/c" "[$H/postgresql-export, app, $c1]" "[$H/postgresql-import, app, $c2]"
chain_tls || exit 1
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/postgresql-promote, app, $c2]|" "$T/c/importer.yaml"
chain_start || exit 1

# Sessions opened on the standby all the time: none may find no database.
watch_swaps() {
	while [ ! -e "$T/stop-watch" ]; do
		psql "${conn2[@]}" -qAt -d app -c "SELECT 1" > "$T/watch.one" 2>&1 &&
			echo >> "$T/watch.ok"
		if grep -q "does not exist" "$T/watch.one" &&
			! grep -q "just been dropped or renamed" "$T/watch.one"; then
			cat "$T/watch.one" >> "$T/watch.gaps"
		fi
		grep -q "not currently accepting connections" "$T/watch.one" &&
			cat "$T/watch.one" >> "$T/watch.gaps"
	done
}
: > "$T/watch.gaps"
: > "$T/watch.ok"

pgbench --host "$PG" --port "$P1" --username app -n -c 2 -T 600 app > "$T/pgbench" 2>&1 &
bench=$!
check "cycle 1 with pgbench writing" exporter now --wait imported
watch_swaps &
watcher=$!
for i in 2 3 4; do
	check "cycle $i with pgbench writing" exporter now --wait imported
done
kill "$bench"
wait "$bench" 2> /dev/null
check "cycle 5 after pgbench" exporter now --wait imported
touch "$T/stop-watch"
wait "$watcher"
check "sessions were opened on the standby during the swaps" [ "$(wc -l < "$T/watch.ok")" -gt 10 ]
check "none found the standby database missing" [ ! -s "$T/watch.gaps" ]
cat "$T/watch.gaps"

check "the standby has the 1000 rows" [ "$(standby 'SELECT count(*) FROM orders')" = 1000 ]
sum='SELECT count(*), sum(abalance) FROM pgbench_accounts'
check "and pgbench's last writes" [ "$(standby "$sum")" = "$(primary "$sum")" ]
sum='SELECT count(*) FROM pgbench_history'
check "and its history" [ "$(standby "$sum")" = "$(primary "$sum")" ]
owners="SELECT string_agg(c.relname || '=' || pg_get_userbyid(c.relowner) || coalesce(c.relacl::text, ''), ' ' ORDER BY c.relname)
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
check "owners and grants as on the primary" [ "$(standby "$owners")" = "$(primary "$owners")" ]
roles="SELECT string_agg(a.rolname || ' ' || a.rolcanlogin || ' ' || coalesce(a.rolpassword, '-'), ' ' ORDER BY a.rolname)
	FROM pg_authid a WHERE a.rolname IN ('app', 'reporting')"
check "the roles came, password included" [ "$(standby "$roles")" = "$(primary "$roles")" ]
check "with their memberships" [ "$(standby "SELECT pg_has_role('app', 'reporting', 'MEMBER')")" = t ]
check "the database is app's" [ "$(standby "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")" = app ]
check "the standby is closed to app" grep -q 'permission denied for database "app"' <(standby_as_app "SELECT 1")
check "and read-only for a superuser" grep -q "read-only transaction" <(standby "INSERT INTO orders (what) VALUES ('no')")
export PGOPTIONS=
"$PGBIN/pg_amcheck" "${conn2[@]}" --heapallindexed --database app > "$T/amcheck" 2>&1
check "pg_amcheck finds the standby clean" [ $? -eq 0 ]
cat "$T/amcheck"

# A dump is SQL, never psql commands: whoever could alter one (the live
# host, the backup host, the link) must not run a shell on the standby.
for f in app.sql app.roles.sql app.access.sql; do
	rm -rf "$T/evil"
	cp -a "$T/c/importer/sources/db/current/data" "$T/evil"
	chmod -R u+w "$T/evil"
	printf '\\! touch %s/pwned\n\\unrestrict guess\nSELECT 1;\n' "$T" >> "$T/evil/$f"
	UNDERSTUDY_BACKUP_DIR=$T/evil "$H/postgresql-import" app "${conn2[@]}" > "$T/o" 2>&1
	check "an import of a $f holding \\! fails" [ $? -ne 0 ]
	check "saying so" grep -q "backslash commands are restricted" "$T/o"
	check "and runs nothing" [ ! -e "$T/pwned" ]
done
check "the standby is still the last version" [ "$(standby 'SELECT count(*) FROM orders')" = 1000 ]

importer promote db > "$T/o"
check "promote succeeds" [ $? -eq 0 ]
cat "$T/o"
check "app connects to the promoted standby" [ "$(standby_as_app 'SELECT current_user')" = app ]
check "with its settings" [ "$(standby_as_app 'SHOW search_path')" = "public, other" ]
check "and writes through its sequence" [ "$(standby_as_app "INSERT INTO orders (what) VALUES ('after promotion') RETURNING id")" = 1001 ]
pgbench --host "$PG" --port "$P2" --username app -n -c 2 -T 3 app > "$T/pgbench2" 2>&1
check "pgbench as app on the promoted standby" [ $? -eq 0 ]
grep -E "^(number of failed|tps)" "$T/pgbench2"
check "and keeps its writes" [ "$(standby 'SELECT count(*) FROM orders')" = 1001 ]

# Failback: the old primary, still with a write nobody shipped, takes the
# new primary's copy: its database is kept aside, not dropped.
primary "INSERT INTO orders (what) VALUES ('never shipped')" > /dev/null
copy=$T/c/importer/sources/db/current/data
UNDERSTUDY_BACKUP_DIR=$copy UNDERSTUDY_VERSION=failback "$H/postgresql-import" app \
	--host "$PG" --port "$P1" --username postgres > "$T/failback" 2>&1
check "the old primary takes the copy" [ $? -eq 0 ]
cat "$T/failback"
kept=$(sed -n 's/.*kept it as \([a-z0-9_]*\),.*/\1/p' "$T/failback")
check "and says where it kept its own database" [ -n "$kept" ]
check "which still has the unshipped write" [ "$(psql "${conn1[@]}" -qAt -d "$kept" -c "SELECT count(*) FROM orders WHERE what = 'never shipped'")" = 1 ]
check "while app is the copy" [ "$(primary "SELECT count(*) FROM orders WHERE what = 'never shipped'")" = 0 ]
finish
