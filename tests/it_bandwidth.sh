#!/bin/bash
# bandwidth_limit (issue 17): the pull from the exporter and the import
# from the pull-backup each keep to their source's limit, over real
# sockets; status shows the limit, and the rate while a pull runs.  The
# bounds are loose (a loaded machine); docs/benchmarks.md has the rate
# measured over 30 s.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S"
head -c 12M /dev/urandom > "$S/big.bin"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
sed -i 's/^    importers: \(.*\)$/    importers: \1\n    bandwidth_limit: 2MB/' "$T/c/pullbackup.yaml"
sed -i 's/^    hook_timeout: 5m$/    hook_timeout: 5m\n    bandwidth_limit: 4MB\/s/' "$T/c/importer.yaml"
chain_start || exit 1

field() { # ROLE PYTHON-EXPR over the status as s
	"$1" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
check "the pull-backup shows its limit" [ "$(field pullbackup 's["sources"][0]["bandwidth_limit"]')" = 2000000 ]
check "the importer shows its limit" [ "$(field importer 's["sources"][0]["bandwidth_limit"]')" = 4000000 ]

exporter now --wait imported --timeout 60s > "$T/o" 2>&1 &
waiter=$!
# The rate the status shows while the pull runs, after its first 4 s
# (of about 6.3: the time counts from the job's start, manifest and all).
rate=
for i in $(seq 1 100); do
	r=$(field pullbackup 's["sources"][0].get("progress", {}).get("received_per_second", 0) if s["sources"][0].get("progress", {}).get("seconds", 0) >= 4 else ""' 2> /dev/null)
	if [ -n "$r" ] && [ "$r" != 0 ]; then
		rate=$r
		break
	fi
	sleep 0.2
done
wait $waiter
check "the cycle completes" [ $? -eq 0 ]
echo "    rate in status during the pull: $rate bytes/s"
check "status showed a rate near the limit while pulling" \
	python3 -c "import sys; sys.exit(0 if 1.2e6 <= float('${rate:-0}') <= 2.2e6 else 1)"
pull_secs=$(field pullbackup 's["sources"][0]["last_pull"]["seconds"]')
echo "    pull of 12 MB at 2 MB/s: ${pull_secs} s"
check "the pull took about 12 MB / 2 MB/s" [ "$pull_secs" -ge 5 ] && [ "$pull_secs" -le 9 ]
imp=$(sed -n 's/.*imported version .* in \([0-9]*\)s$/\1/p' "$T/c/importer.log" | tail -1)
echo "    import of 12 MB at 4 MB/s: ${imp} s"
check "the import took about 12 MB / 4 MB/s" [ "${imp:-0}" -ge 2 ] && [ "${imp:-0}" -le 6 ]
check "the standby equals the source" same_tree "$S" "$T/standby"

# A bad rate: a one-line error with where.
sed -i 's/bandwidth_limit: 2MB/bandwidth_limit: fast/' "$T/c/pullbackup.yaml"
pullbackup status > /dev/null 2> "$T/e"
check "a bad rate is refused, saying where" grep -q 'pullbackup.yaml:8:.*"bandwidth_limit" must be a rate like 20Mbit' "$T/e"
cat "$T/e" | sed 's/^/    /'
finish
