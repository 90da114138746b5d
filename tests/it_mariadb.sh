#!/bin/bash
# MariaDB end to end: two servers on their own sockets in a temp dir, rows
# written on the primary, a cycle, the rows on the standby (read-only there
# for the application's user); more writes, another cycle (the tables are
# swapped in atomically); promote; writes succeed on the standby.  Then a
# dump with a trigger, which is loaded in place, and a load in place that
# fails half way: the live database keeps its tables.  The application's
# user exists only on the primary: it comes with its password and grants.
source "$SRC/tests/it_lib.sh"

if ! command -v mariadbd > /dev/null || ! id mysql > /dev/null 2>&1; then
	bad "the MariaDB server is not installed (scripts/deps installs it)"
	finish
	exit
fi
H=$SRC/conf/hooks
M=$(mktemp -d "${TMPDIR:-/tmp}/understudy-mdb.XXXXXX")
chown mysql: "$M"
stop_mdb() {
	local p
	for p in "$M"/*.pid; do
		[ -f "$p" ] && kill "$(cat "$p")" 2> /dev/null
	done
	sleep 1
	rm -rf "$M"
}
trap 'stop_mdb; cleanup' EXIT
for name in primary standby; do
	mariadb-install-db --no-defaults --datadir="$M/$name" --user=mysql \
		--auth-root-authentication-method=normal --skip-test-db > "$M/$name.install" 2>&1 ||
		{ cat "$M/$name.install"; bad "mariadb-install-db $name"; exit 1; }
	mariadbd --no-defaults --datadir="$M/$name" --socket="$M/$name.sock" \
		--skip-networking --user=mysql --pid-file="$M/$name.pid" \
		--log-error="$M/$name.err" &
	for i in $(seq 100); do
		mariadb --no-defaults --socket="$M/$name.sock" -u root -e "SELECT 1" > /dev/null 2>&1 && break
		sleep 0.2
	done
done
db1() { mariadb --no-defaults --socket="$M/primary.sock" -u root --batch --skip-column-names app -e "$1" 2>&1; }
# The application's user on the standby: no privilege to bypass read_only.
app2() { mariadb --no-defaults --socket="$M/standby.sock" -u app --password='app secret' --batch --skip-column-names app -e "$1" 2>&1; }
root2() { mariadb --no-defaults --socket="$M/standby.sock" -u root --batch --skip-column-names -e "$1" 2>&1; }
mariadb --no-defaults --socket="$M/primary.sock" -u root -e "CREATE DATABASE app;
	CREATE USER app@localhost IDENTIFIED BY 'app secret'; GRANT ALL ON app.* TO app@localhost;
	CREATE USER reports@'%' IDENTIFIED BY 'other'"
check "two MariaDB servers up" [ $? -eq 0 ]
db1 "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(64)) ENGINE=InnoDB;
	CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64)) ENGINE=InnoDB;
	INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');
	INSERT INTO orders (what) SELECT concat('order ', seq) FROM seq_1_to_1000;
	GRANT SELECT ON app.customers TO reports@'%';"

# A mariadb that loads half of what it is given into the database named in
# $T/fail-load-into and fails: what a full disk or a killed client does.
mkdir "$T/bin"
cat > "$T/bin/mariadb" << EOF
#!/bin/sh
case " \$* " in
*" --database=\$(cat "$T/fail-load-into" 2> /dev/null) "*)
	if [ -s "$T/fail-load-into" ]; then
		cat > "$T/in-place.sql"
		head -c \$((\$(wc -c < "$T/in-place.sql") / 2)) "$T/in-place.sql" | /usr/bin/mariadb "\$@"
		echo "mariadb: cut short by the test" >&2
		exit 1
	fi ;;
esac
exec /usr/bin/mariadb "\$@"
EOF
chmod +x "$T/bin/mariadb"
CHAIN_ENV="PATH=$T/bin:$PATH"

c1="--no-defaults, --socket, $M/primary.sock, --user, root"
c2="--no-defaults, --socket, $M/standby.sock, --user, root"
chain_setup "$T/c" "[$H/mariadb-export, app, $c1]" "[$H/mariadb-import, app, $c2]"
chain_tls || exit 1
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$H/mariadb-promote, app, $c2]|" "$T/c/importer.yaml"
chain_start || exit 1

check "cycle 1" exporter now --wait imported
users="SELECT concat(user, '@', host, ' ', authentication_string) FROM mysql.user WHERE user IN ('app', 'reports') ORDER BY 1"
check "the users came, passwords included" [ "$(root2 "$users")" = "$(mariadb --no-defaults --socket="$M/primary.sock" -u root --batch --skip-column-names -e "$users")" ]
check "with their grants" grep -q 'GRANT SELECT ON `app`.`customers` TO `reports`@`%`' <(root2 "SHOW GRANTS FOR reports@'%'")
check "the standby has the 1000 rows" [ "$(app2 'SELECT count(*) FROM orders')" = 1000 ]
check "and the other table" [ "$(app2 'SELECT name FROM customers WHERE id = 2')" = bob ]
check "the standby is read-only for the application" grep -q "read-only" <(app2 "INSERT INTO orders (what) VALUES ('no')")
check "the import says the tables were swapped atomically" \
	grep -q "tables swapped in atomically" "$T/c/importer.log"

db1 "INSERT INTO orders (what) VALUES ('late'); DELETE FROM orders WHERE id <= 10;
	UPDATE orders SET what = 'changed' WHERE id = 500; DROP TABLE customers;"
check "cycle 2" exporter now --wait imported
check "the standby has the new writes" [ "$(app2 'SELECT count(*) FROM orders')" = 991 ]
check "and the update" [ "$(app2 'SELECT what FROM orders WHERE id = 500')" = changed ]
check "a table dropped on the primary is gone" grep -q "doesn't exist" <(app2 'SELECT count(*) FROM customers')
check "no work databases are left" [ -z "$(mariadb --no-defaults --socket="$M/standby.sock" -u root --batch --skip-column-names -e "SHOW DATABASES LIKE 'app\_understudy%'")" ]

db1 "CREATE TABLE audit (n INT); CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
	INSERT INTO orders (what) VALUES ('with trigger');"
check "cycle 3, with a trigger" exporter now --wait imported
check "the trigger's table came" [ "$(app2 'SELECT count(*) FROM audit')" = 1 ]
check "swapped, its trigger created again, as the hook says" grep -q "triggers, views, routines or events created again" "$T/c/importer.log"

db1 "INSERT INTO orders (what) VALUES ('cut short')"
echo app_understudy_new > "$T/fail-load-into"
check_fails "cycle 4, its load cut short" exporter now --wait imported
check "the hook failed" grep -q "cut short by the test" "$T/c/importer.log"
check "the live database keeps its tables" [ "$(app2 'SELECT count(*) FROM audit')" = 1 ]
check "and its rows" [ "$(app2 "SELECT count(*) FROM orders")" = 992 ]
echo app > "$T/fail-load-into"
check_fails "cycle 5, the trigger's creation cut short" exporter now --wait imported
check "the tables are the new version's" [ "$(app2 "SELECT count(*) FROM orders WHERE what = 'cut short'")" = 1 ]
check "whole" [ "$(app2 "SELECT count(*) FROM orders")" = 993 ]
rm "$T/fail-load-into"
check "cycle 6 succeeds" exporter now --wait imported
check "with the trigger" [ "$(root2 "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = 'app'")" = orders_ai ]
db1 "DROP TRIGGER orders_ai; CREATE VIEW recent AS SELECT id FROM orders WHERE id > 990; DROP TABLE audit;"
check "cycle 7, a view instead of the trigger" exporter now --wait imported
check "the table dropped on the primary is gone from the standby" grep -q "doesn't exist" <(app2 'SELECT count(*) FROM audit')
check "the trigger too" [ -z "$(root2 "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = 'app'")" ]
check "the view came" [ "$(app2 'SELECT count(*) FROM recent')" -gt 0 ]

# A dump is SQL, never client commands that reach the system.
for f in app.sql app.users.sql; do
	for cmd in '\\! touch' 'system touch'; do
		rm -rf "$T/evil"
		cp -a "$T/c/importer/sources/db/current/data" "$T/evil"
		chmod -R u+w "$T/evil"
		printf '%s %s/pwned\n' "$cmd" "$T" >> "$T/evil/$f"
		UNDERSTUDY_BACKUP_DIR=$T/evil PATH=/usr/bin:/bin "$H/mariadb-import" app $(echo "$c2" | tr -d ,) > "$T/o" 2>&1
		check "an import of a $f holding $cmd fails" [ $? -ne 0 ]
		check "and runs nothing" [ ! -e "$T/pwned" ]
	done
done

importer promote db > "$T/o"
check "promote succeeds" [ $? -eq 0 ]
cat "$T/o"
check "the promoted standby takes the application's writes" [ -z "$(app2 "INSERT INTO orders (what) VALUES ('after promotion')")" ]
check "and keeps them" [ "$(app2 "SELECT count(*) FROM orders WHERE what = 'after promotion'")" = 1 ]
check "the view works there" [ "$(app2 'SELECT count(*) FROM recent')" -gt 0 ]

# Failback: this server takes imports again, with a write of its own.
app2 "INSERT INTO orders (what) VALUES ('never shipped')"
UNDERSTUDY_BACKUP_DIR=$T/c/importer/sources/db/current/data UNDERSTUDY_VERSION=failback \
	"$H/mariadb-import" app --no-defaults --socket "$M/standby.sock" --user root > "$T/o" 2>&1
check "an import onto the promoted server succeeds" [ $? -eq 0 ]
cat "$T/o"
kept=$(sed -n 's/.*in database \([a-z0-9_]*\); drop.*/\1/p' "$T/o")
check "keeping its tables aside, said so" [ -n "$kept" ]
check "with the unshipped write" [ "$(root2 "SELECT count(*) FROM \`$kept\`.orders WHERE what = 'never shipped'")" = 1 ]
check "while app is the version" [ "$(app2 "SELECT count(*) FROM orders WHERE what = 'never shipped'")" = 0 ]
finish
