#!/bin/bash
# Links across three hosts (issue 16, part 2), each daemon in a network
# namespace of its own, every link TLS.  The protocol's timeout is 3 s
# here instead of 120 (UNDERSTUDY_FAULT=timeout:3) so that each case runs
# in seconds; what holds for 3 s holds for 120.
#   - a slow link (16 Mbit/s) moves a 24 MB file in ~12 s, four times the
#     timeout: timeouts are "no progress", not "the whole transfer";
#     status shows the pull's progress meanwhile;
#   - a lossy one (5% of the packets dropped, 8 Mbit/s) gets there too;
#   - a link cut for less than the timeout: the transfer goes on;
#   - cut past it, silently or by reset: the attempt fails, is retried,
#     and resumes within the file where it was cut;
#   - cut for longer than three attempts: retried for as long as the
#     version is the newest, the failure reported meanwhile, and the chain
#     completes by itself once the link is back;
#   - a pull-backup down while the exporter exports three times: the
#     exporter's queue stays bounded, and the pull-backup catches up with
#     the newest version only.
source "$SRC/tests/it_lib.sh"
source "$SRC/tests/netbed.sh"

netbed_begin ex pb im
mkdir -p "$S/d"
for i in 1 2 3; do echo "small $i" > "$S/d/f$i"; done
head -c 24M /dev/urandom > "$S/big"
chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
nb_chain || exit 1
CHAIN_ENV=UNDERSTUDY_FAULT=timeout:3
for r in exporter pullbackup importer; do
	nb_start "$r" || exit 1
done
check "a first cycle across three hosts" exporter now --wait imported --timeout 120s
check "the standby equals the source" same_tree "$S" "$T/standby"

# now_bg [new]: a new version of big, exported in the background; with
# "new", a new file instead (fetched whole, not by delta).
n=0
now_bg() {
	if [ "${1:-}" = new ]; then
		n=$((n + 1))
		rm -f "$S"/big*
		head -c 24M /dev/urandom > "$S/big-$n"
	else
		head -c 24M /dev/urandom > "$S/big"
	fi
	exporter now --wait imported --timeout 300s > "$T/now.out" 2>&1 &
	NOW=$!
}
# Wait until the pull-backup has received at least $1 bytes of the pull.
pulled() {
	local i
	for i in $(seq 1 300); do
		[ "$(nb_field pullbackup sources.0.progress.bytes_received)" != - ] &&
			[ "$(nb_field pullbackup sources.0.progress.bytes_received)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
imported() { wait "$NOW" && same_tree "$S" "$T/standby"; }
mark() { wc -l < "$T/c/pullbackup.log"; }
since() { tail -n +"$(($1 + 1))" "$T/c/pullbackup.log"; }

# A slow link: 16 Mbit/s to and from the pull-backup.
nb_rate pb 16mbit
m=$(mark)
start=$(date +%s)
now_bg
check "slow link: the pull is under way" pulled 4000000
nb_field pullbackup sources.0.progress > "$T/progress"
cat "$T/progress"
check "slow link: status shows bytes done, total, the rate and the expected end" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
assert 0 < p["bytes_done"] < p["bytes_total"], p
assert p["received_per_second"] > 0 and p["expected_end"], p' "$T/progress"
check "slow link: the cycle completes" imported
took=$(($(date +%s) - start))
echo "    24 MB over 16 Mbit/s both ways took ${took}s (timeout 3 s)"
check "slow link: it took several timeouts" [ "$took" -gt 6 ]
check "slow link: no attempt failed" eval '! since $m | grep -q "failed (attempt"'
nb_unrate pb

# A lossy link: 5% of the packets dropped both ways, at 8 Mbit/s.
nb_rate pb 8mbit
nb_loss pb 5
m=$(mark)
start=$(date +%s)
now_bg new
check "lossy link (5%, 8 Mbit/s): the cycle completes" imported
echo "    24 MB over 8 Mbit/s with 5% loss both ways took $(($(date +%s) - start))s"
nb_heal pb
nb_unrate pb

# A cut shorter than the timeout.  Under half of it: TCP's retransmissions
# back off (RTO, 2 RTO, 4 RTO...), so after a cut of d seconds the next
# packet may come near 2 d later; 1.5 s of a 3 s timeout raced that.
nb_rate pb 32mbit
m=$(mark)
now_bg new
check "short cut: the pull is under way" pulled 3000000
nb_cut pb
sleep 0.8
nb_heal pb
check "short cut: the cycle completes" imported
check "short cut: no attempt failed" eval '! since $m | grep -q "failed (attempt"'

# Cut past the timeout, silently, then by resets: retried and resumed.
for how in drop reset; do
	m=$(mark)
	now_bg new
	check "$how for 8 s: the pull is under way" pulled 8000000
	nb_cut pb "$how"
	sleep 8
	nb_heal pb
	check "$how for 8 s: the cycle completes by itself" imported
	check "$how for 8 s: an attempt failed and was retried" eval 'since $m | grep -q "failed (attempt 1, next in 5s)"'
	since "$m" | grep -m1 "failed (attempt" | cut -c1-300 | sed 's/^/    /'
	line=$(since "$m" | grep "archived version" | tail -1)
	echo "    $line" | cut -c1-220
	received=$(echo "$line" | sed -n 's/.* \([0-9]*\) bytes received.*/\1/p')
	check "$how for 8 s: resumed within the file (1 resumed)" eval 'echo "$line" | grep -q " 1 resumed"'
	check "$how for 8 s: what was received before the cut was not fetched again" \
		[ "${received:-99999999}" -lt 20000000 ]
done

# A long outage: more than three attempts; the link is back after ~45 s.
m=$(mark)
now_bg new
check "long cut: the pull is under way" pulled 3000000
nb_cut pb
reported() { since "$m" | grep -q "failed (3 attempts)"; }
for i in $(seq 1 60); do reported && break; sleep 1; done
check "long cut: the failure is reported after three attempts" reported
check "long cut: while it is still retried" [ "$(nb_field pullbackup sources.0.retrying.attempts)" -ge 3 ]
check "long cut: status says since when it fails" [ "$(nb_field pullbackup sources.0.retrying.failing_since)" != - ]
pullbackup check > "$T/o"
check "long cut: the pull-backup's check warns (exit 1)" [ $? -eq 1 ]
nb_heal pb
wait "$NOW" # it reported the failure
v=$(sed -n 's/^export of db started: version //p' "$T/now.out")
# The next attempt is at most 40 s away.
at_standby() { for i in $(seq 1 90); do [ "$(standby_version)" = "$v" ] && return 0; sleep 1; done; return 1; }
check "long cut: the cycle completes by itself once the link is back" at_standby
check "long cut: the standby equals the source" same_tree "$S" "$T/standby"
pullbackup check > "$T/o"
check "long cut: and the check is OK again" [ $? -eq 0 ]
nb_unrate pb

# The pull-backup down while the exporter exports three times.
nb_kill pullbackup TERM
for i in 1 2 3; do
	echo "while the pull-backup is down: $i" > "$S/d/f1"
	exporter now --wait archived --timeout 1s > /dev/null 2>&1
done
newest=$(ls "$T/c/exporter/exports" | grep -v tmp | sort | tail -1)
pending=$(find "$T/c/exporter/outbox" -type f -name '*.ev' | wc -l)
echo "    exporter outbox while the pull-backup is down: $pending event(s)"
check "pull-backup down: the exporter's queue stays bounded (one event per pull-backup)" [ "$pending" -eq 1 ]
m=$(mark)
nb_start pullbackup || exit 1
check "pull-backup back: it catches up with the newest version" \
	eventually eval '[ "$(cat "$T/c/archive/db/HEAD")" = "$newest" ]'
check "pull-backup back: and pulled only that one" [ "$(since "$m" | grep -c "archived version")" -eq 1 ]
check "pull-backup back: the standby gets it" eventually eval '[ "$(standby_version)" = "$newest" ]'
check "the archive verifies" pullbackup verify db --all

# A far link: 200 ms round trips (a relay in front of the exporter), 5%
# of the packets lost and 1 Mbit/s both ways at the pull-backup.  A file
# of NB_FAR_MB (default 2; the campaign in docs/reliability.md: 24) gets
# there, and so does the next cycle.
RELAY_PORT=$(free_port)
nb_delay ex "$RELAY_PORT" "$EX_PORT" 100 || exit 1
sed -i "s|$(nb_ip ex):$EX_PORT|$(nb_ip ex):$RELAY_PORT|g" "$T/c/pullbackup.yaml"
nb_kill pullbackup TERM
# Its own timeouts as they are (120 s): the 3 s windows of the cases
# above would be stricter than any real deployment.
CHAIN_ENV= nb_start pullbackup || exit 1
nb_rate pb 1mbit
nb_loss pb 5
rm -f "$S"/big*
head -c "${NB_FAR_MB:-2}M" /dev/urandom > "$S/far"
start=$(date +%s)
check "far link (200 ms, 5% loss, 1 Mbit/s): a cycle of ${NB_FAR_MB:-2} MB completes" \
	exporter now --wait imported --timeout 1200s
echo "    ${NB_FAR_MB:-2} MB over 1 Mbit/s, 5% loss, 200 ms round trips: $(($(date +%s) - start))s"
check "far link: the standby equals the source" same_tree "$S" "$T/standby"
echo "far link, again" > "$S/d/f1"
start=$(date +%s)
check "far link: the next cycle (a small change) completes" exporter now --wait imported --timeout 600s
echo "    the next cycle (one small file changed): $(($(date +%s) - start))s"
nb_heal pb
nb_unrate pb
finish
