#!/bin/bash
# File descriptors run out (issue 15, part 4): a pull-backup limited to 64
# of them, 150 connections that send half a request and wait.  accept()
# fails with EMFILE; the daemon used to try again at once, for ever,
# logging each time (17 million lines in 45 s) with /health unanswered.
# Now it pauses accepting, says so once, and answers again as soon as the
# connections go.  Then the gate (common/gate.c): bodies without the secret
# refused from their head, and a cap on connections from one address.
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

# A head that trickles in, a byte every 2 s (each resets the server's
# inactivity timeout): the gate ends it 30 s after its first byte.
python3 - "$PB_PORT" "$T/trickle" << 'EOP' &
import socket, sys, time
# From an address of its own, not to count against the cap below.
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5,
                             source_address=("127.0.0.3", 0))
t0 = time.time()
s.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
s.settimeout(2)
end = "open after 60 s"
while time.time() - t0 < 60:
    try:
        if s.recv(1) == b"":
            end = "%d" % (time.time() - t0)
            break
    except socket.timeout:
        pass
    except OSError:
        end = "%d" % (time.time() - t0)
        break
    try:
        s.sendall(b"a")
    except OSError:
        end = "%d" % (time.time() - t0)
        break
open(sys.argv[2], "w").write(end + "\n")
EOP
trickler=$!

# Bodies are refused from their head, before a byte of them is read: ten
# connections without the secret each say 60 MB and send 8 MB.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID_pullbackup/status"; }
before=$(rss)
python3 - "$PB_PORT" "$T/bodies" << 'EOP'
import select, socket, sys
codes = []
for i in range(10):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"POST /v1/sources/db/versions/20261121T194108.123Z/delta?path=f HTTP/1.1\r\n"
              b"Host: x\r\nContent-Length: 60000000\r\n\r\n")
    # As curl does: send the body while watching for an early answer.
    sent = 0
    try:
        while sent < 8 << 20:
            r, w, _ = select.select([s], [s], [], 5)
            if r:
                break
            if w:
                sent += s.send(b"x" * 65536)
    except OSError:
        pass
    reply = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            reply += d
    except OSError:
        pass
    codes.append(reply.split(b" ")[1].decode() if reply.startswith(b"HTTP/1.1 ") else "none")
    s.close()
open(sys.argv[2], "w").write(" ".join(codes) + "\n")
EOP
after=$(rss)
check "each is answered 401 at once ($(cat "$T/bodies"))" [ "$(cat "$T/bodies")" = "401 401 401 401 401 401 401 401 401 401" ]
check "the pull-backup's memory did not take them (${before} kB, then ${after} kB)" [ $((after - before)) -lt 20000 ]
check "the refusals are logged with the peer" grep -q "refused POST /v1/sources/db/versions/.*delta?path=f from 127.0.0.1:[0-9]*: no secret given" "$T/c/pullbackup.log"

# A cap per peer: the sixth connection from one address is closed at once;
# another address is still answered.
echo "max_connections_per_peer: 5" >> "$T/c/pullbackup.yaml"
kill -HUP "$PID_pullbackup"
eventually grep -q reloaded "$T/c/pullbackup.log"
python3 - "$PB_PORT" "$T/capped" << 'EOP' &
import socket, sys, time
held, closed = [], 0
for i in range(10):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    held.append(s)
    time.sleep(0.05)
for s in held:
    s.settimeout(0.5)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except OSError:
        closed += 1
open(sys.argv[2], "w").write("%d\n" % closed)
time.sleep(3)
EOP
holder=$!
eventually [ -s "$T/capped" ]
check "of ten idle connections from one address, five are closed at once ($(cat "$T/capped"))" [ "$(cat "$T/capped")" = 5 ]
check "which the pull-backup says" grep -q "closing connections: .* from 127.0.0.1 (max_connections 512, max_connections_per_peer 5)" "$T/c/pullbackup.log"
check "meanwhile another address is answered" curl -sf -m 5 --interface 127.0.0.2 -o /dev/null "http://127.0.0.1:$PB_PORT/health"
wait "$holder"
check "and a cycle still goes through" exporter now --wait imported
wait "$trickler"
check "a trickling head is cut off 30 s after its first byte ($(cat "$T/trickle") s)" \
	eval '[ "$(cat "$T/trickle")" -ge 29 ] && [ "$(cat "$T/trickle")" -le 40 ]'
check "which the pull-backup says" grep -q "its request's head took more than 30 s" "$T/c/pullbackup.log"
finish
