#!/bin/bash
# unit_sandbox.sh UNIT [--bind SRC DST]... -- COMMAND...
#
# Runs COMMAND the way systemd would run the unit's ExecStart, as far as
# files go, without systemd: in a mount namespace of its own (unshare -m),
# with the unit's PrivateTmp= (fresh /tmp and /var/tmp), StateDirectory=
# (/var/lib/NAME writable; /var/lib is a tmpfs here, so nothing is made on
# the host), ProtectSystem=strict (every other mount read-only but /dev,
# /proc, /sys), ReadWritePaths= (writable again; a leading - means "if it
# exists"), User=/Group= replaced by the test's SANDBOX_USER (uid:gid), and
# NoNewPrivileges=.  --bind SRC DST puts the test's SRC at DST first (DST
# may be under /tmp or /var/lib: it is made inside the namespace).
# Needs root; the host's mounts are never touched.
set -eu
if [ "${1:-}" != --inside ]; then
	exec unshare -m --propagation private -- "$0" --inside "$@"
fi
shift
unit=$1
shift
binds=()
while [ "$1" != -- ]; do
	[ "$1" = --bind ] || { echo "unit_sandbox: expected --bind or --, not $1" >&2; exit 2; }
	binds+=("$2" "$3")
	shift 3
done
shift
# Read now: the unit may be under /tmp, which PrivateTmp hides.
unit_text=$(cat "$unit")
setting() { printf '%s\n' "$unit_text" | sed -n "s/^$1=//p" | tr '\n' ' '; }

# Stage what the test binds under /mnt (a tmpfs here), before /tmp goes.
mount -t tmpfs -o mode=0755 understudy-stage /mnt
i=0
while [ $i -lt ${#binds[@]} ]; do
	mkdir -p "/mnt/$i"
	mount --bind "${binds[$i]}" "/mnt/$i"
	i=$((i + 2))
done
if [ "$(setting PrivateTmp)" = "yes " ]; then
	mount -t tmpfs -o mode=1777 understudy-tmp /tmp
	mount -t tmpfs -o mode=1777 understudy-vartmp /var/tmp
fi
mount -t tmpfs -o mode=0755 understudy-varlib /var/lib
for d in $(setting StateDirectory); do
	mkdir -p "/var/lib/$d"
	chown "$SANDBOX_USER" "/var/lib/$d"
done
i=0
while [ $i -lt ${#binds[@]} ]; do
	dst=${binds[$((i + 1))]}
	mkdir -p "$dst"
	mount --move "/mnt/$i" "$dst"
	i=$((i + 2))
done
umount /mnt

rw=()
for d in $(setting StateDirectory); do
	rw+=("/var/lib/$d")
done
for p in $(setting ReadWritePaths); do
	case $p in
	-*) p=${p#-}; [ -e "$p" ] || continue ;;
	esac
	rw+=("$p")
done
for p in "${rw[@]}"; do
	mount --rbind "$p" "$p"
done
if [ "$(setting ProtectSystem)" = "strict " ]; then
	# Deepest last, so that remounting a parent never hides a child.
	awk '{ print $5 }' /proc/self/mountinfo | sort -u | while read -r m; do
		m=$(printf '%b' "$m")
		case $m in
		/dev | /dev/* | /proc | /proc/* | /sys | /sys/*) continue ;;
		esac
		if [ "$(setting PrivateTmp)" = "yes " ] && { [ "$m" = /tmp ] || [ "$m" = /var/tmp ]; }; then
			continue
		fi
		for p in "${rw[@]}"; do
			[ "$m" = "$p" ] && continue 2
		done
		mount -o remount,bind,ro "$m" 2> /dev/null ||
			echo "unit_sandbox: could not make $m read-only" >&2
	done
fi
nnp=
if [ "$(setting NoNewPrivileges)" = "yes " ]; then
	nnp=--no-new-privs
fi
exec setpriv --reuid="${SANDBOX_USER%%:*}" --regid="${SANDBOX_USER##*:}" --clear-groups \
	$nnp -- "$@"
