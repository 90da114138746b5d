#!/bin/bash
# kill -9 at random moments (issue 16, part 3), across three hosts: each
# round starts a cycle, waits a random time, kills one daemon outright
# (exporter, pull-backup, importer in turn) and starts it again.  Nothing
# else is done by hand.  After each round: the chain converges on the
# newest version exported, verify --all is clean, and the standby holds
# one whole version, equal to the source as it was when that version was
# exported (never a mix).  At the end every version the archive lists
# restores equal to its saved copy.  Counted: kills, versions lost,
# corrupt, and manual steps (all but the first must be 0).
# NB_KILL_ROUNDS (default 18) sets the rounds; the campaign documented in
# docs/reliability.md runs more.
source "$SRC/tests/it_lib.sh"
source "$SRC/tests/netbed.sh"

netbed_begin ex pb im
mkdir -p "$S/d" "$T/copies"
for i in 1 2 3 4 5; do echo "small file $i" > "$S/d/f$i"; done
head -c 16M /dev/urandom > "$S/big"
KEEP_LAST=6 chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
nb_chain || exit 1
for r in exporter pullbackup importer; do
	nb_start "$r" || exit 1
done
check "a first cycle" exporter now --wait imported --timeout 120s
v=$(standby_version)
cp -a "$S" "$T/copies/$v"
rounds=${NB_KILL_ROUNDS:-18}
kills=0 lost=0 corrupt=0 manual=0 mixed=0
roles=(exporter pullbackup importer)
round=0

mutate() {
	round=$((round + 1))
	echo "round $round" >> "$S/d/f$((round % 5 + 1))"
	echo "new in round $round" > "$S/d/new$round"
	[ $round -gt 2 ] && rm -f "$S/d/new$((round - 2))"
	dd if=/dev/urandom of="$S/big" bs=64k count=8 seek=$((round * 11 % 240)) conv=notrunc status=none
}

# The newest version the exporter made, and a copy of the source as it
# was then (the hook copies $S; the source is not changed during a
# round).
newest_export() { ls "$T/c/exporter/exports" 2> /dev/null | grep -v '\.tmp$' | sort | tail -1; }

for round_i in $(seq 1 "$rounds"); do
	mutate
	snap=$T/snap
	rm -rf "$snap" && cp -a "$S" "$snap"
	victim=${roles[$(((round_i - 1) % 3))]}
	exporter now --wait imported --timeout 120s > "$T/now.out" 2>&1 &
	now=$!
	# A random moment of the cycle: up to 2.5 s in.
	sleep "$(python3 -c "import random; print(round(random.uniform(0, 2.5), 2))")"
	nb_kill "$victim" KILL
	kills=$((kills + 1))
	nb_start "$victim" || { bad "round $round_i: $victim starts again"; break; }
	# (The cycle under way may still complete, or have failed.)
	wait "$now" 2> /dev/null
	# An exporter killed during its export runs it again at start: the
	# next cycle starts once that one is done.
	eventually eval '[ "$(nb_field exporter running)" = - ]'
	# The next cycle: with the same source, whatever was killed.
	if ! exporter now --wait imported --timeout 180s > "$T/next.out" 2>&1; then
		bad "round $round_i ($victim killed): the next cycle completes"
		cat "$T/next.out" >&2
		lost=$((lost + 1))
		continue
	fi
	v=$(standby_version)
	[ "$v" = "$(newest_export)" ] || { lost=$((lost + 1)); echo "round $round_i: standby has $v, newest export $(newest_export)" >&2; }
	rm -rf "$T/copies/$v" && cp -a "$snap" "$T/copies/$v"
	same_tree "$snap" "$T/standby" || { mixed=$((mixed + 1)); echo "round $round_i: the standby is not version $v" >&2; }
	pullbackup verify db --all > "$T/verify.out" 2>&1 || { corrupt=$((corrupt + 1)); cat "$T/verify.out" >&2; }
	echo "    round $round_i: killed the $victim; then version $v everywhere"
done

# Every version the archive lists restores equal to its copy.
unrestorable=0 restored=0
pullbackup list db --json > "$T/list.json" || bad "list --json"
for v in $(python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(open(sys.argv[1])) if x["state"] == "completed"))' "$T/list.json"); do
	restored=$((restored + 1))
	rm -rf "$T/restore"
	if [ ! -d "$T/copies/$v" ]; then
		# A version exported and archived in a round whose cycle was cut:
		# it existed (the exporter made it); its content is not kept
		# here, so only its restore is checked.
		pullbackup restore db --at "$v" "$T/restore" > /dev/null 2>&1 || unrestorable=$((unrestorable + 1))
		continue
	fi
	if ! pullbackup restore db --at "$v" "$T/restore" > /dev/null 2>&1 || ! same_tree "$T/copies/$v" "$T/restore"; then
		unrestorable=$((unrestorable + 1))
		echo "version $v does not restore to its copy" >&2
	fi
done
echo "    kills: $kills; versions lost: $lost; corrupt: $corrupt; mixed standby: $mixed; restored: $restored, unrestorable: $unrestorable; manual steps: $manual"
check "kills: $kills" [ "$kills" -eq "$rounds" ]
check "no version lost" [ "$lost" -eq 0 ]
check "nothing corrupt (verify --all after every kill)" [ "$corrupt" -eq 0 ]
check "the standby always one whole version" [ "$mixed" -eq 0 ]
check "every listed version restores ($restored, keep_last 6)" eval '[ "$unrestorable" -eq 0 ] && [ "$restored" -ge 6 ]'
check "no manual step" [ "$manual" -eq 0 ]
check "no hook left running" eval '! pgrep -f "$T/export-hook|$T/import-hook" > /dev/null'
finish
