#!/bin/bash
# The link's secret: a request without it or with the wrong one gets 401 and
# changes nothing; a link whose ends disagree says so and archives nothing;
# a peer of another protocol version gets a clear error.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
mkdir -p "$T/src" && echo data > "$T/src/f"
chain_setup "$T/c" "[$T/export-hook, $T/src]" "[$T/import-hook, $T/standby]"
chain_start || exit 1
TOKEN=$(cat "$T/c/token")

code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

for port in $EX_PORT $PB_PORT $IM_PORT; do
	c=$(code -X POST -H 'X-Understudy-Protocol: 1' \
		--data '{"proto":1,"type":"backup.ready","source":"db","version":"20261121T000000.000Z"}' \
		"http://127.0.0.1:$port/v1/events")
	check "port $port: an event without a secret gets 401" [ "$c" = 401 ]
	c=$(code -X POST -H 'X-Understudy-Protocol: 1' -H 'Authorization: Bearer wrong-secret-0123456789' \
		--data '{"proto":1,"type":"backup.ready","source":"db","version":"20261121T000000.000Z"}' \
		"http://127.0.0.1:$port/v1/events")
	check "port $port: an event with a wrong secret gets 401" [ "$c" = 401 ]
	check "port $port: the 401 says why" contains "$T/body" "wrong secret"
	c=$(code -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v1/status")
	check "port $port: status without the protocol header gets 400" [ "$c" = 400 ]
	c=$(code -H "Authorization: Bearer $TOKEN" -H 'X-Understudy-Protocol: 2' \
		"http://127.0.0.1:$port/v1/status")
	check "port $port: another protocol version gets 400" [ "$c" = 400 ]
	check "port $port: the 400 names both versions" contains "$T/body" \
		"protocol version 2 is not supported"
	c=$(code -H "Authorization: Bearer $TOKEN" -H 'X-Understudy-Protocol: 1' \
		"http://127.0.0.1:$port/v1/status")
	check "port $port: the right secret and version get 200" [ "$c" = 200 ]
done
# A wrong secret changed nothing: no version was queued or pulled.
sleep 1
check "nothing was archived" [ ! -e "$T/c/archive/db/HEAD" ]
check "no event was queued" [ -z "$(ls "$T/c/archive/.queue/inbox")" ]

# The same through the command line: a clear error, exit 1, no export.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/bad-token"
sed "s|token_file: .*|token_file: $T/bad-token|" "$T/c/exporter.yaml" > "$T/bad-exporter.yaml"
timeout 60 "$EXPORTER" -c "$T/bad-exporter.yaml" now --wait imported > "$T/now.out" 2> "$T/now.err"
rc=$?
cat "$T/now.err"
check "now with a wrong secret exits 1" [ $rc -eq 1 ]
check "now with a wrong secret says so" contains "$T/now.err" "401"
check "now with a wrong secret names token_file" contains "$T/now.err" "token_file"
check "no export was made" [ -z "$(ls "$T/c/exporter/exports")" ]

# A link whose two ends hold different secrets: the exporter's event is
# refused, the cycle does not complete, and status says why.
chain_stop
cp "$T/bad-token" "$T/pb-token"
sed -i "s|token_file: .*|token_file: $T/pb-token|" "$T/c/pullbackup.yaml"
chain_start_one "$EXPORTER" exporter
chain_start_one "$PULLBACKUP" pullbackup
# now waited until its timeout (1h) and never said why; it fails at once,
# naming the peer and its 401, while the daemon keeps trying.
start=$(date +%s)
exporter now --wait archived --timeout 10m > "$T/now2.out" 2> "$T/now2.err"
rc=$?
took=$(($(date +%s) - start))
cat "$T/now2.err"
check "a mismatched link does not archive (exit 1)" [ $rc -eq 1 ]
check "now says so at once, not at its timeout (${took}s)" [ "$took" -lt 30 ]
check "naming the pull-backup" contains "$T/now2.err" "http://127.0.0.1:$PB_PORT"
check "and its 401" contains "$T/now2.err" "answered 401"
exporter status > "$T/status.txt"
check "exporter status shows the refused delivery" contains "$T/status.txt" "401"
check "nothing was archived behind a mismatched link" [ ! -e "$T/c/archive/db/HEAD" ]

# Control bytes from an unauthenticated request reach the log escaped,
# with the peer's address: a terminal reading the log takes no orders.
python3 - "$PB_PORT" << 'EOP'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/status?x=\x1b[2J\x1b]0;owned\x07 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n")
s.recv(4096)
s.close()
EOP
check "the refusal is logged with the peer's address" \
	eventually grep -q 'refused /v1/status?x=.* from 127.0.0.1:[0-9]*: wrong secret' "$T/c/pullbackup.log"
check "its control bytes escaped" grep -qF 'x=\x1b[2J\x1b]0;owned\x07 from' "$T/c/pullbackup.log"
check "none raw" [ "$(grep -c $'\x1b' "$T/c/pullbackup.log")" = 0 ]

# A read-only credential (read_token_file): status, metrics and the pages,
# nothing else; promotion least of all.
chain_stop
(umask 077 && openssl rand -hex 20 > "$T/c/read-token")
READ=$(cat "$T/c/read-token")
printf 'read_token_file: %s\npages: secret\n' "$T/c/read-token" >> "$T/c/importer.yaml"
check "read_token_file passes check-config" importer check-config
chain_start_one "$IMPORTER" importer || exit 1
IM=http://127.0.0.1:$IM_PORT
rd() { curl -s -o "$T/rd.body" -w '%{http_code}' -H "Authorization: Bearer $READ" -H "X-Understudy-Protocol: 1" "$@"; }
check "the read-only credential reads /metrics" [ "$(rd "$IM/metrics")" = 200 ]
check "and /v1/status" [ "$(rd "$IM/v1/status")" = 200 ]
check "and the pages" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "x:$READ" "$IM/")" = 200 ]
check "it may not promote (403)" [ "$(rd -X POST -d '{"source":"db","force":true}' "$IM/v1/promote")" = 403 ]
check "saying what the credential may do" grep -q "read-only credential (read_token_file) may read" "$T/rd.body"
check "nor post events (403)" [ "$(rd -X POST -d '{}' "$IM/v1/events")" = 403 ]
check "nor promote through the takeover form (403)" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' -u "x:$READ" -X POST -d 'source=db' "$IM/promote")" = 403 ]
check "the refusals are logged with the peer" grep -q "refused POST /v1/promote from 127.0.0.1:[0-9]*: the read-only credential may not" "$T/c/importer.log"
check "the standby was not promoted" [ ! -e "$T/c/importer/sources/db/promoted.json" ]
check "the secret of token_file still does everything" [ "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $(cat "$T/c/token")" -H "X-Understudy-Protocol: 1" "$IM/v1/status")" = 200 ]

# Promotion takes the secret of promote_token_file when one is set: the
# secret of token_file alone no longer promotes, by API or form.
chain_stop
(umask 077 && openssl rand -hex 20 > "$T/c/promote-token")
printf 'promote_token_file: %s\n' "$T/c/promote-token" >> "$T/c/importer.yaml"
chain_start_one "$IMPORTER" importer || exit 1
full() { curl -s -o "$T/rd.body" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/c/token")" -H "X-Understudy-Protocol: 1" "$@"; }
check "the secret of token_file alone does not promote (403)" [ "$(full -X POST -d '{"source":"db"}' "$IM/v1/promote")" = 403 ]
check "saying promotion needs promote_token_file's" grep -q "promotion needs the secret of promote_token_file" "$T/rd.body"
check "nor does the form with it" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "x:$READ" \
	-u "x:$(cat "$T/c/token")" -X POST --data-urlencode 'source=db' --data-urlencode 'confirm=db' \
	--data-urlencode "secret=$(cat "$T/c/token")" "$IM/promote")" = 403 ]
code=$(full -X POST -H "X-Understudy-Promote-Secret: $(cat "$T/c/promote-token")" -d '{"source":"db"}' "$IM/v1/promote")
check "with it, the request reaches the promotion (which refuses: nothing imported here, $code)" [ "$code" = 409 ]
check "for that reason" grep -q "nothing to promote" "$T/rd.body"
importer promote db > "$T/cli" 2>&1
cat "$T/cli"
check_fails "the CLI sends it (its refusal is not for the secret)" grep -q "promote_token_file" "$T/cli"
check "the standby was not promoted" [ ! -e "$T/c/importer/sources/db/promoted.json" ]
sed -i '/^promote_token_file:/d' "$T/c/importer.yaml"

cp "$T/c/token" "$T/c/read-token"
importer check-config > "$T/o" 2>&1
rc=$?
check "a read-only credential equal to the secret is refused" eval '[ $rc -ne 0 ] && grep -q "read_token_file .* holds the secret of token_file" "$T/o"'
finish
