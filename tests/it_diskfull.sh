#!/bin/bash
# Disk full: writes failing with ENOSPC at each write point of the
# pull-backup (the staging tree, the increments, every atomic file write)
# and at the exporter's syncfs give a clear error and change nothing
# already committed; once the disk has room again the cycle completes.  Then the same on a real, small
# tmpfs when this machine lets us mount one.
source "$SRC/tests/it_lib.sh"
SYSPY=/usr/bin/python3
[ -x "$SYSPY" ] || SYSPY=python3

make_copy_hooks
S=$T/src
mkdir -p "$S"
echo one > "$S/a"
head -c 1M /dev/urandom > "$S/b"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1
check "a first cycle" exporter now --wait imported

count() {
	pullbackup list db --json | $SYSPY -c 'import json,sys; print(len([v for v in json.load(sys.stdin) if v["state"] == "completed"]))'
}

n=1
for point in staging-write increment-write atomic-write; do
	kill -TERM "$PID_pullbackup"; wait "$PID_pullbackup"
	UNDERSTUDY_FAULT=enospc:$point "$PULLBACKUP" -c "$T/c/pullbackup.yaml" serve \
		>> "$T/c/pullbackup.log" 2>&1 &
	PID_pullbackup=$!
	CHAIN_PIDS+=($PID_pullbackup)
	sleep 0.5
	echo "change for $point" >> "$S/a"
	dd if=/dev/urandom of="$S/b" bs=4k count=1 seek=7 conv=notrunc status=none
	exporter now --wait archived --timeout 25s > "$T/o" 2> "$T/e"
	rc=$?
	exporter status > "$T/st"
	cat "$T/e"
	check "$point: the cycle fails (exit 1)" [ $rc -eq 1 ]
	check "$point: the error says the disk is full" \
		grep -q "No space left on device" "$T/e" "$T/st" "$T/c/pullbackup.log"
	check "$point: nothing committed changed ($n versions)" [ "$(count)" = $n ]
	check "$point: verify --all" pullbackup verify db --all > /dev/null
	check "$point: no journal" [ ! -e "$T/c/archive/db/journal" ]
	# Room again: the same daemon, without the fault, finishes the cycle.
	kill -TERM "$PID_pullbackup"; wait "$PID_pullbackup"
	chain_start_one "$PULLBACKUP" pullbackup || exit 1
	check "$point: with room again, a cycle completes" exporter now --wait imported
	n=$(count)
	check "$point: the standby equals the source" same_tree "$S" "$T/standby"
done

# The exporter's syncfs of what its hook wrote fails (it runs beside the
# scan): the export fails saying so, nothing is told to the pull-backup;
# with room again the next one goes through.
kill -TERM "$PID_exporter"; wait "$PID_exporter"
CHAIN_ENV=UNDERSTUDY_FAULT=enospc:syncfs chain_start_one "$EXPORTER" exporter || exit 1
echo "change for the export's syncfs" >> "$S/a"
exporter now --wait archived --timeout 25s > "$T/o" 2> "$T/e"
rc=$?
cat "$T/e"
check "export syncfs: the export fails (exit 1)" [ $rc -eq 1 ]
check "export syncfs: saying what and why" \
	grep -q "syncfs (what the hook wrote, to disk): No space left on device" "$T/e"
check "export syncfs: the archive did not change ($n versions)" [ "$(count)" = $n ]
kill -TERM "$PID_exporter"; wait "$PID_exporter"
chain_start_one "$EXPORTER" exporter || exit 1
check "export syncfs: with room again, a cycle completes" exporter now --wait imported
check "export syncfs: the standby equals the source" same_tree "$S" "$T/standby"

# A real full disk: the archive on an 8 MiB tmpfs.
chain_stop
mkdir -p "$T/small"
if mount -t tmpfs -o size=8m understudy-test "$T/small" 2> /dev/null; then
	trap 'chain_stop; umount "$T/small" 2>/dev/null; cleanup' EXIT
	sed -i "s|archive_dir: .*|archive_dir: $T/small/archive|" "$T/c/pullbackup.yaml"
	chain_start || exit 1
	check "tmpfs: a first cycle fits" exporter now --wait imported
	head -c 12M /dev/urandom > "$S/too-big"
	exporter now --wait archived --timeout 40s > "$T/o" 2> "$T/e"
	rc=$?
	cat "$T/e"
	check "tmpfs: a version that does not fit fails" [ $rc -eq 1 ]
	check "tmpfs: saying the disk is full" grep -q "No space left on device" "$T/e"
	check "tmpfs: the archive keeps its one version" [ "$(count)" = 1 ]
	check "tmpfs: verify --all" pullbackup verify db --all > /dev/null
	pullbackup list db > "$T/l"
	check "tmpfs: list shows the failed pull and why" grep -Eq "(failed|retrying).*No space left" "$T/l"
	rm "$S/too-big"
	check "tmpfs: once the data fits again, a cycle completes" exporter now --wait imported
	check "tmpfs: two versions" [ "$(count)" = 2 ]
	chain_stop
	umount "$T/small"
else
	echo "skip - cannot mount a tmpfs here; the injected faults above cover ENOSPC"
fi
finish
