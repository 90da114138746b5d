#!/bin/bash
# Regression: the last pull and the last import follow one rule.  Before,
# the pull-backup recorded a failed attempt that would be retried as its
# last pull (so check warned while it retried) and forgot it at a restart,
# where the importer did neither.  Now in both roles a result is a job that
# ended, a retry shows as "retrying", and results survive a restart.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start || exit 1
check "a first cycle" exporter now --wait imported

field() {
	# field ROLE PATH: a field of the first source's status, or "-".
	$1 status --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["sources"][0]
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("-" if v is None else v)' "$2"
}

v1=$(field pullbackup last_pull.version)
check "the pull-backup's last pull is the cycle's" [ "$v1" != "-" ]
check "the importer's last import is the cycle's" \
	[ "$(field importer last_import.version)" = "$v1" ]

# Both survive a restart.
chain_stop
chain_start || exit 1
check "after a restart the last pull is still there" \
	[ "$(field pullbackup last_pull.version)" = "$v1" ]
check "and ok" [ "$(field pullbackup last_pull.result)" = ok ]
check "after a restart the last import is still there" \
	[ "$(field importer last_import.version)" = "$v1" ]
curl -s -H "Authorization: Bearer $(cat "$T/c/token")" \
	"http://127.0.0.1:$PB_PORT/metrics" > "$T/m"
check "the last success is known to /metrics after a restart" \
	grep -q '^understudy_last_success_timestamp_seconds{source="db"} ' "$T/m"

# A pull that fails and will be retried is not a result: it shows as
# retrying, and the pull-backup's check does not warn.
kill -TERM "$PID_pullbackup"
wait "$PID_pullbackup"
UNDERSTUDY_FAULT=enospc:staging-write "$PULLBACKUP" -c "$T/c/pullbackup.yaml" \
	serve >> "$T/c/pullbackup.log" 2>&1 &
PID_pullbackup=$!
CHAIN_PIDS+=($PID_pullbackup)
for i in $(seq 1 50); do pullbackup status > /dev/null 2>&1 && break; sleep 0.1; done
echo two > "$S/f"
exporter now --wait archived --timeout 1s > /dev/null 2>&1
retrying() { [ "$(field pullbackup retrying.attempts)" != "-" ]; }
check "a failed attempt shows as retrying" eventually retrying
check "naming the error" contains <(field pullbackup retrying.error) \
	"No space left on device"
check "the last pull is still the last that ended" \
	[ "$(field pullbackup last_pull.version)" = "$v1" ]
pullbackup check > "$T/o"
check "check is OK while it retries (exit 0)" [ $? -eq 0 ]
cat "$T/o"

# Failed three times: now the failure is the last pull, and check warns;
# it is still retried, for as long as the version is the newest.
gave_up() { [ "$(field pullbackup last_pull.result)" = failed ]; }
for i in $(seq 1 30); do gave_up && break; sleep 1; done
check "failed three times, the failure is the last pull" gave_up
check "and it is still retried" [ "$(field pullbackup retrying.attempts)" -ge 3 ]
pullbackup check > "$T/o"
check "check warns once it failed three times (exit 1)" [ $? -eq 1 ]
check "saying the last pull failed" contains "$T/o" "the last pull failed"

# Room again: the retry gets through by itself (the next attempt is at
# most 20 s away), and the warning goes.
kill -TERM "$PID_pullbackup"
wait "$PID_pullbackup"
chain_start_one "$PULLBACKUP" pullbackup || exit 1
check "with room again, the version is pulled with no one asking" \
	eventually eval '[ "$(field pullbackup last_pull.result)" = ok ] || { sleep 5; false; }'
check "and check is OK" pullbackup check
finish
