#!/bin/bash
# A version whose served file no longer matches its manifest is never
# archived: the pull-backup checks every SHA-256, retries, reports it, and the
# failure reaches "now".  Also: an event waits in the exporter's outbox
# until its pull-backup is up.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S" && echo "original content" > "$S/f" && echo other > "$S/g"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_tls || exit 1
chain_start || exit 1
check "a first good cycle" exporter now --wait imported
first=$(ls "$T/c/exporter/exports" | sort | tail -1)

# The pull-backup goes down; an export happens; its event waits.
kill -TERM "$PID_pullbackup"
wait "$PID_pullbackup"
echo "changed content" > "$S/f"
exporter now --wait archived --timeout 90s > "$T/now.out" 2> "$T/now.err" &
now=$!
for i in $(seq 1 50); do
	v=$(ls "$T/c/exporter/exports" | grep -v tmp | sort | tail -1)
	[ -f "$T/c/exporter/exports/$v/manifest" ] && [ "$v" != "$first" ] && break
	sleep 0.2
done
sleep 1
exporter status > "$T/status"
check "the undelivered event is in the exporter's outbox" contains "$T/status" "backup.ready"
# Same size, other bytes: only the hash can tell.
printf 'CHANGED content\n' > "$T/c/exporter/exports/$v/data/f.new"
mv "$T/c/exporter/exports/$v/data/f.new" "$T/c/exporter/exports/$v/data/f"
chain_start_one "$PULLBACKUP" pullbackup || exit 1
wait $now
rc=$?
cat "$T/now.out" "$T/now.err"
check "now reports the failure (exit 1)" [ $rc -eq 1 ]
check "the reason is the SHA-256 mismatch" contains "$T/now.err" "SHA-256"
check "the pull-backup retried before reporting it" grep -q "attempt 1, next in" "$T/c/pullbackup.log"
pullbackup list db --json > "$T/list.json"
check "the archive still holds only the first version" [ "$(python3 -c 'import json,sys; print(len([v for v in json.load(open(sys.argv[1])) if v["state"] == "completed"]))' "$T/list.json")" = 1 ]
check "list shows the failed pull, retried while it is the newest" python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
sys.exit(0 if l[0]["state"] == "retrying" and "SHA-256" in l[0]["error"] else 1)' "$T/list.json"
pullbackup list db
check "pullbackup verify --all passes" pullbackup verify db --all
check "status says it is retried, and why" eval 'pullbackup status | grep -A6 "^ *retrying" | grep -q "SHA-256"'

check "the standby still has the first version" [ "$(cat "$T/standby/f")" = "original content" ]
finish
