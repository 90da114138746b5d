#!/bin/bash
# Crash safety: the pull-backup and the importer are killed (as by kill -9)
# at every named fault point of a pull, commit, push, prune and import, and
# at random moments.  handled-EVENT: just after a handled event's inbox
# file went (the events its handling sent must be on disk by then).  After each: a restart, the cycle completes by itself,
# verify --all passes, every version restores equal to its saved copy, and
# one more full cycle works.
source "$SRC/tests/it_lib.sh"
SYSPY=/usr/bin/python3
[ -x "$SYSPY" ] || SYSPY=python3

make_copy_hooks
S=$T/src
mkdir -p "$S/d" "$T/copies"
for i in 1 2 3 4 5; do echo "small file $i" > "$S/d/f$i"; done
head -c 20M /dev/urandom > "$S/big"
KEEP_LAST=4 chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1
round=0

# Change the source a little, in a new way each round.
mutate() {
	round=$((round + 1))
	echo "round $round" >> "$S/d/f$(( round % 5 + 1 ))"
	echo "new in round $round" > "$S/d/new$round"
	[ $round -gt 2 ] && rm -f "$S/d/new$((round - 2))"
	dd if=/dev/urandom of="$S/big" bs=64k count=4 seek=$(( round * 7 % 300 )) \
		conv=notrunc status=none
}

# Start a cycle in the background; remember its version and a copy of it.
start_cycle() {
	mutate
	exporter now --wait imported --timeout 120s > "$T/now.out" 2>&1 &
	NOW=$!
	for i in $(seq 1 100); do
		V=$(sed -n 's/^export of db started: version //p' "$T/now.out")
		[ -n "$V" ] && break
		sleep 0.05
	done
	rm -rf "$T/copies/$V"
	cp -a "$S" "$T/copies/$V"
}

imported_version() {
	importer status --json 2>/dev/null |
		$SYSPY -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["current_version"])' 2>/dev/null
}

# Wait until the standby has version $V, whatever was killed on the way.
converge() {
	local what=$1 i
	for i in $(seq 1 300); do
		[ "$(imported_version)" = "$V" ] && break
		sleep 0.2
	done
	wait $NOW 2>/dev/null
	check "$what: the cycle completed after the restart" [ "$(imported_version)" = "$V" ]
	check "$what: the standby equals the source" same_tree "$S" "$T/standby"
	check "$what: verify --all" pullbackup verify db --all > /dev/null
	local id ok=1
	for id in $(pullbackup list db --json | $SYSPY -c 'import json,sys; print(" ".join(v["id"] for v in json.load(sys.stdin) if v["state"] == "completed"))'); do
		rm -rf "$T/r"
		if ! pullbackup restore db --at "$id" "$T/r" > /dev/null ||
		   ! same_tree "$T/copies/$id" "$T/r"; then
			ok=0
			echo "version $id does not restore to its copy" >&2
		fi
	done
	check "$what: every version restores bit for bit" [ $ok = 1 ]
	check "$what: no journal is left" [ ! -e "$T/c/archive/db/journal" ]
}

# Restart one daemon with a fault point set; wait for it to die there.
crash_at() {
	local role=$1 point=$2 prog pid i
	case $role in
	pullbackup) prog=$PULLBACKUP ;;
	importer) prog=$IMPORTER ;;
	esac
	kill -TERM "$(eval echo "\$PID_$role")"
	wait "$(eval echo "\$PID_$role")" 2>/dev/null
	UNDERSTUDY_FAULT=$point "$prog" -c "$T/c/$role.yaml" serve >> "$T/c/$role.log" 2>&1 &
	pid=$!
	for i in $(seq 1 50); do
		"$prog" -c "$T/c/$role.yaml" status > /dev/null 2>&1 && break
		sleep 0.1
	done
	start_cycle
	wait $pid
	check "$role died at $point" [ $? -eq 86 ]
	chain_start_one "$prog" "$role" || exit 1
	converge "$role killed at $point"
	case $point in
	sync-file*)
		check "$role resumed the pull cut short at $point" \
			grep -q "resuming the pull of db $V" "$T/c/$role.log" ;;
	commit-head-written)
		check "the mirror the commit replaced was removed at start-up" \
			grep -q "finished an interrupted removal" "$T/c/$role.log"
		check "and trash/ is empty" no_entries "$T/c/archive/db/trash" '*' ;;
	import-replaced)
		check "the copy the import replaced was removed at start-up" \
			grep -q "removing .*/replaced\.[0-9TZ.]*, a copy an import replaced" \
			"$T/c/$role.log"
		check "and it is gone" no_entries "$T/c/importer/sources/db" 'replaced.*' ;;
	esac
	start_cycle
	converge "$role: the cycle after $point"
}

start_cycle
converge "first cycle"
for p in sync-file:2 pull-synced commit-increments-built commit-journal-written \
	 commit-version-renamed commit-current-moved commit-head-written \
	 pull-committed prune-version-moved handled-backup.ready; do
	crash_at pullbackup "$p"
done
for p in sync-file:3 import-synced import-hooked import-swapped \
	 import-replaced handled-import.ready; do
	crash_at importer "$p"
done

# Random moments: kill -9 while a cycle runs.
for k in 1 2 3 4 5 6; do
	[ $((k % 2)) = 1 ] && role=pullbackup || role=importer
	[ $role = pullbackup ] && prog=$PULLBACKUP || prog=$IMPORTER
	start_cycle
	sleep "0.$(( RANDOM % 9 + 1 ))"
	kill -9 "$(eval echo "\$PID_$role")"
	wait "$(eval echo "\$PID_$role")" 2>/dev/null
	chain_start_one "$prog" "$role" || exit 1
	converge "random kill $k of the $role"
done
grep -h "recovery:" "$T/c/pullbackup.log" | sort | uniq -c
check "recovery was logged" grep -q "recovery: finished the interrupted commit" "$T/c/pullbackup.log"
finish
