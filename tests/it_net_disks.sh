#!/bin/bash
# Full disks (issue 16, part 4), on three hosts, each daemon's state on a
# small filesystem of its own (tmpfs): filled up on the live host during
# an export, on the backup host during a pull and its commit, and during
# its retention, on the standby during an import.  Each time: a one-line error naming the disk's
# path, the last good version intact everywhere (served, archived,
# imported), and once space returns the chain completes by itself (the
# exporter's next cycle; the pull and the import are retried with no one
# asking).
source "$SRC/tests/it_lib.sh"
source "$SRC/tests/netbed.sh"

netbed_begin ex pb im
echo one > "$S/f"
head -c 6M /dev/urandom > "$S/g"
KEEP_LAST=3 chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
C=$T/c
nb_smallfs "$C/exporter" 40m && nb_smallfs "$C/archive" 64m && nb_smallfs "$C/importer" 40m || {
	echo "skip - cannot mount a tmpfs here"
	finish
	exit
}
NB_TLS=0 nb_chain || exit 1
for r in exporter pullbackup importer; do
	nb_start "$r" || exit 1
done
check "a first cycle" exporter now --wait imported --timeout 60s
good=$(standby_version)

# fill DIR [KB]: leave about KB (1024) free on DIR's filesystem; with
# 0, none at all.
fill() {
	local free leave=${2:-1024}
	free=$(df --output=avail -k "$1" | tail -1)
	fallocate -l $(((free - leave) * 1024)) "$1/filler" 2> /dev/null ||
		head -c $(((free - leave) * 1024)) /dev/zero > "$1/filler" 2> /dev/null
	[ "$leave" -eq 0 ] && cat /dev/zero > "$1/filler.last" 2> /dev/null
	sync
}
unfill() { rm -f "$1/filler" "$1/filler.last"; }
nversions() { pullbackup list db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
archived() { cat "$C/archive/db/HEAD"; }

# The live host's disk.
head -c 6M /dev/urandom > "$S/g"
fill "$C/exporter"
exporter now --wait archived --timeout 20s > "$T/o" 2>&1
rc=$?
cat "$T/o" | tail -2 | cut -c1-200
check "live host full: the export fails (exit 1)" [ $rc -eq 1 ]
check "live host full: naming the disk" grep -q "No space left on device" "$T/o"
check "live host full: the archive and the standby are as they were" \
	eval '[ "$(archived)" = "$good" ] && [ "$(standby_version)" = "$good" ]'
unfill "$C/exporter"
check "live host: with room again, the next cycle completes" exporter now --wait imported --timeout 60s
good=$(standby_version)
check "and the standby equals the source" same_tree "$S" "$T/standby"

# The backup host's disk.
head -c 6M /dev/urandom > "$S/g"
fill "$C/archive"
exporter now --wait archived --timeout 30s > "$T/o" 2>&1
rc=$?
v=$(sed -n 's/^export of db started: version //p' "$T/o")
check "backup host full: the pull is reported failed (exit 1)" [ $rc -eq 1 ]
check "backup host full: naming the disk" grep -q "No space left on device" "$T/o"
grep -m1 "No space left" "$C/pullbackup.log" | cut -c1-200 | sed 's/^/    /'
check "backup host full: the archive still holds the last good version" [ "$(archived)" = "$good" ]
check "backup host full: verify --all is clean" pullbackup verify db --all
check "backup host full: what was staged was dropped (the space went back)" \
	[ ! -e "$C/archive/db/staging/g" ]
check "backup host full: it is still retried" [ "$(nb_field pullbackup sources.0.retrying.version)" = "$v" ]
unfill "$C/archive"
at_standby() { for i in $(seq 1 60); do [ "$(standby_version)" = "$1" ] && return 0; sleep 1; done; return 1; }
check "backup host: with room again, the version is pulled and imported by itself" at_standby "$v"
check "and the standby equals the source" same_tree "$S" "$T/standby"
good=$v

# The standby's disk.
head -c 6M /dev/urandom > "$S/g"
fill "$C/importer"
exporter now --wait imported --timeout 30s > "$T/o" 2>&1
rc=$?
v=$(sed -n 's/^export of db started: version //p' "$T/o")
check "standby full: the import is reported failed (exit 1)" [ $rc -eq 1 ]
check "standby full: naming the disk" grep -q "No space left on device" "$T/o"
check "standby full: the standby keeps its last good version" [ "$(standby_version)" = "$good" ]
check "standby full: whole" [ "$(cat "$T/standby/f")" = one ]
check "standby full: the failed import is written down" \
	eventually grep -q '"ok":false' "$C/importer/sources/db/last-import.json"
unfill "$C/importer"
check "standby: with room again, the import is retried and completes by itself" at_standby "$v"
check "and the standby equals the source" same_tree "$S" "$T/standby"
pullbackup verify db --all > "$T/verify.out" 2>&1
check "the archive verifies" [ $? -eq 0 ]
cat "$T/verify.out" | sed 's/^/    /'

# The backup host's disk during retention: the commit took the last
# room, and retention runs on a disk 100% full (held at that point, the
# disk filled).  It only renames and removes: it frees room, and the
# cycle completes.
nb_kill pullbackup
CHAIN_ENV="UNDERSTUDY_FAULT=hold:pull-retention UNDERSTUDY_FAULT_HOLD=$T/hold" nb_start pullbackup || exit 1
removed=$(grep -c "retention removed version" "$C/pullbackup.log")
check "retention: the archive holds its 3 versions" [ "$(nversions)" = 3 ]
head -c 6M /dev/urandom > "$S/g"
exporter now --wait imported --timeout 90s > "$T/o" 2>&1 &
waiter=$!
for i in $(seq 1 600); do [ -e "$T/hold" ] && break; sleep 0.1; done
check "retention: the pull-backup is at its retention" [ -e "$T/hold" ]
fill "$C/archive" 0
check "retention: the backup host's disk is full" [ "$(df --output=avail -k "$C/archive" | tail -1)" -eq 0 ]
rm -f "$T/hold"
wait $waiter
rc=$?
tail -3 "$T/o" | cut -c1-200 | sed 's/^/    /'
check "retention on a full disk: the cycle completes (exit 0)" [ $rc -eq 0 ]
check "retention on a full disk: it removed the oldest version" \
	[ "$(grep -c "retention removed version" "$C/pullbackup.log")" -gt "$removed" ]
check "retention on a full disk: 3 versions kept" [ "$(nversions)" = 3 ]
check "retention on a full disk: verify --all is clean" pullbackup verify db --all
check "retention on a full disk: the standby equals the source" same_tree "$S" "$T/standby"
unfill "$C/archive"

# verify on a full archive disk: an older version needs room to be
# rebuilt; without it, it says so, and calls nothing damaged.
fill "$C/archive"
pullbackup verify db --all > "$T/verify.out" 2>&1
rc=$?
cat "$T/verify.out" | sed 's/^/    /'
check "verify on a full disk fails (exit 1)" [ $rc -eq 1 ]
check "saying what it could not check, and why" grep -q "could not be checked: no room" "$T/verify.out"
check "calling nothing BAD" eval '! grep -q "^BAD" "$T/verify.out"'
unfill "$C/archive"
finish
