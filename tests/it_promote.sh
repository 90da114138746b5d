#!/bin/bash
# Promotion: refused while an import runs and after a failed import (unless
# --force); then no more imports, a new generation that fences the old
# primary off (issue 14, part 1); the promote hook gets the last verified
# copy; asking again is harmless; a promotion cut short is finished by
# asking again.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S" && echo one > "$S/f"
cat > "$T/promote-hook" <<'EOH'
#!/bin/sh
[ -e "$1.fail" ] && { echo "promote hook: refusing, as asked" >&2; exit 5; }
echo "$UNDERSTUDY_SOURCE $UNDERSTUDY_VERSION $UNDERSTUDY_BACKUP_DIR" >> "$1"
echo "promoted $UNDERSTUDY_VERSION"
EOH
cat > "$T/maybe-slow-import" <<'EOH'
#!/bin/sh
[ -e "$1.slow" ] && sleep 4
exec "$(dirname "$0")/import-hook" "$@"
EOH
chmod +x "$T/promote-hook" "$T/maybe-slow-import"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/maybe-slow-import, $T/standby]"
sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$T/promote-hook, $T/promoted.log]|" "$T/c/importer.yaml"
chain_start || exit 1
check "a first cycle" exporter now --wait imported

# Refused while an import runs.
touch "$T/standby.slow"
echo two > "$S/f"
exporter now --wait imported > /dev/null 2>&1 &
nowpid=$!
for i in $(seq 1 100); do
	grep -q "importing version" <(tail -2 "$T/c/importer.log") && break
	sleep 0.1
done
importer promote db 2> "$T/e1"
check "promote while an import runs is refused (exit 1)" [ $? -eq 1 ]
check "saying an import is running" contains "$T/e1" "is running"
wait $nowpid
rm "$T/standby.slow"
v2=$(standby_version)

# Refused after a failed import, unless forced.
touch "$T/standby.fail"
echo three > "$S/f"
exporter now --wait imported > /dev/null 2>&1
importer promote db 2> "$T/e2"
check "promote after a failed import is refused (exit 1)" [ $? -eq 1 ]
check "naming the failure and --force" contains "$T/e2" "--force"
rm "$T/standby.fail"

importer promote db --force > "$T/o3"
check "promote --force succeeds" [ $? -eq 0 ]
cat "$T/o3"
check "it says this host takes no more imports" contains "$T/o3" "takes no more imports"
check "the promote hook ran once" [ "$(wc -l < "$T/promoted.log")" = 1 ]
check "with the source, the last imported version and the verified copy" \
	grep -q "^db $v2 $T/c/importer/sources/db/current/data\$" "$T/promoted.log"
importer status > "$T/st"
check "status shows the host promoted" contains "$T/st" "role_of_this_host: promoted"

importer promote db > "$T/o4"
check "promoting again is harmless (exit 0)" [ $? -eq 0 ]
check "and says it was already promoted" contains "$T/o4" "already promoted"
check "without running the hook again" [ "$(wc -l < "$T/promoted.log")" = 1 ]

# The old primary is fenced: the promotion started generation 2, the
# pull-backup heard of it and refuses the old primary's versions, so
# nothing of it reaches the archive or a standby; its now says so at once,
# naming the promotion; its check and its schedule too.  (It used to
# archive them and push them to the other standbys: split brain.)
pullbackup status > "$T/pst"
check "the pull-backup is in generation 2" contains "$T/pst" "generation: 2"
check "and knows where it started" contains "$T/pst" "host: $(hostname)"
nversions=$(pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo four > "$S/f"
exporter now --wait archived --timeout 30s > /dev/null 2> "$T/e5"
check "the old primary's cycle fails (exit 1)" [ $? -eq 1 ]
check "naming the promotion" grep -q "promotion on $(hostname) at .*(version $v2)" "$T/e5"
check "nothing reached the archive" \
	[ "$(pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$nversions" ]
check "the standby's copy stayed at the promoted version" \
	[ "$(standby_version)" = "$v2" ]
exporter check > "$T/ck"
check "the old primary's check is CRITICAL" [ $? -eq 2 ]
check "saying it is fenced" contains "$T/ck" "fenced"
exporter status > "$T/est"
check "its status shows what fenced it" contains "$T/est" "fenced_by:"
check "and no next export" bash -c "! grep -q next_export '$T/est'"
exporter now > /dev/null 2> "$T/e5b"
check "now on a fenced exporter fails at once" [ $? -eq 1 ]
check "saying so" contains "$T/e5b" "fenced"
n=$(grep -c "refused by" "$T/c/pullbackup.log")
check "the pull-backup pushed nothing to the promoted standby ($n refusals)" [ "$n" = 0 ]

# Across a restart the promotion holds.
chain_stop
chain_start || exit 1
importer status > "$T/st2"
check "promoted after a restart" contains "$T/st2" "role_of_this_host: promoted"
c=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Understudy-Protocol: 1' \
	-H "Authorization: Bearer $(cat "$T/c/token")" \
	--data '{"proto":1,"type":"import.ready","source":"db","version":"29991231T000000.000Z","peer":"x"}' \
	"http://127.0.0.1:$IM_PORT/v1/events")
check "an import.ready is answered 409" [ "$c" = 409 ]

# A promotion cut short: the importer dies right after marking it; the
# command finishes it directly.
chain_stop
rm "$T/c/importer/sources/db/promoted.json" "$T/promoted.log"
UNDERSTUDY_FAULT=promote-marked "$IMPORTER" -c "$T/c/importer.yaml" serve >> "$T/c/importer.log" 2>&1 &
ipid=$!
for i in $(seq 1 50); do importer status > /dev/null 2>&1 && break; sleep 0.1; done
importer promote db --force > "$T/o6" 2> "$T/e6"
rc=$?
wait $ipid
check "the importer died at the fault point" [ $? -eq 86 ]
check "promote still completes (exit $rc)" [ $rc -eq 0 ]
check "directly, saying so" contains "$T/e6" "promoting directly"
check "the hook ran" [ -s "$T/promoted.log" ]
check "the marker says promoted" grep -q '"state":"promoted"' "$T/c/importer/sources/db/promoted.json"

# A promote hook that fails leaves the source refusing imports; once the
# hook is fixed, asking again finishes it.
rm "$T/c/importer/sources/db/promoted.json" "$T/promoted.log"
touch "$T/promoted.log.fail"
chain_start_one "$IMPORTER" importer || exit 1
importer promote db --force > "$T/o7" 2> "$T/e7"
check "a failing promote hook makes promote exit 1" [ $? -eq 1 ]
check "saying the hook failed" contains "$T/e7" "promote hook failed"
check "the marker says promoting" grep -q '"state":"promoting"' "$T/c/importer/sources/db/promoted.json"
c=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Understudy-Protocol: 1' \
	-H "Authorization: Bearer $(cat "$T/c/token")" \
	--data '{"proto":1,"type":"import.ready","source":"db","version":"29991231T000000.000Z","peer":"x"}' \
	"http://127.0.0.1:$IM_PORT/v1/events")
check "while promoting, imports are refused" [ "$c" = 409 ]
rm "$T/promoted.log.fail"
check "asking again once the hook is fixed succeeds" importer promote db
check "the marker says promoted" grep -q '"state":"promoted"' "$T/c/importer/sources/db/promoted.json"
finish
