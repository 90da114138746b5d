#!/bin/bash
# The command line as interface.md says: --help and --version without a
# config, exit codes, config errors with FILE:LINE:COL, check-config,
# status of a daemon that is not running, readiness for systemd, and a
# clean stop on SIGTERM.
source "$SRC/tests/it_lib.sh"

for p in "$EXPORTER" "$PULLBACKUP" "$IMPORTER"; do
	n=$(basename "$p")
	check "$n --help exits 0" "$p" --help
	check "$n --version exits 0" "$p" --version
	"$p" -c /nonexistent.yaml frobnicate 2> "$T/err"
	check "$n: unknown verb exits 2" [ $? -eq 2 ]
	check "$n: unknown verb is named" contains "$T/err" 'unknown verb "frobnicate"'
	"$p" -c /nonexistent.yaml check-config 2> "$T/err"
	check "$n: missing config exits 2" [ $? -eq 2 ]
	check "$n: missing config is named" contains "$T/err" "/nonexistent.yaml: cannot read"
	"$p" 2> "$T/err"
	check "$n: no verb exits 2" [ $? -eq 2 ]
done

make_copy_hooks
mkdir -p "$T/src"
chain_setup "$T/c" "[$T/export-hook, $T/src]" "[$T/import-hook, $T/standby]"
for r in exporter pullbackup importer; do
	out=$("$BUILD"/$r/understudy-$r -c "$T/c/$r.yaml" check-config)
	check "$r check-config prints configuration OK" [ "$out" = "configuration OK" ]
done
printf 'source: db\nlisten: 127.0.0.1:1\nbogus: 1\n' > "$T/bad.yaml"
"$EXPORTER" -c "$T/bad.yaml" check-config 2> "$T/err"
check "a bad config exits 2" [ $? -eq 2 ]
check "a bad config error has FILE:LINE:COL" contains "$T/err" "$T/bad.yaml:3:1: unknown key \"bogus\""
check "the error is one line" [ "$(wc -l < "$T/err")" = 1 ]

exporter status 2> "$T/err"
check "status with no daemon exits 1" [ $? -eq 1 ]
check "status with no daemon says it cannot reach it" contains "$T/err" "cannot reach the exporter"
pullbackup list db 2> "$T/err"
check "list before any version exits 1" [ $? -eq 1 ]
pullbackup list nope 2> "$T/err"
check "list of an unknown source exits 2" [ $? -eq 2 ]
pullbackup restore db "$T/r" 2> "$T/err"
check "restore without --at is a usage error" [ $? -eq 2 ]

# Readiness: the daemon tells systemd through NOTIFY_SOCKET.
python3 - "$T/notify.sock" > "$T/notify.out" <<'EOP' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print(s.recv(4096).decode())
EOP
listener=$!
sleep 0.5
NOTIFY_SOCKET=$T/notify.sock "$EXPORTER" -c "$T/c/exporter.yaml" serve 2> "$T/c/exporter.log" &
pid=$!
wait $listener
check "serve sends READY=1 to NOTIFY_SOCKET" grep -q "READY=1" "$T/notify.out"

# A second daemon on the same port fails clearly.
"$EXPORTER" -c "$T/c/exporter.yaml" serve 2> "$T/err2"
check "a second daemon on the same port exits 1" [ $? -eq 1 ]
check "it says it cannot listen" contains "$T/err2" "cannot listen on 127.0.0.1:$EX_PORT"

kill -TERM $pid
wait $pid
check "SIGTERM stops the daemon with exit 0" [ $? -eq 0 ]
check "the log says it stopped" contains "$T/c/exporter.log" "exporter: stopped"

# Archive verbs on a real archive.
chain_start || exit 1
echo a > "$T/src/a"
exporter now --wait archived > /dev/null
echo b > "$T/src/a"
exporter now --wait archived > /dev/null
pullbackup list db > "$T/list"
check "list shows two versions" [ "$(grep -c '^2026\|^20[0-9][0-9]' "$T/list")" = 2 ]
pullbackup restore db --at 5Y "$T/r" 2> "$T/err"
check "restore before the oldest exits 1" [ $? -eq 1 ]
check "it names the oldest version" contains "$T/err" "before the oldest version"
pullbackup restore db --at 1B "$T/r" > /dev/null
check "restore --at 1B gives the older content" [ "$(cat "$T/r/a")" = a ]
mkdir -p "$T/r2" && echo x > "$T/r2/occupied"
pullbackup restore db --at now "$T/r2" 2> "$T/err"
check "restore into a non-empty directory is refused" [ $? -eq 1 ]
check "and says why" contains "$T/err" "not empty"

# The schedule starts cycles by itself, and retention keeps the last N.
chain_stop
sed -i 's/^schedule: .*/schedule: 1s/' "$T/c/exporter.yaml"
sed -i 's/keep_last: .*}/keep_last: 2}/' "$T/c/pullbackup.yaml"
chain_start || exit 1
for i in $(seq 1 100); do
	n=$(pullbackup list db --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null)
	grep -q "retention removed version" "$T/c/pullbackup.log" && break
	sleep 0.2
done
check "scheduled exports ran" grep -q "started (schedule)" "$T/c/exporter.log"
check "retention removed old versions" grep -q "retention removed version" "$T/c/pullbackup.log"
n=$(pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "keep_last 2 keeps at most 2 versions (has $n)" [ "$n" -le 2 ]
pullbackup restore db --at 1B "$T/r3" > /dev/null 2>&1 || pullbackup restore db --at now "$T/r3" > /dev/null
check "what is left restores" [ -f "$T/r3/a" ]
finish
