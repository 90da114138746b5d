#!/bin/bash
# Clocks (issue 14, part 4; issue 16, part 6).  A version id far in the
# future (a hostile peer) is refused.  Within a day, versions are taken
# and stay ordered whatever the clocks do: all three clocks a day ahead
# and back, an exporter an hour ahead, one whose clock steps back, a
# reinstalled exporter with empty state and a clock an hour behind; the
# exporter learns where the archive stands, nothing is refused for ever,
# and no one has to do anything.  Data in the future is CRITICAL until
# the next version arrives.
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
check "the next cycle goes through by itself" exporter now --wait imported --timeout 60s
after=$(standby_version)
check "numbered after the version in the future (ordered)" [ "$after" \> "$future" ]
check "the exporter said why" grep -q "numbering this one after it" "$T/c/exporter.log"
check "and every health is OK again (age from when it arrived)" pullbackup check
check "on the importer too" importer check
check "and the exporter" exporter check

# forget: the newest version of the archive goes (the way out of a
# version an operator does not want), daemon stopped.
pullbackup forget db "$after" > "$T/o" 2>&1
check "forget refuses while the daemon runs (exit 1)" [ $? -eq 1 ]
check "saying to stop it" contains "$T/o" "stop it first"
chain_stop
pullbackup forget db "$first" > "$T/o" 2>&1
check "forget takes only the newest version" [ $? -eq 1 ]
check "saying so" contains "$T/o" "only the newest version"
pullbackup forget db "$after" > "$T/o"
check "forget of the newest exits 0" [ $? -eq 0 ]
check "and says what is newest now" contains "$T/o" "the newest is now $future"
pullbackup verify db --all > "$T/o"
check "the archive verifies after it" [ $? -eq 0 ]
chain_start || exit 1
echo "after forget" > "$S/f"
check "the next cycle reaches the standby" exporter now --wait imported --timeout 60s
check "equal to the source" same_tree "$S" "$T/standby"

# A live host whose clock is an hour ahead: its versions are taken (less
# than a day ahead), and their age is counted from when they arrived.
chain_stop
CHAIN_ENV="LD_PRELOAD=$FT FAKETIME=+1h FAKETIME_DONT_FAKE_MONOTONIC=1"
chain_start_one "$EXPORTER" exporter || exit 1
CHAIN_ENV=
chain_start_one "$PULLBACKUP" pullbackup || exit 1
chain_start_one "$IMPORTER" importer || exit 1
echo "an hour ahead" > "$S/f"
check "exporter an hour ahead: a cycle" exporter now --wait imported --timeout 60s
ahead=$(standby_version)
check "exporter an hour ahead: the pull-backup is OK (not fresh by an hour)" pullbackup check --max-age 10m
check "and the importer" importer check --max-age 10m

# Its clock is set right: it steps back an hour between two versions.
chain_stop
chain_start || exit 1
echo "clock set right" > "$S/f"
check "clock stepped back: the next cycle goes through" exporter now --wait imported --timeout 60s
check "numbered after the last one" [ "$(standby_version)" \> "$ahead" ]

# A reinstalled exporter, with empty state, on a host whose clock is an
# hour behind: its first version is older than the archive's newest.  It
# learns where the archive stands from the refusal and exports again,
# numbered after it; nobody does anything.
chain_stop
last=$(standby_version)
rm -rf "$T/c/exporter"
CHAIN_ENV="LD_PRELOAD=$FT FAKETIME=-1h FAKETIME_DONT_FAKE_MONOTONIC=1"
chain_start_one "$EXPORTER" exporter || exit 1
CHAIN_ENV=
chain_start_one "$PULLBACKUP" pullbackup || exit 1
chain_start_one "$IMPORTER" importer || exit 1
echo "reinstalled" > "$S/f"
exporter now --wait archived --timeout 30s > "$T/o" 2>&1
check "reinstalled: its first version is superseded" contains "$T/o" "superseded"
check "reinstalled: it exports again, numbered after the archive's newest" \
	eventually grep -q "exporting again, numbered after it" "$T/c/exporter.log"
check "reinstalled: that version reaches the standby" \
	eventually eval '[ "$(standby_version)" \> "$last" ] && [ "$(cat "$T/standby/f")" = reinstalled ]'
check "reinstalled: the exporter's health is OK then" eventually exporter check
finish
