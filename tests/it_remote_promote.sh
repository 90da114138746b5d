#!/bin/bash
# Who may promote (issue 15, part 3), seen from another host: the importer
# in a network namespace of its own, listening on an address of it, and a
# "remote" client in a second namespace across a veth pair.  Without
# promote_token_file the remote client is refused with the links' secret
# (403), while the importer's own CLI, which calls the daemon's address
# from the same host, is let through.  With promote_token_file, the remote
# client gets through with that secret.
source "$SRC/tests/it_lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null || ! command -v curl > /dev/null; then
	echo "skip - needs root, iproute2 and curl"
	finish
	exit
fi
A=us-a-$$
B=us-b-$$
net=10.231.$((RANDOM % 250)).
if ! ip netns add "$A" 2> /dev/null; then
	echo "skip - cannot make network namespaces here"
	finish
	exit
fi
ip netns add "$B"
# The importer, by its config (ip netns exec may run it as a child).
stop_importer() {
	pkill -TERM -f -- "-c $T/c/importer.yaml serve"
	eventually eval '! pgrep -f -- "-c $T/c/importer.yaml serve" > /dev/null'
}
teardown() {
	stop_importer
	ip netns del "$A" 2> /dev/null
	ip netns del "$B" 2> /dev/null
}
trap 'teardown; cleanup' EXIT
ip link add "va$$" netns "$A" type veth peer name "vb$$" netns "$B"
ip -n "$A" addr add "${net}1/30" dev "va$$"
ip -n "$B" addr add "${net}2/30" dev "vb$$"
for n in "$A" "$B"; do
	ip -n "$n" link set lo up
done
ip -n "$A" link set "va$$" up
ip -n "$B" link set "vb$$" up

copy_chain
sed -i "s|^listen: .*|listen: ${net}1:$IM_PORT|" "$T/c/importer.yaml"
echo 'tls: off' >> "$T/c/importer.yaml"  # another host, on the test's own link
in_a() { ip netns exec "$A" "$@"; }
start_importer() {
	in_a "$IMPORTER" -c "$T/c/importer.yaml" serve >> "$T/c/importer.log" 2>&1 &
	eventually in_a "$IMPORTER" -c "$T/c/importer.yaml" status > /dev/null
}
check "the importer starts on ${net}1" start_importer
TOKEN=$(cat "$T/c/token")
remote() { # curl from host B; prints the status code
	ip netns exec "$B" curl -s -o "$T/body" -w '%{http_code}' -m 10 \
		-H "Authorization: Bearer $TOKEN" -H "X-Understudy-Protocol: 1" "$@"
}
check "host B reads the status with the secret" [ "$(remote "http://${net}1:$IM_PORT/v1/status")" = 200 ]
check "but may not promote with it (403)" \
	[ "$(remote -X POST -d '{"source":"db"}' "http://${net}1:$IM_PORT/v1/promote")" = 403 ]
check "being told promotion is taken from the standby only" grep -q "promotion is taken from this host only" "$T/body"
check "nor with the takeover form" [ "$(ip netns exec "$B" curl -s -o /dev/null -w '%{http_code}' -m 10 \
	-X POST --data-urlencode source=db --data-urlencode confirm=db --data-urlencode "secret=$TOKEN" \
	"http://${net}1:$IM_PORT/promote")" = 403 ]
in_a "$IMPORTER" -c "$T/c/importer.yaml" promote db > "$T/cli" 2>&1
check "the standby's own CLI gets through to the promotion" grep -q "nothing to promote" "$T/cli"
check_fails "(not refused as remote)" grep -q "taken from this host only" "$T/cli"

stop_importer
(umask 077 && openssl rand -hex 20 > "$T/c/promote-token")
printf 'promote_token_file: %s\n' "$T/c/promote-token" >> "$T/c/importer.yaml"
check "with promote_token_file" start_importer
check "host B gets through with its secret" [ "$(remote -X POST -H "X-Understudy-Promote-Secret: $(cat "$T/c/promote-token")" \
	-d '{"source":"db"}' "http://${net}1:$IM_PORT/v1/promote")" = 409 ]
check "to the promotion itself (nothing to promote here)" grep -q "nothing to promote" "$T/body"
finish
