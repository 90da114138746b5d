#!/bin/bash
# Hostile peers (issue 15, part 6): a lying exporter in front of a real
# pull-backup, then a lying pull-backup in front of a real importer
# (tests/hostile_peer.py: path tricks, huge counts and sizes, lying sizes
# and bytes, garbage deltas, a body that never ends, a reply cut short, a
# peer that sends a byte a second, a zstd bomb, zstd garbage, an encoding
# not asked for).
# After each: nothing is committed or imported, nothing is written outside
# the daemon's directories, the daemon says why in its log and still
# answers /health; and a good version afterwards goes through.
source "$SRC/tests/it_lib.sh"

copy_chain
# Both ask for zstd: a liar's compressed replies (a bomb, garbage, an
# encoding not asked for) are refused; its plain ones still do.
sed -i 's/^    importers: \(.*\)$/    importers: \1\n    compress: zstd/' "$T/c/pullbackup.yaml"
sed -i 's/^    hook_timeout: 5m$/    hook_timeout: 5m\n    compress: zstd/' "$T/c/importer.yaml"
echo good > "$T/scenario"
# liar PORT LOG: start tests/hostile_peer.py on PORT, wait until it answers.
liar() {
	local i
	python3 "$SRC/tests/hostile_peer.py" "$1" "$T/scenario" 2> "$2" &
	CHAIN_PIDS+=($!)
	for i in $(seq 1 50); do
		curl -s -m 1 -o /dev/null "http://127.0.0.1:$1/x" && return 0
		sleep 0.1
	done
	return 1
}
liar "$EX_PORT" "$T/hostile-ex.log" || exit 1
# A transfer fails when less than 64 KiB moved in 120 s; here in 4 s
# (fault.h), for the slow peer's sake.
CHAIN_ENV=UNDERSTUDY_FAULT=timeout:4
chain_start_one "$PULLBACKUP" pullbackup || exit 1
chain_start_one "$IMPORTER" importer || exit 1
CHAIN_ENV=
TOKEN=$(cat "$T/c/token")
vid() { date -u +%Y%m%dT%H%M%S.%3NZ; }

# post PORT TYPE VERSION: an event from a peer with the secret.
post() {
	curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
		-H "X-Understudy-Protocol: 1" -H "Content-Type: application/json" \
		--data-binary "{\"proto\":1,\"type\":\"$2\",\"source\":\"db\",\"version\":\"$3\",\"peer\":\"http://127.0.0.1:$1\",\"files\":1,\"bytes\":6}" \
		"http://127.0.0.1:$1/v1/events"
}
# failed LOG VERSION: the daemon logged that its job on VERSION failed.
# (A retry's backoff may come first: up to 30 s.)
failed() { eventually grep -q "version $2 failed" "$1" || eventually grep -q "version $2 failed" "$1" ||
	eventually grep -q "version $2 failed" "$1"; }
answers() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" != 000 ]; }

v=$(vid)
check "a good version is announced" [ "$(post "$PB_PORT" backup.ready "$v")" = 200 ]
check "and archived" eventually eval '[ "$(cat "$T/c/archive/db/HEAD" 2> /dev/null)" = "$v" ]' 
good=$v
for s in path absolute count hugesize lie-long lie-content endless garbage short-close slow \
	zstd-bomb zstd-garbage gzip; do
	sleep 0.01
	echo "$s" > "$T/scenario"
	v=$(vid)
	post "$PB_PORT" backup.ready "$v" > /dev/null
	check "$s: the pull-backup's pull fails" failed "$T/c/pullbackup.log" "$v"
	check "$s: at once, its first attempt (not waiting for the last one's backoff)" \
		eval 'grep -m1 "version $v failed" "$T/c/pullbackup.log" | grep -q "(attempt 1,"' 
	check "$s: nothing is committed" [ "$(cat "$T/c/archive/db/HEAD")" = "$good" ]
	check "$s: the pull-backup answers /health" answers "$PB_PORT"
done
check "nothing was written outside the archive" eval '[ ! -e "$T/c/escape" ] && [ ! -e "$T/c/archive/escape" ] && [ ! -e /tmp/understudy-escape ]'
check "the archive verifies" pullbackup verify db
grep -E "failed \(attempt 1" "$T/c/pullbackup.log" | sed 's/^/    /' | cut -c1-220 | head -12
check "the count was refused from the bytes, not allocated" grep -q "entries" "$T/c/pullbackup.log"
check "the endless body was cut at the manifest's size" grep -Eiq "larger than|more than|too (long|large)" "$T/c/pullbackup.log"
check "the zstd bomb was cut at the manifest's size" \
	grep -q "failed.*more bytes than the manifest says" "$T/c/pullbackup.log"
check "zstd garbage was called damaged" grep -q "failed.*damaged compressed reply" "$T/c/pullbackup.log"
check "an encoding not asked for was refused" grep -q 'failed.*sent the reply as "gzip", not asked for' "$T/c/pullbackup.log"
check "the slow peer was given up for making no progress" grep -Eq "version [0-9TZ.]* failed.*no progress: [0-9]* bytes in the last 4 s" "$T/c/pullbackup.log"
echo good > "$T/scenario"
v=$(vid)
post "$PB_PORT" backup.ready "$v" > /dev/null
# (after the backoff of the last failure, 10 s at most)
head_is() { eventually eval '[ "$(cat "$T/c/archive/db/HEAD")" = "$v" ]'; }
head_is || { sleep 10; head_is; }
check "a good version goes through afterwards" eval '[ "$(cat "$T/c/archive/db/HEAD")" = "$v" ]' 
check "and reaches the standby" eventually grep -qx "hello" "$T/standby/f"

# The importer's pull-backup lies: the real one stops, a liar takes its
# port.
kill "$PID_pullbackup"
wait "$PID_pullbackup" 2> /dev/null
sleep 0.5
liar "$PB_PORT" "$T/hostile-pb.log" || exit 1
imported=$(standby_version)
hooks=$(grep -c "import hook: started" "$T/c/importer.log")
for s in path absolute count lie-long lie-content endless garbage short-close slow \
	zstd-bomb zstd-garbage gzip; do
	sleep 0.01
	echo "$s" > "$T/scenario"
	v=$(vid)
	post "$IM_PORT" import.ready "$v" > /dev/null
	check "$s: the importer's fetch fails" failed "$T/c/importer.log" "$v"
	check "$s: nothing is imported, the standby is as it was" eval '[ "$(standby_version)" = "$imported" ] && grep -qx hello "$T/standby/f"'
	check "$s: the importer answers /health" answers "$IM_PORT"
done
check "the import hook never ran for them" [ "$(grep -c "import hook: started" "$T/c/importer.log")" -eq "$hooks" ]
check "nothing was written outside the importer's state" eval '[ ! -e "$T/c/importer/escape" ] && [ ! -e "$T/c/escape" ] && [ ! -e /tmp/understudy-escape ]'
finish
