#!/bin/bash
# Owners travel (issue 14, part 3): a tree owned by several users, one of
# them an id without a name, with its top directory 0755, exported and
# imported as root with the files hooks.  The standby's tree has the same
# owners and top directory mode (it came out owned by root, its top 0700);
# a chown alone is a change that reaches the standby; a restore as root
# applies them too.  The manifest names the ids' users and groups.
source "$SRC/tests/it_lib.sh"

if [ "$(id -u)" != 0 ] || ! id nobody > /dev/null 2>&1 || ! getent group nogroup > /dev/null; then
	echo "skip - needs root, the user nobody and the group nogroup"
	finish
	exit
fi
H=$BUILD/exporter # the built files-export
B=$BUILD/importer # the built files-import and files-promote
S=$T/live
mkdir -p "$S/sub" "$S/mixed"
echo a > "$S/a"
echo b > "$S/nameless"
echo c > "$S/sub/c"
echo d > "$S/mixed/d"
ln -s a "$S/link"
chown -R nobody:nogroup "$S"
chown 12345:12346 "$S/nameless"
chown -h daemon:adm "$S/link"
chown daemon:nogroup "$S/mixed"
chmod 0755 "$S"
chmod 0750 "$S/sub"
# Set-id and sticky bits: data in the manifest, dropped on disk unless
# the operator asks for them.
printf '#!/bin/sh\nid -u\n' > "$S/setuid-tool"
chown nobody:nogroup "$S/setuid-tool"
chmod 4755 "$S/setuid-tool"
mkdir "$S/shared" && chown nobody:nogroup "$S/shared" && chmod 1777 "$S/shared"

# owners DIR: each entry's owner and group, and the top directory's.
owners() {
	(cd "$1" && stat -c '%n %U:%G %u:%g %a' . a nameless sub sub/c mixed mixed/d \
		"${SPECIAL[@]}" &&
		stat -c '%n %U:%G' link) 2>&1
}

SPECIAL=()
chain_setup "$T/c" "[$H/files-export, $S]" "[$B/files-import, $T/standby]"
chain_tls || exit 1
chain_start || exit 1
check "cycle 1" exporter now --wait imported
owners "$S" > "$T/want"
owners "$T/standby" > "$T/got"
check "the standby's tree has the live tree's owners and top mode" diff "$T/want" "$T/got"
cat "$T/got"
m=$(find "$T/c/archive" -path '*/versions/*/manifest' | head -1)
check "the manifest carries the top directory" grep -qx "owners $(id -u nobody):$(id -g nobody) 0755" "$m"
check "and the names of the ids" grep -qx "user $(id -u nobody) nobody" "$m"
check "not of a nameless id" [ "$(grep -c '^user 12345 ' "$m")" = 0 ]
check "which stays as it is" [ "$(stat -c %u:%g "$T/standby/nameless")" = 12345:12346 ]
check "the manifest keeps the setuid bit" grep -q "^F 4755 $(id -u nobody):$(id -g nobody) .* setuid-tool$" "$m"
check "the standby does not get it" [ "$(stat -c %a "$T/standby/setuid-tool")" = 755 ]
check "nor the sticky bit" [ "$(stat -c %a "$T/standby/shared")" = 777 ]

chown daemon "$S/a"
touch -r "$S/sub" "$S"
check "cycle 2, a chown alone" exporter now --wait imported
check "reaches the standby" [ "$(stat -c %U "$T/standby/a")" = daemon ]

pullbackup restore db --at now "$T/restored" > "$T/o" 2>&1
check "restore as root" [ $? -eq 0 ]
owners "$S" > "$T/want"
owners "$T/restored" > "$T/got"
check "applies the owners and the top directory's mode" diff "$T/want" "$T/got"
check "without the set-id and sticky bits" [ "$(stat -c %a "$T/restored/setuid-tool"):$(stat -c %a "$T/restored/shared")" = 755:777 ]
pullbackup restore db --at now --special-bits "$T/restored2" > "$T/o" 2>&1
check "with them when asked (--special-bits)" [ "$(stat -c %a "$T/restored2/setuid-tool"):$(stat -c %a "$T/restored2/shared")" = 4755:1777 ]

# The importer keeps them when its source says special_bits: keep.
sed -i 's|^    hook_timeout: 5m|    hook_timeout: 5m\n    special_bits: keep|' "$T/c/importer.yaml"
check "special_bits: keep passes check-config" importer check-config
kill -HUP "$PID_importer"
sleep 0.5
touch "$S/setuid-tool"
check "cycle 3" exporter now --wait imported
check "the standby has the setuid bit when the operator asks" [ "$(stat -c %a "$T/standby/setuid-tool")" = 4755 ]
sed -i 's|special_bits: keep|special_bits: maybe|' "$T/c/importer.yaml"
importer check-config > "$T/o" 2>&1
rc=$?
check "another value is refused, naming the key" eval '[ $rc -ne 0 ] && grep -q '\''special_bits.*must be drop or keep'\'' "$T/o"'
finish
