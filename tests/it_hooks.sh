#!/bin/bash
# Failing hooks: a failed export notifies nobody and leaves archive and
# standby untouched; a failed import keeps the last good copy and is
# reported all the way back; two exports never overlap.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start || exit 1

touch "$S.fail"
exporter now --wait imported > "$T/o1" 2> "$T/e1"
rc=$?
cat "$T/e1"
check "a failing export hook makes now exit 1" [ $rc -eq 1 ]
check "the reason names the hook's exit status" contains "$T/e1" "export hook exited with status 3"
exporter status > "$T/s1"
check "status keeps the hook's output" contains "$T/s1" "boom, as asked"
check "the archive is untouched" [ ! -e "$T/c/archive/db/HEAD" ]
check "the standby is untouched" [ ! -e "$T/standby" ]
check "the failed export left no directory" [ -z "$(ls "$T/c/exporter/exports")" ]

rm "$S.fail"
check "a good cycle after the failure" exporter now --wait imported
check "standby has version 1" same_tree "$S" "$T/standby"
tree_sig "$S" > "$T/sig1"
v1=$(standby_version)

echo two > "$S/f"
echo new > "$S/g"
touch "$T/standby.fail"
exporter now --wait imported > "$T/o2" 2> "$T/e2"
rc=$?
cat "$T/o2" "$T/e2"
check "a failing import hook makes now --wait imported exit 1" [ $rc -eq 1 ]
check "the reason reaches the exporter" contains "$T/e2" "import hook exited with status 4"
check "the archive has the new version" [ "$(pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]
importer status --json > "$T/is.json"
check "the importer keeps its last good copy" [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sources"][0]["current_version"])' "$T/is.json")" = "$v1" ]
check "the importer's copy is still version 1" diff <(tree_sig "$T/c/importer/sources/db/current/data") "$T/sig1"
check "the standby is still version 1" diff <(tree_sig "$T/standby") "$T/sig1"
check "importer status says the import failed" contains "$T/is.json" '"result":"failed"'
check "importer status keeps the hook output" contains "$T/is.json" "refusing, as asked"
pullbackup status > "$T/ps"
check "pull-backup status shows the importer failed" contains "$T/ps" "state: failed"

# The next cycle after the fix succeeds.
rm "$T/standby.fail"
check "the cycle after the fix succeeds" exporter now --wait imported
check "standby now equals the source" same_tree "$S" "$T/standby"

# Two exports never overlap.
echo 3 > "$S.slow"
exporter now --wait archived > "$T/o3" 2>&1 &
slow=$!
sleep 1
exporter now > "$T/o4" 2> "$T/e4"
rc=$?
cat "$T/e4"
check "a second export while one runs is refused" [ $rc -eq 1 ]
check "the refusal says one is running" contains "$T/e4" "already running"
wait $slow
check "the first export still completes" [ $? -eq 0 ]
rm "$S.slow"

# The pull-backup restarts after pushing, before the importer reports: the
# report still reaches the exporter.
chain_stop
sed -i "s|import_command: .*|import_command: [$T/slow-import-hook, $T/standby]|" "$T/c/importer.yaml"
cat > "$T/slow-import-hook" <<'EOH'
#!/bin/sh
sleep 2
exec "$(dirname "$0")/import-hook" "$@"
EOH
chmod +x "$T/slow-import-hook"
chain_start || exit 1
echo "push restart" > "$S/f"
exporter now --wait imported --timeout 60s > "$T/o6" 2>&1 &
nowpid=$!
for i in $(seq 1 100); do
	grep -q "importing version" "$T/c/importer.log" 2>/dev/null && break
	sleep 0.1
done
kill -TERM "$PID_pullbackup"; wait "$PID_pullbackup"
chain_start_one "$PULLBACKUP" pullbackup || exit 1
wait $nowpid
check "the import report crosses a pull-backup restart" [ $? -eq 0 ]
check "the pull-backup pushed again after its restart" grep -q "pushing version .* again after the restart" "$T/c/pullbackup.log"
sed -i "s|import_command: .*|import_command: [$T/import-hook, $T/standby]|" "$T/c/importer.yaml"

# After a restart, the daemons carry on: state is reloaded.
chain_stop
chain_start || exit 1
importer status > "$T/s5"
check "importer status survives a restart" contains "$T/s5" "current_version"
echo four > "$S/f"
check "a cycle after a restart" exporter now --wait imported
check "standby equals the source after a restart" same_tree "$S" "$T/standby"

# SIGTERM while an import hook runs: the hook is stopped, the last good copy
# stays, the event stays queued, and the import completes after a restart.
sig_before=$(tree_sig "$T/c/importer/sources/db/current/data")
cat > "$T/slow-import-hook" <<'EOH'
#!/bin/sh
if [ -e "$1.slow" ]; then echo "slow import starting"; sleep 30; fi
exec "$(dirname "$0")/import-hook" "$@"
EOH
chmod +x "$T/slow-import-hook"
chain_stop
sed -i "s|import_command: .*|import_command: [$T/slow-import-hook, $T/standby]|" "$T/c/importer.yaml"
touch "$T/standby.slow"
chain_start || exit 1
echo five > "$S/f"
exporter now --wait archived > /dev/null
for i in $(seq 1 50); do
	grep -q "slow import starting" "$T/c/importer.log" && break
	sleep 0.2
done
check "the slow import hook is running" grep -q "slow import starting" "$T/c/importer.log"
kill -TERM "$PID_importer"
start=$(date +%s)
wait "$PID_importer"
rc=$?
took=$(( $(date +%s) - start ))
check "SIGTERM during an import exits 0" [ $rc -eq 0 ]
check "and does not wait for the 30 s hook (took ${took}s)" [ "$took" -lt 15 ]
check "the last good copy is untouched" diff <(tree_sig "$T/c/importer/sources/db/current/data") <(echo "$sig_before")
check "the verified copy is kept to resume" [ -e "$T/c/importer/sources/db/next/data.version" ]
check "the event is still queued" [ -n "$(ls "$T/c/importer/queue/inbox")" ]
rm "$T/standby.slow"
chain_start_one "$IMPORTER" importer || exit 1
for i in $(seq 1 100); do
	same_tree "$S" "$T/c/importer/sources/db/current/data" 2> /dev/null && break
	sleep 0.2
done
check "after a restart the import completes" same_tree "$S" "$T/c/importer/sources/db/current/data"
check "resuming fetched nothing again" grep -q "2 resumed" "$T/c/importer.log"
check "and the standby equals the source" same_tree "$S" "$T/standby"
finish
