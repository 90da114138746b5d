#!/bin/bash
# File descriptors run out (issue 15, part 4): a pull-backup limited to 64
# of them, 150 connections that send half a request and wait.  accept()
# fails with EMFILE; the daemon used to try again at once, for ever,
# logging each time (17 million lines in 45 s) with /health unanswered.
# Now it pauses accepting, says so once, and answers again as soon as the
# connections go.
source "$SRC/tests/it_lib.sh"

copy_chain
chain_start_one "$EXPORTER" exporter || exit 1
CHAIN_AS="prlimit --nofile=64:64 --"
chain_start_one "$PULLBACKUP" pullbackup || exit 1
CHAIN_AS=
chain_start_one "$IMPORTER" importer || exit 1

python3 - "$PB_PORT" "$T/held" << 'EOP' &
import socket, sys, time, os
held = []
for i in range(150):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    except OSError:
        pass
open(sys.argv[2], "w").write("%d\n" % len(held))
time.sleep(4)
for s in held:
    s.close()
EOP
holder=$!
eventually [ -s "$T/held" ]
check "150 half-sent requests are open" [ "$(cat "$T/held")" -ge 100 ]
sleep 2
lines=$(grep -c "accepting connections" "$T/c/pullbackup.log")
check "the pull-backup says it pauses accepting, once ($lines lines)" eval '[ "$lines" -ge 1 ] && [ "$lines" -le 2 ]'
check "and does not spin (its log stays small)" [ "$(wc -c < "$T/c/pullbackup.log")" -lt 100000 ]
wait "$holder"
check "once they go, it answers again" eventually pullbackup status
check "and a cycle goes through" exporter now --wait imported
check "its /health says OK" pullbackup check
finish
