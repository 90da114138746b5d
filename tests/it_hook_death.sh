#!/bin/bash
# Hooks die with their daemon (issue 16, part 7).  An exporter killed
# outright during its export hook: the hook dies with it, what the hook
# had started in the background is ended when the exporter starts again,
# and the export cut short runs again at once.  An importer killed during
# its import hook: the hook dies with it (so the restarted importer never
# runs the import hook while the old one still runs), and what it left is
# ended at the restart, before the import runs again.
source "$SRC/tests/it_lib.sh"

make_copy_hooks
S=$T/src
mkdir -p "$S"
echo one > "$S/f"
# Hooks that leave a child in the background, in their process group,
# each writing its pid where the test can see it.
cat > "$T/slow-export" <<EOH
#!/bin/sh
sleep 300 &
echo \$! > "$T/export-child.pid"
echo \$\$ > "$T/export-hook.pid.new"
mv "$T/export-hook.pid.new" "$T/export-hook.pid"
sleep "\$(cat "$T/export-delay" 2> /dev/null || echo 0)"
exec "$T/export-hook" "$S"
EOH
cat > "$T/slow-import" <<EOH
#!/bin/sh
echo "\$\$ start \$(date +%s.%N)" >> "$T/import-runs"
sleep 300 &
echo \$! > "$T/import-child.pid.new"
mv "$T/import-child.pid.new" "$T/import-child.pid"
sleep "\$(cat "$T/import-delay" 2> /dev/null || echo 0)"
"$T/import-hook" "$T/standby"
rc=\$?
echo "\$\$ end \$(date +%s.%N)" >> "$T/import-runs"
exit \$rc
EOH
chmod +x "$T/slow-export" "$T/slow-import"
chain_setup "$T/c" "[$T/slow-export]" "[$T/slow-import]"
chain_start || exit 1
check "a first cycle" exporter now --wait imported
alive() { kill -0 "$1" 2> /dev/null; }

# The exporter, killed in its hook.
echo 30 > "$T/export-delay"
rm -f "$T/export-hook.pid" "$T/export-child.pid"
pkill -f "sleep 300" # what the first cycle's hooks left
echo two > "$S/f"
exporter now --timeout 1s > /dev/null 2>&1
check "the export hook runs" eventually test -s "$T/export-hook.pid"
hook=$(cat "$T/export-hook.pid")
child=$(cat "$T/export-child.pid")
kill -9 "$PID_exporter"
wait "$PID_exporter" 2> /dev/null
check "the export hook died with the exporter" eventually eval '! alive $hook'
check "what it started in the background is still there until a start" alive "$child"
echo 0 > "$T/export-delay"
chain_start_one "$EXPORTER" exporter || exit 1
check "the restarted exporter ended it first" eventually eval '! alive $child'
check "saying so" grep -q "is still running: ending it before anything else runs" "$T/c/exporter.log"
check "and ran the export cut short again, by itself" \
	eventually grep -q "the last export was cut short (the exporter stopped during it): exporting again" "$T/c/exporter.log"
check "which reaches the standby" eventually eval '[ "$(cat "$T/standby/f")" = two ]'
pkill -f "sleep 300" 2> /dev/null

# The importer, killed in its hook.
echo 4 > "$T/import-delay"
rm -f "$T/import-runs" "$T/import-child.pid"
echo three > "$S/f"
exporter now --timeout 1s > /dev/null 2>&1
check "the import hook runs" eventually test -s "$T/import-child.pid"
child=$(cat "$T/import-child.pid")
hook=$(awk '/start/ {print $1}' "$T/import-runs" | tail -1)
kill -9 "$PID_importer"
wait "$PID_importer" 2> /dev/null
check "the import hook died with the importer" eventually eval '! alive $hook'
chain_start_one "$IMPORTER" importer || exit 1
check "the restarted importer ended what the old hook left" eventually eval '! alive $child'
check "and imported the version by itself" eventually eval '[ "$(cat "$T/standby/f")" = three ]'
check "the hook ran again after the restart" [ "$(grep -c start "$T/import-runs")" -ge 2 ]
cat "$T/import-runs" | sed 's/^/    /'
pkill -f "sleep 300" 2> /dev/null
finish
