#!/bin/bash
# Redundancy (issue 16, part 5), on five hosts: one exporter, two
# pull-backups (pb pushes to the standby im, pb2 to im2).  pb and im die
# (kill -9) and stay down for three cycles: the others go on unaffected,
# each cycle reaching im2; when pb and im come back they catch up with the
# newest version by themselves.
source "$SRC/tests/it_lib.sh"
source "$SRC/tests/netbed.sh"

netbed_begin ex pb im pb2 im2
echo one > "$S/f"
head -c 4M /dev/urandom > "$S/g"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
NB_TLS=0 nb_chain || exit 1
C=$T/c
PB2_PORT=$(free_port)
IM2_PORT=$(free_port)
pb2=http://$(nb_ip pb2):$PB2_PORT
im2=http://$(nb_ip im2):$IM2_PORT
sed -i "s|^notify: \[\(.*\)\]|notify: [\1, $pb2]|" "$C/exporter.yaml"
sed "s|^listen: .*|listen: $(nb_ip pb2):$PB2_PORT|; s|^archive_dir: .*|archive_dir: $C/archive2|; s|importers: \[.*\]|importers: [$im2]|" \
	"$C/pullbackup.yaml" > "$C/pullbackup2.yaml"
sed "s|^listen: .*|listen: $(nb_ip im2):$IM2_PORT|; s|^state_dir: .*|state_dir: $C/importer2|; s|pullbackup: .*|pullbackup: $pb2|; s|$T/standby\]|$T/standby2]|" \
	"$C/importer.yaml" > "$C/importer2.yaml"
nb_start exporter || exit 1
nb_start pullbackup pb || exit 1
nb_start importer im || exit 1
nb_start pullbackup pb2 pullbackup2 || exit 1
nb_start importer im2 importer2 || exit 1
version_of() { # HOST CONFIG: the version a standby holds
	nb_in "$1" "$IMPORTER" -c "$C/$2.yaml" status --json 2> /dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["current_version"])' 2> /dev/null
}
newest_export() { ls "$C/exporter/exports" | grep -v '\.tmp$' | sort | tail -1; }
check "a cycle reaches both standbys" exporter now --wait imported --timeout 60s
v=$(newest_export)
check "im has it" eventually eval '[ "$(version_of im importer)" = "$v" ]'
check "im2 has it" eventually eval '[ "$(version_of im2 importer2)" = "$v" ]'

nb_kill pullbackup KILL
nb_kill importer KILL
for i in 1 2 3; do
	echo "cycle $i while pb and im are down" > "$S/f"
	start=$(date +%s.%N)
	# (now waits for both pull-backups: it gives up on pb after 5 s.)
	exporter now --wait archived --timeout 5s > "$T/now.out" 2>&1 &
	now=$!
	eventually grep -q "^export of db started" "$T/now.out"
	v=$(sed -n 's/^export of db started: version //p' "$T/now.out")
	check "cycle $i: pb2 archives it" eventually eval '[ "$(cat "$C/archive2/db/HEAD")" = "$v" ]'
	check "cycle $i: im2 imports it" eventually eval '[ "$(version_of im2 importer2)" = "$v" ]'
	took=$(python3 -c "import time; print(round(time.time() - $start, 1))")
	wait "$now"
	check "cycle $i: im2 equals the source" same_tree "$S" "$T/standby2"
	echo "    cycle $i reached im2 in ${took} s with pb and im down"
done
check "the exporter's status names the pull-backup it cannot reach" \
	eval 'exporter status | grep -q "not delivered\|connection refused\|no reply"'

nb_start pullbackup pb || exit 1
nb_start importer im || exit 1
start=$(date +%s.%N)
check "pb catches up with the newest version" eventually eval '[ "$(cat "$C/archive/db/HEAD")" = "$v" ]'
check "im catches up too" eventually eval '[ "$(version_of im importer)" = "$v" ]'
echo "    pb and im caught up $(python3 -c "import time; print(round(time.time() - $start, 1))") s after they started"
check "im equals the source" same_tree "$S" "$T/standby"
check "pb's archive verifies" pullbackup verify db --all
check "pb2's archive verifies" nb_in pb2 "$PULLBACKUP" -c "$C/pullbackup2.yaml" verify db --all
check "a cycle reaches both again" exporter now --wait imported --timeout 60s
v=$(newest_export)
check "both standbys hold it" eventually eval '[ "$(version_of im importer)" = "$v" ] && [ "$(version_of im2 importer2)" = "$v" ]'
finish
