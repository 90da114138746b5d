#!/bin/bash
# Promotion: refused while an import runs and after a failed import (unless
# --force); then no more imports, the pull-backup stops pushing there and
# shows it; the promote hook gets the last verified copy; asking again is
# harmless; a promotion cut short is finished by asking again.
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

# No more imports; the pull-backup stops pushing and says why.
echo four > "$S/f"
exporter now --wait imported --timeout 30s > /dev/null 2> "$T/e5"
check "a cycle to a promoted standby does not report imported (exit 1)" [ $? -eq 1 ]
check "and the reason says promoted" contains "$T/e5" "promoted"
check "the archive still takes the version" exporter now --wait archived
check "the standby's copy stayed at the promoted version" \
	[ "$(standby_version)" = "$v2" ]
pullbackup status > "$T/pst"
check "the pull-backup shows the importer promoted" contains "$T/pst" "state: promoted"
n=$(grep -c "refused by" "$T/c/pullbackup.log")
check "after the first refusal the pull-backup pushes no more ($n refusal)" [ "$n" = 1 ]

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
