#!/bin/bash
# PostgreSQL end to end: two clusters on loopback (initdb as an
# unprivileged user), rows written on the primary, a cycle, the rows on the
# standby (read-only there); more writes, another cycle; promote; writes
# succeed on the standby.
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
psql "${conn1[@]}" -qAt -d postgres -c "CREATE DATABASE app" > /dev/null
psql "${conn1[@]}" -qAt -d app -c "CREATE TABLE orders (id serial PRIMARY KEY, what text);
	INSERT INTO orders (what) SELECT 'order ' || i FROM generate_series(1, 1000) i;" > /dev/null

c1="--host, $PG, --port, '$P1', --username, postgres"
c2="--host, $PG, --port, '$P2', --username, postgres"
chain_setup "$T/c" "[$H/postgresql-export, app, $c1]" "[$H/postgresql-import, app, $c2]"
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/postgresql-promote, app, $c2]|" "$T/c/importer.yaml"
chain_start || exit 1

standby() { psql "${conn2[@]}" -qAt -d app -c "$1" 2>&1; }
check "cycle 1" exporter now --wait imported
check "the standby has the 1000 rows" [ "$(standby 'SELECT count(*) FROM orders')" = 1000 ]
check "the standby is read-only" grep -q "read-only transaction" <(standby "INSERT INTO orders (what) VALUES ('no')")

psql "${conn1[@]}" -qAt -d app -c "INSERT INTO orders (what) VALUES ('late'); DELETE FROM orders WHERE id <= 10;
	UPDATE orders SET what = 'changed' WHERE id = 500;" > /dev/null
check "cycle 2" exporter now --wait imported
check "the standby has the new writes" [ "$(standby 'SELECT count(*) FROM orders')" = 991 ]
check "and the update" [ "$(standby 'SELECT what FROM orders WHERE id = 500')" = changed ]

importer promote db > "$T/o"
check "promote succeeds" [ $? -eq 0 ]
cat "$T/o"
check "the promoted standby takes writes" [ "$(standby "INSERT INTO orders (what) VALUES ('after promotion') RETURNING 1")" = 1 ]
check "and keeps them" [ "$(standby 'SELECT count(*) FROM orders')" = 992 ]
finish
