#!/bin/bash
# Monitoring: /health (public, 200 or 503 with one line), /metrics
# (Prometheus text, behind the secret), and check with Nagios exit codes.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start || exit 1

for r in exporter pullbackup importer; do
	$r check > "$T/o"
	check "$r check before any data is CRITICAL (exit 2)" [ $? -eq 2 ]
	check "$r check prints one CRITICAL line" grep -q "^CRITICAL: " "$T/o"
done
c=$(curl -s -o "$T/h" -w '%{http_code}' "http://127.0.0.1:$IM_PORT/health")
check "/health before any import is 503 (no secret needed)" [ "$c" = 503 ]

check "a cycle" exporter now --wait imported
for port in $EX_PORT $PB_PORT $IM_PORT; do
	c=$(curl -s -o "$T/h" -w '%{http_code}' "http://127.0.0.1:$port/health")
	check ":$port /health is 200 once fresh" [ "$c" = 200 ]
	check ":$port /health says OK in one line" [ "$(wc -l < "$T/h")" = 1 ] && grep -q "^OK: " "$T/h"
done
for r in exporter pullbackup importer; do
	$r check > "$T/o"
	check "$r check when fresh is OK (exit 0)" [ $? -eq 0 ]
done
sleep 2
importer check --max-age 1s > "$T/o"
check "importer check --max-age 1s on a 2 s old copy is CRITICAL" [ $? -eq 2 ]
check "saying how old" grep -q "old (max_age 1s)" "$T/o"

touch "$T/standby.fail"
echo two > "$S/f"
exporter now --wait imported > /dev/null 2>&1
importer check > "$T/o"
check "importer check after a failed import is WARNING (exit 1)" [ $? -eq 1 ]
cat "$T/o"
rm "$T/standby.fail"

# /metrics: behind the secret, Prometheus text, names prefixed understudy_.
c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB_PORT/metrics")
check "/metrics without the secret is 401" [ "$c" = 401 ]
for port in $EX_PORT $PB_PORT $IM_PORT; do
	curl -s -H "Authorization: Bearer $(cat "$T/c/token")" \
		"http://127.0.0.1:$port/metrics" > "$T/m$port"
	check ":$port /metrics is well-formed Prometheus text" python3 -c '
import re, sys
ok = True
for l in open(sys.argv[1]):
    l = l.rstrip("\n")
    if l.startswith("#") or not l:
        continue
    if not re.match(r"^understudy_[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9]+(\.[0-9]+)?$", l):
        print("bad line:", l); ok = False
sys.exit(0 if ok else 1)' "$T/m$port"
	check ":$port /metrics has the queue depth" grep -q '^understudy_queue_depth{queue="outbox"} ' "$T/m$port"
done
check "exporter metrics: last success and replication lag" \
	grep -q '^understudy_replication_lag_seconds{source="db"} ' "$T/m$EX_PORT"
check "pull-backup metrics: versions kept" grep -q '^understudy_versions{source="db"} 2$' "$T/m$PB_PORT"
check "pull-backup metrics: bytes moved" grep -q '^understudy_received_bytes_total{source="db"} [1-9]' "$T/m$PB_PORT"
check "importer metrics: failures" grep -q '^understudy_failures_total{source="db"} 1$' "$T/m$IM_PORT"
check "importer metrics: last success" grep -q '^understudy_last_success_timestamp_seconds{source="db"} ' "$T/m$IM_PORT"
check "the loop's lag is measured" grep -q '^understudy_loop_lag_max_seconds 0\.[0-9]*$' "$T/m$PB_PORT"
# A stopped process stands for a loop that is busy: it shows.
kill -STOP "$PID_pullbackup"; sleep 0.6; kill -CONT "$PID_pullbackup"
curl -s -H "Authorization: Bearer $(cat "$T/c/token")" \
	"http://127.0.0.1:$PB_PORT/metrics" > "$T/m2"
check "a stall of the loop is counted" grep -q '^understudy_loop_stalls_total [1-9]' "$T/m2"
check "and its length kept" python3 -c '
import re, sys
v = float(re.search(r"^understudy_loop_lag_max_seconds (\S+)$", open(sys.argv[1]).read(), re.M).group(1))
sys.exit(0 if 0.4 <= v < 5 else 1)' "$T/m2"

chain_stop
exporter check > "$T/o"
check "check with the daemon down is UNKNOWN (exit 3)" [ $? -eq 3 ]
check "saying it cannot reach it" grep -q "^UNKNOWN: cannot reach" "$T/o"
finish
