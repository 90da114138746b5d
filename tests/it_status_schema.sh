#!/bin/bash
# status --json of each daemon, in several states (nothing yet, after a
# cycle, after a failed import, after promotion), against the schema in
# docs/status.md: no undocumented field, no documented one missing, every
# type as written.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start || exit 1

schema() {
	local role=$1 what=$2
	"$role" status --json > "$T/$role.json" &&
		python3 "$SRC/tests/status_schema.py" "$SRC/docs/status.md" "$role" < "$T/$role.json"
	check "$role status --json $what follows docs/status.md" [ $? -eq 0 ]
}
all() { schema exporter "$1"; schema pullbackup "$1"; schema importer "$1"; }

check_rejects() { ! python3 "$SRC/tests/status_schema.py" "$SRC/docs/status.md" importer <<< "$1" 2> /dev/null; }

all "before any cycle"
check "a cycle" exporter now --wait imported > /dev/null
all "after a cycle"
touch "$T/standby.fail" "$S.fail"
echo two > "$S/f"
exporter now --wait imported > /dev/null 2>&1
rm "$S.fail"
exporter now --wait imported > /dev/null 2>&1
all "after a failed export and a failed import"
rm "$T/standby.fail"
importer promote db --force > /dev/null
all "after promotion"
check "the checker catches an undocumented field" \
	check_rejects '{"proto":1,"role":"importer","version":"x","started":"x","events_received":0,"events_delivered":0,"outbox":[],"inbox":0,"state_dir":"d","sources":[],"surprise":1}'
check "and a wrong type" \
	check_rejects '{"proto":"1","role":"importer","version":"x","started":"x","events_received":0,"events_delivered":0,"outbox":[],"inbox":0,"state_dir":"d","sources":[]}'
check "and a missing field" \
	check_rejects '{"proto":1,"role":"importer","version":"x","started":"x","events_received":0,"events_delivered":0,"outbox":[],"inbox":0,"sources":[]}'
finish
