#!/bin/bash
# TLS on every link (issue 15, parts 1 and 2): the three daemons with a
# key and a self-signed certificate each (tls-init), pinning each other's
# fingerprints, every URL https.  A cycle goes through; plain HTTP, no
# client certificate, an unpinned one and an expired one are refused, each
# refusal logged with the peer and the certificate's fingerprint; a peer
# that stops pinning another refuses it and the other says why.  Then the
# same chain with a CA instead of pins: the certificate must be signed by
# it for the name in the URL.
source "$SRC/tests/it_lib.sh"

if ! command -v curl > /dev/null || ! command -v openssl > /dev/null; then
	echo "skip - needs curl and openssl"
	finish
	exit
fi
copy_chain
mkdir -p "$T/c/tls"
prog() { echo "$BUILD/$1/understudy-$1"; }
for r in exporter pullbackup importer; do
	"$(prog $r)" -c "$T/c/$r.yaml" tls-init --name 127.0.0.1 "$T/c/tls/$r.crt" "$T/c/tls/$r.key" > "$T/c/tls/$r.out"
	check "tls-init makes $r's key and certificate" [ $? -eq 0 ]
	sed -n 's/^fingerprint //p' "$T/c/tls/$r.out" > "$T/c/tls/$r.fp"
	check "and prints its fingerprint, the one openssl sees" [ "$(cat "$T/c/tls/$r.fp")" = \
		"sha256:$(openssl x509 -in "$T/c/tls/$r.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)" ]
done
check "the key is 0600" [ "$(stat -c %a "$T/c/tls/exporter.key")" = 600 ]
"$(prog exporter)" -c "$T/c/exporter.yaml" tls-init "$T/c/tls/exporter.crt" "$T/c/tls/other.key" 2> "$T/o"
rc=$?
check "tls-init never replaces a file" eval '[ $rc -ne 0 ] && grep -q "File exists" "$T/o"'
"$(prog exporter)" -c "$T/c/exporter.yaml" tls-init --name 127.0.0.1 "$T/c/tls/stranger.crt" "$T/c/tls/stranger.key" |
	sed -n 's/^fingerprint //p' > "$T/c/tls/stranger.fp"
# Made by openssl under faketime (the daemons may be ASan builds, which
# take no LD_PRELOAD).
faketime "$(date -d '-800 days' '+%Y-%m-%d %H:%M:%S')" openssl req -x509 -newkey ec \
	-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/c/tls/expired.key" -out "$T/c/tls/expired.crt" \
	-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2> /dev/null
echo "sha256:$(openssl x509 -in "$T/c/tls/expired.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)" \
	> "$T/c/tls/expired.fp"
check_fails "the test's expired certificate is expired (openssl -checkend fails)" openssl x509 -in "$T/c/tls/expired.crt" -noout -checkend 0

# The chain's own keys are tls-init's above; chain_pin (tests/chain.sh)
# writes tls: and https URLs.
with_tls() { chain_pin "$@"; }
with_tls exporter pullbackup
with_tls pullbackup exporter importer
with_tls importer pullbackup
for r in exporter pullbackup importer; do
	check "$r: check-config takes tls:" "$(prog $r)" -c "$T/c/$r.yaml" check-config
done
chain_start || exit 1
check "a cycle over TLS" exporter now --wait imported
check "the standby is right" same_tree "$S" "$T/standby"
check "the verbs call their daemon over TLS too" pullbackup status

# Each peer may do what its role needs, nothing more (pins by peer URL).
# as CERT METHOD URL [BODY]: a request with certificate CERT.crt (key
# CERT.key; a bare name is in $T/c/tls) and the secret; prints the
# status, then the body.
as() {
	local r=$1 m=$2 u=$3 b=${4-}
	[[ $r == */* ]] || r=$T/c/tls/$r
	curl -sk -m 10 -o "$T/as.body" -w '%{http_code}\n' --cert "$r.crt" --key "$r.key" \
		-H "Authorization: Bearer $(cat "$T/c/token")" -H "X-Understudy-Protocol: 1" \
		${b:+-H "Content-Type: application/json" --data-binary "$b"} -X "$m" "$u"
	cat "$T/as.body"
}
ev() { printf '{"proto":1,"type":"%s","source":"db","version":"20261121T194108.123Z"}' "$1"; }
v=$(cat "$T/c/archive/db/HEAD")
PB=https://127.0.0.1:$PB_PORT EX=https://127.0.0.1:$EX_PORT IM=https://127.0.0.1:$IM_PORT
as importer POST "$PB/v1/events" "$(ev backup.ready)" > "$T/o"
check "an importer may not announce a version to the pull-backup (403)" grep -q '^403$' "$T/o"
check "which says who it was and what it lacked" grep -q "pullbackup refused 127.0.0.1:[0-9]* (certificate $(cat "$T/c/tls/importer.fp")): only the exporter of source db may send backup.ready for source db" "$T/o"
check "and the pull-backup logs it" grep -q "refused 127.0.0.1:[0-9]* (certificate $(cat "$T/c/tls/importer.fp")): may not send backup.ready" "$T/c/pullbackup.log"
as exporter GET "$PB/v1/sources/db/versions/$v/manifest" > "$T/o"
check "the exporter may not read the archive's versions" eval 'grep -q "^403$" "$T/o" && grep -q "only the importers of source db may read the versions of source db" "$T/o"'
as importer GET "$PB/v1/sources/db/versions/$v/manifest" > "$T/o"
check "its importer may" grep -q '^200$' "$T/o"
as exporter POST "$PB/v1/events" "$(ev import.done)" > "$T/o"
check "the exporter may not report an import" grep -q '^403$' "$T/o"
as pullbackup POST "$EX/v1/now" '{}' > "$T/o"
check "the pull-backup may not start an export (only the exporter's own verbs)" eval 'grep -q "^403$" "$T/o" && grep -q "only this host.s own certificate (the verbs)" "$T/o"'
as pullbackup GET "$EX/v1/status" > "$T/o"
check "peers read each other's status" grep -q '^200$' "$T/o"
# A large body from a peer that may not send it is refused from its head.
curl -sk -m 10 -o "$T/as.body" -w '%{http_code}\n' --cert "$T/c/tls/exporter.crt" --key "$T/c/tls/exporter.key" \
	-H "Authorization: Bearer $(cat "$T/c/token")" -H "X-Understudy-Protocol: 1" -H "Expect:" \
	-H "Content-Length: 50000000" -X POST "$PB/v1/sources/db/versions/$v/delta?path=f" > "$T/o"
check "a 50 MB signature from the exporter is refused before its body (no body sent)" grep -q '^403$' "$T/o"

url=https://127.0.0.1:$PB_PORT/health
check_fails "plain HTTP to a TLS daemon gets no answer" curl -sf -m 5 "http://127.0.0.1:$PB_PORT/health"
check_fails "nor TLS without a client certificate" curl -skf -m 5 "$url"
check_fails "nor an unpinned certificate" curl -skf -m 5 --cert "$T/c/tls/stranger.crt" --key "$T/c/tls/stranger.key" "$url"
check "which the pull-backup logs, with the peer and the fingerprint" \
	eventually grep -q "refused a TLS connection from 127.0.0.1:[0-9]*: its certificate $(cat "$T/c/tls/stranger.fp"): not pinned" "$T/c/pullbackup.log"
check "a pinned one is answered" curl -skf -m 5 --cert "$T/c/tls/importer.crt" --key "$T/c/tls/importer.key" "$url"

# An expired certificate is refused even when pinned.
with_tls pullbackup exporter importer expired
kill -HUP "$PID_pullbackup"
check "the reload takes the new pins" eventually grep -q "reloaded" "$T/c/pullbackup.log"
check_fails "an expired certificate is refused, pinned or not" \
	curl -skf -m 5 --cert "$T/c/tls/expired.crt" --key "$T/c/tls/expired.key" "$url"
check "saying it has expired" eventually grep -q "its certificate $(cat "$T/c/tls/expired.fp"): certificate has expired" "$T/c/pullbackup.log"

# The pull-backup stops pinning the exporter: it refuses its events, and
# the exporter says why.
with_tls pullbackup importer
kill -HUP "$PID_pullbackup"
eventually [ "$(grep -c reloaded "$T/c/pullbackup.log")" -ge 2 ]
echo two > "$S/f"
exporter now --wait archived --timeout 15s > "$T/o" 2>&1
check_fails "an exporter the pull-backup no longer pins archives nothing" [ $? -eq 0 ]
check "the pull-backup logs the refusal" grep -q "its certificate $(cat "$T/c/tls/exporter.fp"): not pinned" "$T/c/pullbackup.log"
exporter status > "$T/o" 2>&1
check "the exporter's status says TLS refused it" grep -q "TLS" "$T/o" || cat "$T/o" >&2

# status shows the certificate; check warns three weeks ahead, and is
# critical once it has expired; a reload takes a renewed certificate.
pullbackup status --json > "$T/o"
check "status shows this host's fingerprint" grep -q "\"fingerprint\": *\"$(cat "$T/c/tls/pullbackup.fp")\"" "$T/o"
check "and when it expires" grep -q '"expires"' "$T/o"
"$(prog importer)" -c "$T/c/importer.yaml" tls-init --days 10 --name 127.0.0.1 "$T/c/tls/soon.crt" "$T/c/tls/soon.key" > /dev/null
sed -i "s|$T/c/tls/importer.crt|$T/c/tls/soon.crt|; s|$T/c/tls/importer.key|$T/c/tls/soon.key|" "$T/c/importer.yaml"
kill -HUP "$PID_importer"
eventually grep -q reloaded "$T/c/importer.log"
importer check > "$T/soon"
check "a certificate that expires in 10 days: check warns (exit 1)" [ $? -eq 1 ]
check "saying so" grep -q "WARNING: the TLS certificate $T/c/tls/soon.crt expires at .*, in [0-9]* days: renew it" "$T/soon"
sed -i "s|$T/c/tls/soon.crt|$T/c/tls/expired.crt|; s|$T/c/tls/soon.key|$T/c/tls/expired.key|" "$T/c/importer.yaml"
kill -HUP "$PID_importer"
eventually [ "$(grep -c reloaded "$T/c/importer.log")" -ge 2 ]
importer check > "$T/o"
rc=$?
check "an expired one: CRITICAL (exit 2)" eval '[ $rc -eq 2 ] && grep -q "CRITICAL: the TLS certificate .* expired" "$T/o"'
chain_stop

# A CA instead of pins: certificates it signs for the name in the URL.
A=$T/ca
mkdir "$A"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$A/ca.key" \
	-out "$A/ca.crt" -days 30 -subj /CN=understudy-test-ca 2> /dev/null
leaf() { # NAME SAN
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$A/$1.key" \
		-out "$A/$1.csr" -subj "/CN=$1" 2> /dev/null &&
	openssl x509 -req -in "$A/$1.csr" -CA "$A/ca.crt" -CAkey "$A/ca.key" -CAcreateserial \
		-days 30 -out "$A/$1.crt" -extfile <(printf 'subjectAltName=%s\n' "$2") 2> /dev/null
}
for r in exporter pullbackup importer; do
	leaf $r IP:127.0.0.1
	sed -i '/^tls:/,$d' "$T/c/$r.yaml"
	printf 'tls:\n  certificate: %s\n  key: %s\n  ca: %s\n' "$A/$r.crt" "$A/$r.key" "$A/ca.crt" >> "$T/c/$r.yaml"
done
leaf elsewhere DNS:backup.example.org
echo "sha256:$(openssl x509 -in "$A/elsewhere.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)" > "$A/elsewhere.fp"
chain_start || exit 1
echo three > "$S/f"
check "a cycle with certificates from a CA" exporter now --wait imported
check "the standby is right" same_tree "$S" "$T/standby"
# A certificate the CA signed, for a host that is none of the peers:
# TLS takes it, and it may do nothing.
leaf intruder IP:127.0.0.9
v=$(cat "$T/c/archive/db/HEAD")
as "$A/intruder" POST "$PB/v1/events" "$(ev backup.ready)" > "$T/o"
check "a CA-signed stranger may not announce a version" eval 'grep -q "^403$" "$T/o" && grep -q "only the exporter of source db" "$T/o"'
as "$A/intruder" GET "$EX/v1/sources/db/versions/$v/manifest" > "$T/o"
check "nor read the exporter's versions" eval 'grep -q "^403$" "$T/o" && grep -q "only the pull-backups this exporter notifies" "$T/o"'
as "$A/intruder" POST "$IM/v1/events" "$(ev import.ready)" > "$T/o"
check "nor offer the standby a version" eval 'grep -q "^403$" "$T/o" && grep -q "only the pull-backup of source db" "$T/o"'
as "$A/pullbackup" GET "$EX/v1/sources/db/versions/$v/manifest" > "$T/o"
check "the pull-backup, signed for its URL's host, may (the version is no longer served: not 403)" eval '! grep -q "^403$" "$T/o" && grep -Eq "^(200|404|410)$" "$T/o"' 
sed -i "s|$A/exporter.crt|$A/elsewhere.crt|; s|$A/exporter.key|$A/elsewhere.key|" "$T/c/exporter.yaml"
kill -HUP "$PID_exporter"
eventually grep -q reloaded "$T/c/exporter.log"
echo four > "$S/f"
exporter now --wait archived --timeout 20s > /dev/null 2>&1
check_fails "an exporter whose certificate names another host is not pulled from" [ $? -eq 0 ]
# Refused at its first word: its backup.ready comes with a certificate
# that does not name the exporter's host.
check "the pull-backup says why" grep -Eq "TLS: the peer's certificate sha256:[0-9a-f]* was refused: IP address mismatch|refused 127.0.0.1:[0-9]* \(certificate $(cat "$A/elsewhere.fp")\): may not send backup.ready for source db" "$T/c/pullbackup.log"
finish
