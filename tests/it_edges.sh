#!/bin/bash
# The edges operators hit (issue 14, "The edges"), each a regression test
# named after what broke.
source "$SRC/tests/it_lib.sh"

copy_chain
mkdir -p "$S/d"
echo "in d" > "$S/d/g"
ln -s f "$S/link"
printf 'UTF-8 name\n' > "$S/été.txt"
chain_start || exit 1
check "a cycle" exporter now --wait imported

# A cron line that never fires passed check-config; a token file others
# can read was taken silently; "Authorization: bearer" (lower case) was
# refused.
cp "$T/c/exporter.yaml" "$T/cron.yaml"
sed -i 's/^schedule: .*/schedule: "0 0 31 2 *"/' "$T/cron.yaml"
"$EXPORTER" -c "$T/cron.yaml" check-config > "$T/o" 2>&1
check "a cron line that never fires is a config error (exit 2)" [ $? -eq 2 ]
check "saying so" contains "$T/o" "never fires"
chmod 644 "$T/c/token"
exporter check-config > "$T/o" 2>&1
check "check-config warns of a token file others can read" \
	contains "$T/o" "readable by others (mode 0644): chmod 600 it"
check "and still says the config is OK" contains "$T/o" "configuration OK"
chmod 600 "$T/c/token"
exporter check-config > "$T/o" 2>&1
check "no warning once it is 0600" bash -c "! grep -q warning '$T/o'"
c=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Understudy-Protocol: 1' \
	-H "Authorization: bearer $(cat "$T/c/token")" "http://127.0.0.1:$EX_PORT/v1/status")
check "the auth scheme's name is case-insensitive" [ "$c" = 200 ]

# restore SOURCE/PATH of one file or symlink crashed after writing it
# (the entry's path was renamed in the manifest, then freed).
pullbackup restore db/f --at now "$T/one-f" > "$T/o" 2>&1
check "restore of one file exits 0" [ $? -eq 0 ]
check "and gives the file" cmp "$S/f" "$T/one-f"
pullbackup restore db/link --at now "$T/one-link" > "$T/o" 2>&1
check "restore of one symlink exits 0" [ $? -eq 0 ]
check "and gives the symlink" [ "$(readlink "$T/one-link")" = f ]
pullbackup restore db/d/g --at now "$T/one-g" > "$T/o" 2>&1
check "restore of a file in a directory exits 0" [ $? -eq 0 ]

# export failed on any version with a non-ASCII (UTF-8) name: libarchive
# converts names from the locale, and a service runs in the C locale.
env -i PATH="$PATH" "$PULLBACKUP" -c "$T/c/pullbackup.yaml" export db \
	--at now -o "$T/v.tar" > "$T/o" 2>&1
check "export of UTF-8 names in the C locale exits 0" [ $? -eq 0 ]
mkdir "$T/x" && tar -xf "$T/v.tar" -C "$T/x" 2> "$T/tar.err"
check "it extracts to the version" same_tree "$S" "$T/x"
check "with no warning from tar" [ ! -s "$T/tar.err" ]
# A name that is not UTF-8 goes as its bytes.
touch "$S/$(printf 'raw\377name')"
check "a cycle with a name that is not UTF-8" exporter now --wait archived
env -i PATH="$PATH" "$PULLBACKUP" -c "$T/c/pullbackup.yaml" export db \
	--at now -o "$T/v2.tar" > "$T/o" 2>&1
check "export of a name that is not UTF-8 exits 0" [ $? -eq 0 ]
mkdir "$T/x2" && tar -xf "$T/v2.tar" -C "$T/x2" 2> /dev/null
check "it extracts to the version, name as its bytes" same_tree "$S" "$T/x2"

# Peers named by IPv6 literals passed check-config and never connected
# (the brackets went to the resolver); names are resolved off the loop.
chain_stop
if ip -6 addr show dev lo 2> /dev/null | grep -q '::1/128'; then
	chain_setup "$T/c6" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby6]"
	sed -i -E 's#(http://)127\.0\.0\.1(:[0-9]+)#"\1[::1]\2"#g; s#^listen: 127\.0\.0\.1(:[0-9]+)#listen: "[::1]\1"#' \
		"$T"/c6/*.yaml
	check "check-config takes [::1] URLs" exporter check-config
	chain_start || exit 1
	check "a cycle over IPv6 literals" exporter now --wait imported --timeout 60s
	check "the standby got it" same_tree "$S" "$T/standby6"
	chain_stop
else
	echo "skip - no IPv6 loopback here"
fi
chain_setup "$T/c7" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby7]"
sed -i 's#http://127\.0\.0\.1#http://localhost#g' "$T"/c7/*.yaml
chain_start || exit 1
check "a cycle with peers named by host name" exporter now --wait imported --timeout 60s
check "the standby got it" same_tree "$S" "$T/standby7"

# Retention: keep_last is a floor.  {older_than: 1s, keep_last: 3} took
# every version older than a second, leaving one; and --older-than 0s was
# taken for no rule at all.
versions() {
	pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
chain_stop
sed -i 's/retention: .*/retention: {older_than: 1s, keep_last: 3}/' "$T/c7/pullbackup.yaml"
chain_start || exit 1
for i in 1 2 3 4; do
	sleep 1.1
	echo "change $i" > "$S/f"
	exporter now --wait archived > /dev/null 2>&1
done
check "older_than 1s with keep_last 3 keeps 3 versions" [ "$(versions)" = 3 ]
# The exporter kept every exports/<id>/ (manifest, backup.signature) until
# it restarted: gigabytes a day on a minute schedule.  It keeps what is
# served, and the newest export's manifest.
exports_left() { [ "$(ls "$T/c7/exporter/exports" | wc -l)" = 1 ]; }
check "the exporter keeps one export directory, the newest" eventually exports_left
check "which is the newest version" [ -f "$T/c7/exporter/exports/$(pullbackup list db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')/manifest" ]
pullbackup prune db --older-than 0s --dry-run > "$T/o"
check "prune --older-than 0s would remove all but the newest" \
	[ "$(grep -c 'would remove' "$T/o")" = 2 ]

# now --wait imported started just before another export never returned:
# the newer version superseded its own, the pull-backup reports only its
# newest push, and now waited for its own version until the timeout.
echo 4 > "$T/standby7.slow"
echo "first" > "$S/f"
exporter now --wait imported --timeout 40s > "$T/now1" 2>&1 &
nowpid=$!
check "the first version is archived" eventually contains "$T/now1" "archived on"
echo "second" > "$S/f"
exporter now --wait archived > /dev/null 2>&1
rm -f "$T/standby7.slow"
wait $nowpid
check "now of a superseded version exits 0 once the newer is imported" [ $? -eq 0 ]
check "saying by which version" contains "$T/now1" "superseded by"
check "and that the newer one was imported" \
	grep -qE '^OK: version [0-9TZ.]+ imported \(version [0-9TZ.]+ superseded by it\)$' "$T/now1"
check "the standby has the newer one" eventually grep -q second "$T/standby7/f"

# Replication lag: the exporter's metric froze at the last import when
# imports stopped, and no check bounded it.  It now grows while the newest
# export waits; check --max-lag bounds it, on the exporter and, for the job
# under way or to retry, on the importer.
check "a cycle to the standby" exporter now --wait imported --timeout 60s
exporter check --max-lag 1h > "$T/o"
check "check --max-lag is OK once imported" [ $? -eq 0 ]
check "and says the lag" contains "$T/o" ", lag "
echo 8 > "$T/standby7.slow"
echo "lagging" > "$S/f"
exporter now --wait archived > /dev/null 2>&1
sleep 3.1 # ages are in whole seconds
exporter check --max-lag 2s > "$T/o"
check "a version not imported for longer than max_lag: CRITICAL (2)" [ $? -eq 2 ]
check "saying which" contains "$T/o" "is not imported"
importer check --max-lag 2s > "$T/o"
check "the importer busy with it past max_lag: CRITICAL (2)" [ $? -eq 2 ]
check "saying so" contains "$T/o" "is not done (max_lag 2s)"
importer check > "$T/o"
check "without --max-lag, the importer is OK" [ $? -eq 0 ]
lag_metric() {
	curl -s -H "Authorization: Bearer $(cat "$T/c7/token")" \
		"http://127.0.0.1:$EX_PORT/metrics" |
		sed -n 's/^understudy_replication_lag_seconds{[^}]*} //p'
}
l1=$(lag_metric)
sleep 1.1
check "the lag metric grows while the export waits" [ "$(lag_metric)" -gt "$l1" ]
check_fails "exporter check --max-lag takes an age" exporter check --max-lag soon
rm -f "$T/standby7.slow"
check "the import ends" eventually grep -q lagging "$T/standby7/f"
# The report comes back through the pull-backup.
lag_was() {
	exporter check --max-lag 2s > "$T/o"
	[ $? -eq 2 ] && contains "$T/o" "was imported"
}
check "an import that took longer than max_lag is still CRITICAL, saying so" \
	eventually lag_was
exporter check --max-lag 1h > "$T/o"
check "once imported, the lag is within bounds again" [ $? -eq 0 ]
finish
