#!/bin/bash
# The whole round trip of docs/operations.md, "Failback", as commands
# (issue 14, part 1): host A exports to the pull-backup, which pushes to
# host B; B is promoted (generation 2) and A is fenced off; B exports
# generation 2 into the same archive and A re-joins as its standby; then
# A is promoted back (generation 3), B is fenced, re-joins, and takes A's
# data again.  Nothing of a fenced primary ever reaches the archive.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
A=$T/siteA # host A's live data
B=$T/siteB # host B's
mkdir -p "$A" && echo a1 > "$A/f"
chain_setup "$T/c" "[$T/export-hook, $A]" "[$T/import-hook, $B]"
# The chain's exporter is host A's, its importer host B's.  Host B's
# exporter and host A's importer, for later:
EXB_PORT=$(free_port)
IMA_PORT=$(free_port)
sed -e "s|127.0.0.1:$EX_PORT|127.0.0.1:$EXB_PORT|" -e "s|$T/c/exporter|$T/c/exporterb|" \
	-e "s|export-hook, $A|export-hook, $B|" "$T/c/exporter.yaml" > "$T/c/exporterb.yaml"
sed -e "s|127.0.0.1:$IM_PORT|127.0.0.1:$IMA_PORT|" -e "s|$T/c/importer|$T/c/importera|" \
	-e "s|import-hook, $B|import-hook, $A|" "$T/c/importer.yaml" > "$T/c/importera.yaml"
exporterb() { timeout 600 "$EXPORTER" -c "$T/c/exporterb.yaml" "$@"; }
importera() { timeout 600 "$IMPORTER" -c "$T/c/importera.yaml" "$@"; }
stop() {
	local pid
	eval "pid=\$PID_$1"
	kill "$pid" && wait "$pid" 2> /dev/null
}
# The pull-backup pulls from exporter URL $1 and pushes to importer $2.
repoint() {
	stop pullbackup
	sed -i -e "s|    exporter: .*|    exporter: http://127.0.0.1:$1|" \
		-e "s|    importers: .*|    importers: [http://127.0.0.1:$2]|" "$T/c/pullbackup.yaml"
	chain_start_one "$PULLBACKUP" pullbackup
}
gens() {
	pullbackup list db --json | python3 -c 'import json,sys; print(" ".join(str(v["generation"]) for v in reversed(json.load(sys.stdin))))'
}
pb_gen() {
	pullbackup status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["generation"])'
}

chain_start || exit 1
check "A's data reaches B" exporter now --wait imported
check "B holds a1" [ "$(cat "$B/f")" = a1 ]

# 1. A dies (as far as anyone knows); B is promoted: generation 2.
importer promote db > "$T/o"
check "promote on B exits 0" [ $? -eq 0 ]
check "and says generation 2 starts there" contains "$T/o" "generation 2 of \"db\" starts here"
check "the pull-backup hears of it" eventually [ "$(pb_gen)" = 2 ]
# A comes back and exports what it wrote meanwhile: fenced off.
echo a2 > "$A/f"
exporter now --wait archived > /dev/null 2> "$T/e"
check "A's export is refused (exit 1)" [ $? -eq 1 ]
check "naming the promotion on B" contains "$T/e" "promotion on $(hostname)"
exporter check > /dev/null
check "A's check says CRITICAL" [ $? -eq 2 ]
check "the archive holds generation 1 only" [ "$(gens)" = 1 ]

# 2. B is the primary of generation 2: its exporter takes it, the
# pull-backup pulls from B and pushes to A, which re-joins as a standby.
echo b1 > "$B/f"
stop exporter
check "B's exporter takes generation 2" exporterb generation 2
chain_start_one "$EXPORTER" exporterb || exit 1
repoint "$EXB_PORT" "$IMA_PORT" || exit 1
chain_start_one "$IMPORTER" importera || exit 1
check "B's data reaches A" exporterb now --wait imported
check "A holds b1" [ "$(cat "$A/f")" = b1 ]
check "the archive's history goes on: generations 1 and 2" [ "$(gens)" = "1 2" ]
importera status > "$T/st"
check "A's importer is in generation 2" contains "$T/st" "generation: 2"

# 3. Fail back: A is promoted (generation 3); B is fenced, re-joins as a
# standby, and A's data reaches it again.
importera promote db > "$T/o"
check "promote on A exits 0, generation 3" contains "$T/o" "generation 3 of \"db\" starts here"
check "the pull-backup hears of it" eventually [ "$(pb_gen)" = 3 ]
echo b2 > "$B/f"
exporterb now --wait archived > /dev/null 2> "$T/e"
check "B's export is refused now" [ $? -eq 1 ]
check "B's exporter says it is fenced" eventually bash -c "timeout 60 '$EXPORTER' -c '$T/c/exporterb.yaml' check | grep -q fenced"
echo a3 > "$A/f"
stop exporterb
stop importer
importer rejoin db > "$T/o"
check "B's importer rejoins (exit 0)" [ $? -eq 0 ]
check "saying it takes imports again" contains "$T/o" "takes imports again"
exporter generation 3 > /dev/null 2> "$T/e"
check "A's exporter takes generation 3" [ $? -eq 0 ]
chain_start_one "$EXPORTER" exporter || exit 1
repoint "$EX_PORT" "$IM_PORT" || exit 1
chain_start_one "$IMPORTER" importer || exit 1
check "A's data reaches B again" exporter now --wait imported
check "B holds a3" [ "$(cat "$B/f")" = a3 ]
check "generations 1, 2 and 3 in one archive" [ "$(gens)" = "1 2 3" ]
check "every version verifies" pullbackup verify db --all
importer status > "$T/st"
check "B is a standby in generation 3" contains "$T/st" "generation: 3"
check "its role is standby" contains "$T/st" "role_of_this_host: standby"
exporter check > "$T/o"
check "A's check is OK again" [ $? -eq 0 ]

# 4. A promotion by mistake (B, generation 4), undone: B re-joins, A's
# exporter takes generation 4, and A stays the primary; nothing of A's is
# lost and B gets A's data again.
importer promote db > /dev/null
check "B promoted by mistake: the pull-backup is in generation 4" eventually [ "$(pb_gen)" = 4 ]
echo a4 > "$A/f"
exporter now --wait archived > /dev/null 2>&1
check "A is fenced off" [ $? -eq 1 ]
stop importer
check "undo, on B: rejoin" importer rejoin db
stop exporter
check "undo, on A: take generation 4" exporter generation 4
chain_start_one "$EXPORTER" exporter || exit 1
chain_start_one "$IMPORTER" importer || exit 1
check "A exports again, to B" exporter now --wait imported
check "B holds a4" [ "$(cat "$B/f")" = a4 ]
check "the feed shows what the operator did on A" \
	grep -q "exports generation 4" "$T/c/exporter/runs.jsonl"
check "and on B" grep -q "rejoined as a standby" "$T/c/importer/queue/runs.jsonl"
finish
