#!/bin/bash
# A version id far in the future, from a hostile peer or a clock that
# jumped once, made every later version "superseded" for ever, while
# /health said OK with a negative age; only hand-editing the archive got
# out (issue 14, part 4).  Now such ids are refused, data in the future is
# CRITICAL, and "pullbackup forget" is the way out of one already archived.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start || exit 1
check "a cycle" exporter now --wait imported
first=$(standby_version)

# A hostile peer: an event naming a version far in the future is refused,
# on the pull-backup and on the importer.
post() {
	curl -s -o "$T/reply" -w '%{http_code}' -X POST -H 'X-Understudy-Protocol: 1' \
		-H "Authorization: Bearer $(cat "$T/c/token")" \
		--data "{\"proto\":1,\"type\":\"$2\",\"source\":\"db\",\"version\":\"29991231T235959.999Z\",\"peer\":\"http://127.0.0.1:9\"}" \
		"http://127.0.0.1:$1/v1/events"
}
check "the pull-backup refuses a version in the future (400)" [ "$(post "$PB_PORT" backup.ready)" = 400 ]
check "saying why" contains "$T/reply" "ahead of this host's clock"
check "the importer refuses one too (400)" [ "$(post "$IM_PORT" import.ready)" = 400 ]
check "nothing was queued" [ -z "$(ls "$T/c/archive/.queue/inbox")" ]

FT=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2> /dev/null | head -1)
if [ -z "$FT" ]; then
	echo "skip - no libfaketime here (apt-get install faketime)"
	finish
fi
# The three hosts' clocks jump a day ahead, once: a version is exported,
# archived and imported in the future.  (Monotonic time stays true, as
# after a real jump.)
chain_stop
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
CHAIN_ENV="LD_PRELOAD=$FT FAKETIME=+1d FAKETIME_DONT_FAKE_MONOTONIC=1"
chain_start || exit 1
echo "in the future" > "$S/f"
check "a cycle a day ahead" exporter now --wait imported
future=$(standby_version)
check "which made a version in the future" [ "$future" \> "$first" ]

# The clocks come back.
chain_stop
CHAIN_ENV=
chain_start || exit 1
pullbackup check > "$T/o"
check "the pull-backup's health is CRITICAL for data in the future" [ $? -eq 2 ]
check "saying so" contains "$T/o" "in the future"
importer check > "$T/o"
check "so is the importer's" [ $? -eq 2 ]
exporter check > "$T/o"
check "and the exporter's" [ $? -eq 2 ]
echo "back to the present" > "$S/f"
exporter now --wait archived --timeout 20s > "$T/o" 2>&1
check "a new export is superseded by the version in the future" contains "$T/o" "superseded"
check "the exporter's ids start again from its clock" \
	grep -q "ids start again from the clock" "$T/c/exporter.log"

# The way out: forget the version in the future, daemon stopped.
pullbackup forget db "$future" > "$T/o" 2>&1
check "forget refuses while the daemon runs (exit 1)" [ $? -eq 1 ]
check "saying to stop it" contains "$T/o" "stop it first"
chain_stop
pullbackup forget db "$first" > "$T/o" 2>&1
check "forget takes only the newest version" [ $? -eq 1 ]
check "saying so" contains "$T/o" "only the newest version"
pullbackup forget db "$future" > "$T/o"
check "forget of the version in the future exits 0" [ $? -eq 0 ]
check "and says what is newest now" contains "$T/o" "the newest is now $first"
pullbackup verify db --all > "$T/o"
check "the archive verifies after it" [ $? -eq 0 ]
check "with one version left" [ "$(pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
chain_start || exit 1
check "the next cycle reaches the standby" exporter now --wait imported
check "over the importer's copy from the future" same_tree "$S" "$T/standby"
check "whose warning says so" grep -q "in the future; importing" "$T/c/importer.log"
check "and every health is OK again" pullbackup check
check "on the importer too" importer check
finish
