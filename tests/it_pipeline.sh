#!/bin/bash
# The pipelined chain, on real daemons: the pull-backup serves a version
# as it pulls it, and pushes it to the importer at once (import.ready
# with "staged"); the importer fetches each file once the pull-backup has
# it, and runs its hook only once the version is committed to the
# archive.  Held between its pull and its commit, the pull-backup has
# been fetched from in full, the standby is untouched, the archive's
# newest is the old version, whose increments are built already (each
# as soon as the file it needs is staged).  A file not staged yet is never served
# (503); a progress request waits.  A pull-backup killed before its
# commit, or a pull that stops because its version went, leaves the
# importer with nothing wrong reported, and the next version through.
source "$SRC/tests/it_lib.sh"

S=$T/src
mkdir -p "$S/a" "$S/b"
for i in $(seq 1 40); do echo "file $i" > "$S/a/f$i"; done
head -c 3000000 /dev/urandom > "$S/b/big"
make_copy_hooks
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1
check "cycle 1" exporter now --wait imported
v1=$(standby_version)
AUTH=(-H "X-Understudy-Protocol: 1" -H "Authorization: Bearer $(cat "$T/c/token")")
PB=http://127.0.0.1:$PB_PORT/v1/sources/db/versions

restart_pullbackup() { # [FAULT]: held at its first pass
	kill "$PID_pullbackup" && wait "$PID_pullbackup" 2>/dev/null
	rm -f "$T/hold"
	CHAIN_ENV=${1:+"UNDERSTUDY_FAULT=hold:$1 UNDERSTUDY_FAULT_HOLD=$T/hold"} \
		chain_start_one "$PULLBACKUP" pullbackup
}
held() { within 30 test -e "$T/hold"; }
pulling() { grep -o 'pulling version [^ ]*' "$T/c/pullbackup.log" | tail -1 | cut -d' ' -f3; }
# held_cycle FAULT FILE...: the pull-backup restarted to be held at FAULT,
# FILEs (of the source) changed, an export started.
held_cycle() {
	local f
	restart_pullbackup "$1" || exit 1
	shift
	for f in "$@"; do echo "$f, changed again" > "$S/$f"; done
	exporter now > /dev/null 2>&1 &
}
importing() { # the version the importer is busy with, or None
	importer status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0].get("importing_version"))'
}
progress() { # bytes_done bytes_total of the import under way
	importer status --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["sources"][0].get("progress") or {}
print(p.get("bytes_done"), p.get("bytes_total"))'
}
importing_is() { [ "$(importing)" = "$1" ]; }
standby_is() { [ "$(standby_version)" = "$1" ]; }
pb_newest() {
	pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["newest_version"])'
}

# 1. Held after the pull, before the commit.
restart_pullbackup pull-synced || exit 1
for i in 1 2 3 4 5; do echo "file $i, changed" > "$S/a/f$i"; done
head -c 3000000 /dev/urandom > "$S/b/big"
exporter now --wait imported > "$T/now2.out" 2>&1 &
NOW=$!
check "the pull-backup is held between its pull and its commit" held
v2=$(pulling)
check "the importer was pushed the version as it was pulled" \
	within 20 grep -q "importing version $v2 from .* as it is pulled" "$T/c/importer.log"
full() { read -r d t < <(progress); [ "$d" != None ] && [ "$d" = "$t" ]; }
check "and fetched all of it from the pull-backup before the commit" within 20 full
check "its import waits: still busy with $v2" [ "$(importing)" = "$v2" ]
sleep 1
check "the hook has not run: the standby is still version 1" [ "$(standby_version)" = "$v1" ]
check "and holds version 1's files" grep -qx "file 1" "$T/standby/a/f1"
check "the archive's newest is still version 1" [ "$(pb_newest)" = "$v1" ]
# The reverse increments are built while the pull makes its tree durable
# and waits, not after it: there before the commit, not yet in place.
inc_built() { [ -n "$(ls "$T/c/archive/db/versions/$v1/increment.tmp" 2>/dev/null)" ]; }
check "version 1's increments are built before the commit" within 20 inc_built
check "and not yet taken" [ ! -e "$T/c/archive/db/versions/$v1/increment" ]
# A prune run meanwhile (the exclusive lock) removes them as unfinished:
# the commit must see they are gone and write them itself.
check "a prune meanwhile removes them as unfinished" \
	pullbackup prune db --keep-last 10
check "(gone)" [ ! -e "$T/c/archive/db/versions/$v1/increment.tmp" ]
curl -s "${AUTH[@]}" "$PB/$v2/progress?wait=0" > "$T/p.json"
check "progress: every entry staged, not committed" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
assert p["staged"] == p["entries"] == 43 and p["committed"] is False, p' "$T/p.json"
c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 "${AUTH[@]}" "$PB/$v2/progress?wait=committed")
check "a wait for the commit is held (no answer within 2 s)" [ "$c" = 000 ]
c=$(curl -s -o /dev/null -w "%{http_code}" "${AUTH[@]}" "$PB/$v2/progress")
check "a progress request without wait is 400" [ "$c" = 400 ]
rm -f "$T/hold"
check "released, the cycle completes" wait "$NOW"
check "the standby has version 2" [ "$(standby_version)" = "$v2" ]
check "and equals the source" same_tree "$S" "$T/standby"
check "the archive's newest is version 2" [ "$(pb_newest)" = "$v2" ]
check "the commit took the increments built ahead" \
	[ -d "$T/c/archive/db/versions/$v1/increment" -a \
	! -e "$T/c/archive/db/versions/$v1/increment.tmp" ]
check "and they restore version 1" pullbackup verify db --all
check "the import.ready went once, before the commit: no second push" \
	[ "$(grep -c "importing version $v2 " "$T/c/importer.log")" = 1 ]
c=$(curl -s "${AUTH[@]}" "$PB/$v2/progress?wait=committed")
check "a committed version's progress answers at once" python3 -c '
import json, sys
p = json.loads(sys.argv[1])
assert p["staged"] == p["entries"] and p["committed"] is True, p' "$c"

# 2. Held after its first file: nothing not staged is served; the
# increment of that file, changed, is built already, those of the files
# not staged yet wait for them.
kill "$PID_importer" && wait "$PID_importer" 2>/dev/null
held_cycle sync-file a/f1 a/f30 a/f31
check "the pull-backup is held after its first entry" held
v3=$(pulling)
incs() { ls "$T/c/archive/db/versions/$v2/increment.tmp" 2> /dev/null | wc -l; }
check "the increment of its first file, changed, is built as it is staged" \
	within 20 [ "$(incs)" -ge 1 ]
sleep 1
check "and only that one: the others wait for their files" [ "$(incs)" = 1 ]
check "the manifest of the version being pulled is served" \
	bash -c "curl -sf ${AUTH[*]@Q} '$PB/$v3/manifest' | grep -q '^version $v3$'"
c=$(curl -s -o "$T/503.json" -w "%{http_code}" "${AUTH[@]}" "$PB/$v3/file?path=b/big")
check "a file not staged yet is not served: 503" [ "$c" = 503 ]
check "and says why" grep -q "not here yet (the version is being pulled)" "$T/503.json"
c=$(curl -s -o /dev/null -w "%{http_code}" -X POST --data-binary x "${AUTH[@]}" "$PB/$v3/delta?path=a/f30")
check "nor a delta of one: 503" [ "$c" = 503 ]
s=$(curl -s "${AUTH[@]}" "$PB/$v3/progress?wait=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["staged"])')
check "progress says how far it is" test "$s" -ge 1 -a "$s" -lt 43
c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 "${AUTH[@]}" "$PB/$v3/progress?wait=43")
check "a wait for the last entry is held" [ "$c" = 000 ]
chain_start_one "$IMPORTER" importer || exit 1
check "the importer, started, waits for it" within 20 importing_is "$v3"
rm -f "$T/hold"
check "released, the importer gets version 3" within 60 standby_is "$v3"
check "equal to the source" same_tree "$S" "$T/standby"

# 3. The pull-backup killed before its commit (its increments built
# ahead): the importer's waits fail, the pull is resumed at the restart
# and pushed again.
held_cycle pull-synced a/f7
check "held before the commit again" held
v4=$(pulling)
check "the importer is at it" within 20 importing_is "$v4"
kill -9 "$PID_pullbackup"
wait "$PID_pullbackup" 2>/dev/null
rm -f "$T/hold"
sleep 1
chain_start_one "$PULLBACKUP" pullbackup || exit 1
check "restarted, the pull-backup archives it and the importer takes it" \
	within 90 standby_is "$v4"
check "equal to the source" same_tree "$S" "$T/standby"
check "archive verify finds nothing wrong" pullbackup verify db --all

# 4. A pull that stops because its version went (a newer export
# superseded it on the exporter): the importer drops it without a report
# of failure, and takes the next.
held_cycle sync-file a/f8
check "held after its first entry" held
v5=$(pulling)
check "the importer waits for $v5" within 20 importing_is "$v5"
echo "file 9, changed" > "$S/a/f9"
exporter now > /dev/null 2>&1 &
check "the exporter stopped serving $v5" within 20 \
	grep -q "version $v5 is no longer served" "$T/c/exporter.log"
rm -f "$T/hold"
check "the importer drops $v5 quietly" within 60 \
	grep -q "version $v5 is no longer being pulled" "$T/c/importer.log"
v6=$(grep -o 'export of version [^ ]*' "$T/c/exporter.log" | tail -1 | cut -d' ' -f4)
check "and imports the next" within 90 standby_is "$v6"
check "equal to the source" same_tree "$S" "$T/standby"
check "nothing reported as failed to the pull-backup" \
	bash -c "! grep -q 'FAILED to import' '$T/c/pullbackup.log'"
check "archive verify finds nothing wrong" pullbackup verify db --all
finish
