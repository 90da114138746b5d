#!/bin/bash
# The takeover page in a real browser (headless Chromium, page scripts
# off): it shows the standby's copy, refuses a wrong secret, promotes
# through the form, and the pull-backup's page shows the importer.
# Screenshots go to $BUILD/meson-logs/screenshots/.
source "$SRC/tests/it_lib.sh"

if ! command -v chromium > /dev/null; then
	bad "chromium is not installed (scripts/deps installs it)"
	finish
	exit
fi
copy_chain
echo two > "$S/g"
with_promote_hook
chain_start || exit 1
IM=http://127.0.0.1:$IM_PORT
PB=http://127.0.0.1:$PB_PORT
check "a first cycle" exporter now --wait imported
v=$(standby_version)
TOKEN=$(cat "$T/c/token")
SHOTS=$BUILD/meson-logs/screenshots

drive() {
	timeout 180 /usr/bin/python3 "$SRC/tests/browser.py" "$T/chrome" "$SHOTS"
}
drive > "$T/b1" 2>&1 <<EOS
[
 {"go": "$IM/"}, {"status": 200},
 {"expect": ["understudy importer", "Source db", "standby: takes imports",
   "$v", "OK: version $v", "none in progress", "details",
   "Promote this host"]},
 {"shot": "takeover"},
 {"type": ["input[name=confirm]", "db"]},
 {"type": ["input[name=secret]", "not-the-secret"]},
 {"click": "button[type=submit]"}, {"status": 403},
 {"expect": ["Promotion of db refused", "Wrong secret"]},
 {"shot": "takeover-refused"},
 {"go": "$PB/"}, {"status": 200},
 {"expect": ["understudy pull-backup", "Source db", "1 version kept",
   "importer 1", "up to date"]},
 {"shot": "pullbackup"}
]
EOS
rc=$?
cat "$T/b1"
check "the browser loads both pages and is refused with a wrong secret" [ $rc -eq 0 ]
importer status > "$T/st"
check "the wrong secret changed nothing" contains "$T/st" "role_of_this_host: standby"

drive > "$T/b2" 2>&1 <<EOS
[
 {"go": "$IM/"},
 {"type": ["input[name=confirm]", "db"]},
 {"type": ["input[name=secret]", "$TOKEN"]},
 {"click": "button[type=submit]"}, {"status": 200},
 {"expect": ["db is promoted", "This host is now the primary for db",
   "the standby is writable now"]},
 {"shot": "promoted"},
 {"go": "$IM/"},
 {"expect": ["PROMOTED: it is the primary"]},
 {"absent": ["Promote this host"]}
]
EOS
rc=$?
cat "$T/b2"
check "the browser promotes through the form" [ $rc -eq 0 ]
importer status > "$T/st"
check "the importer says promoted" contains "$T/st" "role_of_this_host: promoted"
check "the promote hook ran once, with the version held" [ "$(cat "$T/promoted.log")" = "$v" ]
check "the screenshots are there" [ -s "$SHOTS/takeover.png" ] && [ -s "$SHOTS/promoted.png" ]

finish
