# Prelude of the integration tests: a temp dir, the chain helpers, checks
# that count, and cleanup of everything started.
set -u
: "${BUILD:?}" "${SRC:?}"
source "$SRC/tests/chain.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/understudy-it.XXXXXX")
CHECKS=0
FAILS=0

cleanup() {
	chain_stop
	if [ "$FAILS" -eq 0 ]; then
		rm -rf "$T"
	else
		echo "kept $T for inspection" >&2
		for f in "$T"/c/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (last 30 lines)" >&2
			tail -30 "$f" >&2
		done
	fi
}
trap cleanup EXIT

ok() {
	CHECKS=$((CHECKS + 1))
	echo "ok - $*"
}

bad() {
	CHECKS=$((CHECKS + 1))
	FAILS=$((FAILS + 1))
	echo "FAIL - $*" >&2
}

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
	# IT_TIMES=1: each check's start time, to see where a test waits.
	if [ -n "${IT_TIMES:-}" ]; then echo "# $(date +%T.%N | cut -c1-12) $1"; fi
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}

# check_fails DESCRIPTION COMMAND...: the command must fail.
check_fails() {
	local what=$1
	shift
	if "$@"; then bad "$what"; else ok "$what"; fi
}

contains() { grep -qF -- "$2" "$1"; }

# eventually COMMAND...: the command succeeds within 10 s (what a daemon
# does after it has reported, such as removing a replaced copy).
eventually() {
	local i
	for i in $(seq 1 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# within SECS COMMAND...: the command succeeds within SECS seconds.
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# no_entries DIR GLOB: nothing in DIR matches GLOB.
no_entries() { [ -z "$(find "$1" -mindepth 1 -maxdepth 1 -name "$2" -print -quit)" ]; }

# A tree's full description: every entry's type, mode, size, mtime, symlink
# target and every file's SHA-256.  Two trees are equal when these are.
tree_sig() {
	(
		cd "$1" || exit 1
		find . -mindepth 1 -type f -printf '%P f %m %s %T@\n'
		find . -mindepth 1 -type d -printf '%P d %m %T@\n'
		find . -mindepth 1 -type l -printf '%P l %l %T@\n'
		find . -type f -print0 | xargs -0 -r sha256sum
	) | LC_ALL=C sort
}

same_tree() {
	if diff <(tree_sig "$1") <(tree_sig "$2") > "$T/tree.diff"; then
		return 0
	fi
	head -20 "$T/tree.diff" >&2
	return 1
}

finish() {
	# A sanitizer's report in a daemon's log fails the test, whether or
	# not it stopped the daemon.
	if grep -qsE "runtime error:|ERROR: AddressSanitizer" "$T"/c/*.log "$T"/*.log; then
		bad "no sanitizer report in the daemons' logs"
		grep -hsE -A5 "runtime error:|ERROR: AddressSanitizer" "$T"/c/*.log "$T"/*.log | head -40 >&2
	fi
	echo "$CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ]
}

# Hooks the tests use: export copies a tree, import copies it out.
make_copy_hooks() {
	cat > "$T/export-hook" <<'EOH'
#!/bin/sh
set -e
if [ -e "$1.fail" ]; then echo "export hook: boom, as asked" >&2; exit 3; fi
if [ -e "$1.slow" ]; then sleep "$(cat "$1.slow")"; fi
cp -a "$1/." "$UNDERSTUDY_BACKUP_DIR/"
echo "exported $(find "$UNDERSTUDY_BACKUP_DIR" -type f | wc -l) files"
EOH
	cat > "$T/import-hook" <<'EOH'
#!/bin/sh
set -e
if [ -e "$1.fail" ]; then echo "import hook: refusing, as asked" >&2; exit 4; fi
if [ -e "$1.slow" ]; then sleep "$(cat "$1.slow")"; fi
rm -rf "$1.new"
cp -a "$UNDERSTUDY_BACKUP_DIR" "$1.new"
rm -rf "$1"
mv "$1.new" "$1"
echo "imported $UNDERSTUDY_VERSION"
EOH
	chmod +x "$T/export-hook" "$T/import-hook"
}

# copy_chain: the common start of a test: the copy hooks, a source tree
# $S with one file, the three daemons set up in $T/c and started.
copy_chain() {
	make_copy_hooks
	S=$T/src
	mkdir -p "$S" && echo one > "$S/f"
	chain_setup "$T/c" "[$T/export-hook, $S]" "[$T/import-hook, $T/standby]"
}

# with_promote_hook: the importer runs $T/promote-hook, which appends the
# version to $T/promoted.log and says the standby is writable.
with_promote_hook() {
	cat > "$T/promote-hook" <<'EOH'
#!/bin/sh
echo "$UNDERSTUDY_VERSION" >> "$1"
echo "promote hook: the standby is writable now"
EOH
	chmod +x "$T/promote-hook"
	sed -i "s|^    hook_timeout: 5m|    hook_timeout: 5m\n    promote_command: [$T/promote-hook, $T/promoted.log]|" "$T/c/importer.yaml"
}

# The version the importer holds (of its first source).
standby_version() {
	importer status --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["current_version"])'
}
