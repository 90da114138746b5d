# The three-host test bed (issue 16): each daemon on a host of its own, a
# network namespace made by the test, the hosts on one switch (a bridge in
# a namespace of its own), addresses that exist only inside them.  Links
# are shaped with tc tbf (rate), made lossy and cut with iptables (drop
# silently, or reset), and a host's state may live on a small filesystem
# of its own.  Source after it_lib.sh; netbed_up makes it, and the EXIT
# trap removes it with everything started in it.
#
#   netbed_up HOST...        hosts named ex, pb, im, pb2, im2 ...
#   nb_ip HOST               its address
#   nb_in HOST CMD...        run CMD on HOST
#   nb_rate HOST RATE        shape HOST's link, both ways (e.g. 8mbit)
#   nb_loss HOST PERCENT     drop that share of HOST's packets, both ways
#   nb_cut HOST [drop|reset] cut HOST off: packets dropped, or TCP reset
#   nb_heal HOST             undo nb_loss and nb_cut
#   nb_smallfs DIR SIZE      DIR becomes a filesystem of SIZE (tmpfs)
#   nb_delay HOST PORT TO_PORT MS  a relay on HOST's PORT to its TO_PORT,
#                            delaying each way by MS (the kernel has no
#                            sch_netem): a round trip through it costs 2 MS
#   nb_chain                 chain_setup's three daemons moved to ex, pb, im
#   nb_start ROLE [HOST]     start a daemon of $CHAIN_DIR on its host
#   nb_kill ROLE [SIGNAL]    signal it (default KILL), wait till it is gone
#
# netbed_can says why it cannot be made here (not root, no ip, tc or
# iptables, no namespaces): the test then skips.

NB=usnb$$
NB_NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
NB_HOSTS=()
NB_MOUNTS=()
declare -A NB_HOST_OF=([exporter]=ex [pullbackup]=pb [importer]=im)
declare -A NB_PID=()

netbed_can() {
	local c
	[ "$(id -u)" = 0 ] || { echo "needs root"; return 1; }
	for c in ip tc iptables; do
		command -v "$c" > /dev/null || { echo "needs $c (apt-get install iproute2 iptables)"; return 1; }
	done
	ip netns add "$NB-probe" 2> /dev/null || { echo "cannot make network namespaces here"; return 1; }
	ip netns del "$NB-probe"
	if ! ip netns add "$NB-probe" 2> /dev/null ||
		! ip netns exec "$NB-probe" iptables -L > /dev/null 2>&1; then
		ip netns del "$NB-probe" 2> /dev/null
		echo "iptables does not work in a namespace here"
		return 1
	fi
	ip netns del "$NB-probe"
}

# netbed_begin HOST...: the bed with these hosts, the copy hooks and an
# empty source tree $S; or the test skips (exit), saying why.
netbed_begin() {
	local why
	if ! why=$(netbed_can); then
		echo "skip - $why"
		finish
		exit 0
	fi
	netbed_up "$@" || exit 1
	make_copy_hooks
	S=$T/src
	mkdir -p "$S"
}

nb_in() {
	local h=$1
	shift
	ip netns exec "$NB-$h" "$@"
}

nb_index() {
	local i
	for i in "${!NB_HOSTS[@]}"; do
		[ "${NB_HOSTS[$i]}" = "$1" ] && { echo $((i + 1)); return; }
	done
	echo "netbed: no host $1" >&2
	return 1
}

nb_ip() { echo "${NB_NET}$(nb_index "$1")"; }

netbed_up() {
	local h i
	ip netns add "$NB-sw" || return 1
	ip -n "$NB-sw" link add br0 type bridge
	ip -n "$NB-sw" link set br0 up
	ip -n "$NB-sw" link set lo up
	for h in "$@"; do
		NB_HOSTS+=("$h")
		i=${#NB_HOSTS[@]}
		ip netns add "$NB-$h" || return 1
		ip link add eth0 netns "$NB-$h" type veth peer name "p$i" netns "$NB-sw" || return 1
		ip -n "$NB-sw" link set "p$i" master br0
		ip -n "$NB-sw" link set "p$i" up
		ip -n "$NB-$h" addr add "${NB_NET}$i/24" dev eth0
		ip -n "$NB-$h" link set lo up
		ip -n "$NB-$h" link set eth0 up
	done
	trap 'netbed_down; cleanup' EXIT
}

netbed_down() {
	local h p m
	for h in "${NB_HOSTS[@]}"; do
		for p in $(ip netns pids "$NB-$h" 2> /dev/null); do
			kill -9 "$p" 2> /dev/null
		done
	done
	sleep 0.2
	for m in "${NB_MOUNTS[@]}"; do
		umount -l "$m" 2> /dev/null
	done
	for h in "${NB_HOSTS[@]}" sw; do
		ip netns del "$NB-$h" 2> /dev/null
	done
	NB_HOSTS=()
}

# Both ways: HOST's own egress, and the switch's port towards it.
nb_rate() {
	local i
	i=$(nb_index "$1") || return 1
	nb_in "$1" tc qdisc replace dev eth0 root tbf rate "$2" burst 32kb latency 400ms &&
		ip netns exec "$NB-sw" tc qdisc replace dev "p$i" root tbf rate "$2" burst 32kb latency 400ms
}

nb_unrate() {
	local i
	i=$(nb_index "$1") || return 1
	nb_in "$1" tc qdisc del dev eth0 root 2> /dev/null
	ip netns exec "$NB-sw" tc qdisc del dev "p$i" root 2> /dev/null
	return 0
}

nb_loss() {
	local p
	p=$(python3 -c "print($2 / 100)")
	nb_in "$1" iptables -A INPUT -i eth0 -m statistic --mode random --probability "$p" -j DROP &&
		nb_in "$1" iptables -A OUTPUT -o eth0 -m statistic --mode random --probability "$p" -j DROP
}

nb_cut() {
	if [ "${2:-drop}" = reset ]; then
		nb_in "$1" iptables -I INPUT -i eth0 -p tcp -j REJECT --reject-with tcp-reset &&
			nb_in "$1" iptables -I OUTPUT -o eth0 -p tcp -j REJECT --reject-with tcp-reset
	else
		nb_in "$1" iptables -I INPUT -i eth0 -j DROP &&
			nb_in "$1" iptables -I OUTPUT -o eth0 -j DROP
	fi
}

nb_heal() { nb_in "$1" iptables -F; }

nb_delay() {
	local h=$1 port=$2 to=$3 ms=$4 i
	nb_in "$h" python3 "$SRC/tests/delay_relay.py" "$(nb_ip "$h")" "$port" "$(nb_ip "$h")" "$to" "$ms" > "$T/relay-$port.out" 2>&1 &
	for i in $(seq 1 50); do
		grep -q ready "$T/relay-$port.out" 2> /dev/null && return 0
		sleep 0.1
	done
	echo "netbed: the relay on $h:$port did not start" >&2
	return 1
}

nb_smallfs() {
	mkdir -p "$1" && mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" && NB_MOUNTS+=("$1")
}

# The daemons chain_setup wrote in $CHAIN_DIR, each on its host: every
# address of the configs moved there, TLS on every link when NB_TLS=1,
# "tls: off" otherwise.
nb_chain() {
	local r
	if [ "${NB_TLS:-1}" = 1 ]; then
		chain_tls || return 1
	fi
	for r in exporter pullbackup importer; do
		sed -i "s|127.0.0.1:$EX_PORT|$(nb_ip ex):$EX_PORT|g; s|127.0.0.1:$PB_PORT|$(nb_ip pb):$PB_PORT|g; s|127.0.0.1:$IM_PORT|$(nb_ip im):$IM_PORT|g" \
			"$CHAIN_DIR/$r.yaml"
		[ "${NB_TLS:-1}" = 1 ] || echo "tls: off" >> "$CHAIN_DIR/$r.yaml"
	done
}

nb_prog() { echo "$BUILD/$1/understudy-$1"; }

# nb_start ROLE [HOST [NAME]]: NAME.yaml of $CHAIN_DIR (default ROLE) on
# HOST (default the role's), with CHAIN_ENV in its environment.
nb_start() {
	local r=$1 h=${2:-${NB_HOST_OF[$1]}} n=${3:-$1} i
	# (ip netns exec execs the daemon: $! is its pid.)
	# shellcheck disable=SC2086 # CHAIN_ENV: VAR=value words, or none
	ip netns exec "$NB-$h" env ${CHAIN_ENV:-} "$(nb_prog "$r")" -c "$CHAIN_DIR/$n.yaml" serve >> "$CHAIN_DIR/$n.log" 2>&1 &
	NB_PID[$n]=$!
	for i in $(seq 1 100); do
		nb_in "$h" "$(nb_prog "$r")" -c "$CHAIN_DIR/$n.yaml" status > /dev/null 2>&1 && return 0
		kill -0 "${NB_PID[$n]}" 2> /dev/null || break
		sleep 0.1
	done
	echo "netbed: $n did not start; its log:" >&2
	tail -20 "$CHAIN_DIR/$n.log" >&2
	return 1
}

nb_kill() {
	local n=$1 sig=${2:-KILL}
	kill -"$sig" "${NB_PID[$n]}" 2> /dev/null
	wait "${NB_PID[$n]}" 2> /dev/null
	return 0
}

# The verbs, on each daemon's host.
exporter() { timeout 600 ip netns exec "$NB-ex" "$EXPORTER" -c "$CHAIN_DIR/exporter.yaml" "$@"; }
pullbackup() { timeout 600 ip netns exec "$NB-pb" "$PULLBACKUP" -c "$CHAIN_DIR/pullbackup.yaml" "$@"; }
importer() { timeout 600 ip netns exec "$NB-im" "$IMPORTER" -c "$CHAIN_DIR/importer.yaml" "$@"; }

# A member of a daemon's status (JSON), by dotted path: "-" when absent.
# nb_field ROLE PATH (sources.0.progress.bytes_done)
nb_field() {
	"$1" status --json 2> /dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    try:
        v = v[int(k)] if isinstance(v, list) else v[k]
    except (KeyError, IndexError, ValueError, TypeError):
        print("-"); sys.exit(0)
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$2"
}
