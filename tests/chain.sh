# Shared by the integration tests and the demo: set up the three daemons on
# free loopback ports in a fresh directory, start them, stop them.
# Source it with BUILD set to the meson build directory.

: "${BUILD:?set BUILD to the meson build directory}"
EXPORTER=$BUILD/exporter/understudy-exporter
PULLBACKUP=$BUILD/pullbackup/understudy-pullbackup
IMPORTER=$BUILD/importer/understudy-importer
CHAIN_PIDS=()

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# chain_setup DIR EXPORT_CMD_YAML IMPORT_CMD_YAML
# Writes DIR/{token,exporter.yaml,pullbackup.yaml,importer.yaml}.
chain_setup() {
	local dir=$1 export_cmd=$2 import_cmd=$3
	mkdir -p "$dir"
	EX_PORT=$(free_port)
	PB_PORT=$(free_port)
	IM_PORT=$(free_port)
	while [ "$PB_PORT" = "$EX_PORT" ]; do PB_PORT=$(free_port); done
	while [ "$IM_PORT" = "$EX_PORT" ] || [ "$IM_PORT" = "$PB_PORT" ]; do
		IM_PORT=$(free_port)
	done
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/token")
	cat > "$dir/exporter.yaml" <<EOC
source: db
listen: 127.0.0.1:$EX_PORT
state_dir: $dir/exporter
export_command: $export_cmd
schedule: "off"
notify: [http://127.0.0.1:$PB_PORT]
token_file: $dir/token
hook_timeout: 5m
EOC
	cat > "$dir/pullbackup.yaml" <<EOC
listen: 127.0.0.1:$PB_PORT
archive_dir: $dir/archive
token_file: $dir/token
sources:
  db:
    exporter: http://127.0.0.1:$EX_PORT
    importers: [http://127.0.0.1:$IM_PORT]
    retention: {keep_last: ${KEEP_LAST:-100}}
EOC
	cat > "$dir/importer.yaml" <<EOC
listen: 127.0.0.1:$IM_PORT
state_dir: $dir/importer
token_file: $dir/token
sources:
  db:
    pullbackup: http://127.0.0.1:$PB_PORT
    import_command: $import_cmd
    hook_timeout: 5m
EOC
	CHAIN_DIR=$dir
}

# chain_tls: after chain_setup, TLS on every link: a key and self-signed
# certificate per daemon (tls-init) in $CHAIN_DIR/tls, each daemon pinning
# the peers it talks to, every URL https.
chain_tls() {
	local r
	mkdir -p "$CHAIN_DIR/tls"
	for r in exporter pullbackup importer; do
		"$BUILD/$r/understudy-$r" -c "$CHAIN_DIR/$r.yaml" tls-init --name 127.0.0.1 \
			"$CHAIN_DIR/tls/$r.crt" "$CHAIN_DIR/tls/$r.key" |
			sed -n 's/^fingerprint //p' > "$CHAIN_DIR/tls/$r.fp" || return 1
	done
	chain_pin exporter pullbackup &&
	chain_pin pullbackup exporter importer &&
	chain_pin importer pullbackup
}

# chain_pin ROLE PEER...: ROLE's tls: with its certificate and, for each
# peer named, its fingerprint ($CHAIN_DIR/tls/PEER.fp) pinned for its URL
# (so that each may do only what its role needs), URLs https.
chain_pin() {
	local r=$1 p addr
	shift
	sed -i 's|http://|https://|g; /^tls:/,$d' "$CHAIN_DIR/$r.yaml"
	cat >> "$CHAIN_DIR/$r.yaml" << EOC
tls:
  certificate: $CHAIN_DIR/tls/$r.crt
  key: $CHAIN_DIR/tls/$r.key
  pins:
EOC
	for p in "$@"; do
		# A certificate of no daemon of the chain: pinned for the host.
		addr=127.0.0.1
		[ -f "$CHAIN_DIR/$p.yaml" ] && addr=https://$(sed -n 's/^listen: *//p' "$CHAIN_DIR/$p.yaml")
		echo "    '$addr': $(cat "$CHAIN_DIR/tls/$p.fp")" >> "$CHAIN_DIR/$r.yaml"
	done
}

# chain_start_one PROGRAM NAME: start a daemon, wait until it answers.
# chain_start_one PROG NAME: start one daemon; CHAIN_ENV (VAR=value
# words) goes into its environment, and CHAIN_AS (a command that runs
# another as some user, e.g. setpriv ...) in front of it.
chain_start_one() {
	local prog=$1 name=$2 i
	# shellcheck disable=SC2086 # CHAIN_ENV: VAR=value words, or none
	${CHAIN_AS:-} env ${CHAIN_ENV:-} "$prog" -c "$CHAIN_DIR/$name.yaml" serve >> "$CHAIN_DIR/$name.log" 2>&1 &
	CHAIN_PIDS+=($!)
	eval "PID_$name=$!"
	for i in $(seq 1 100); do
		if "$prog" -c "$CHAIN_DIR/$name.yaml" status >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "chain: $name did not start; its log:" >&2
	cat "$CHAIN_DIR/$name.log" >&2
	return 1
}

chain_start() {
	chain_start_one "$EXPORTER" exporter &&
	chain_start_one "$PULLBACKUP" pullbackup &&
	chain_start_one "$IMPORTER" importer
}

chain_stop() {
	local p
	for p in "${CHAIN_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${CHAIN_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	CHAIN_PIDS=()
}

# The verbs, each bounded in time so that a hang fails instead of blocking.
# shellcheck disable=SC2086 # CHAIN_AS: words
exporter() { timeout 600 ${CHAIN_AS:-} "$EXPORTER" -c "$CHAIN_DIR/exporter.yaml" "$@"; }
# shellcheck disable=SC2086
pullbackup() { timeout 600 ${CHAIN_AS:-} "$PULLBACKUP" -c "$CHAIN_DIR/pullbackup.yaml" "$@"; }
# shellcheck disable=SC2086
importer() { timeout 600 ${CHAIN_AS:-} "$IMPORTER" -c "$CHAIN_DIR/importer.yaml" "$@"; }
