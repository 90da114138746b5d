#!/bin/bash
# A large file's delta goes out as it is made (common/serve.c): held
# once its delta is made but before the job is through, the exporter has
# sent the pull-backup nearly all of it already; released, the file
# arrives by delta.  A job that fails after its reply began ends the
# reply without the delta's END command: the pull-backup's patch refuses
# it and fetches the file whole, and the cycle succeeds.
source "$SRC/tests/it_lib.sh"

S=$T/src
mkdir -p "$S"
head -c 24M /dev/urandom > "$S/big"
echo small > "$S/small"
make_copy_hooks
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
chain_start || exit 1
check "cycle 1" exporter now --wait imported

restart_exporter() { # FAULT
	kill "$PID_exporter" && wait "$PID_exporter" 2>/dev/null
	rm -f "$T/hold"
	CHAIN_ENV="UNDERSTUDY_FAULT=$1 UNDERSTUDY_FAULT_HOLD=$T/hold" \
		chain_start_one "$EXPORTER" exporter
}
served() { # bytes the exporter has sent
	curl -s -H "Authorization: Bearer $(cat "$T/c/token")" \
		"http://127.0.0.1:$EX_PORT/metrics" |
		sed -n 's/^understudy_served_bytes_total{[^}]*} //p; s/^understudy_served_bytes_total //p'
}
# change SEED: 6 MiB of big rewritten in place, in its middle.
change() {
	head -c 6M /dev/urandom | dd of="$S/big" bs=1M seek=9 conv=notrunc status=none
}

restart_exporter hold:delta-made || exit 1
change
before=$(served)
exporter now --wait imported > "$T/now2.out" 2>&1 &
NOW=$!
check "the delta job is held once its delta is made" within 30 test -e "$T/hold"
sent_most() { [ $(($(served) - before)) -ge $((6 * 1024 * 1024)) ]; }
check "while it is held, the exporter has sent the pull-backup the delta (6 MiB of literal data)" within 20 sent_most
check "and the pull-backup has not finished" [ "$(grep -c "archived version" "$T/c/pullbackup.log")" = 1 ]
rm -f "$T/hold"
check "released, the cycle ends" wait "$NOW"
check "the pull took big by delta" grep -q "archived version $(standby_version): .*1 by delta, 0 whole" "$T/c/pullbackup.log"
check "the standby equals the source" same_tree "$S" "$T/standby"

restart_exporter enospc:delta-made || exit 1
change
check "a delta job that fails after its reply began: the cycle still ends" exporter now --wait imported
check "the exporter said so" grep -q "delta of big: writing the delta: .*(after [0-9]* bytes sent" "$T/c/exporter.log"
check "the pull-backup refused the delta, cut short" grep -q "delta of big: .*fetching it another way" "$T/c/pullbackup.log"
check "and fetched big whole" grep -q "archived version $(standby_version): .*0 by delta, 1 whole" "$T/c/pullbackup.log"
check "the standby equals the source" same_tree "$S" "$T/standby"
finish
