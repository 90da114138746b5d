#!/bin/bash
# The HTML pages, /feed and SIGHUP, over real sockets: the importer's
# takeover page and its promote form (secret in the POST body only, typed
# confirmation, force after a failed import), the pull-backup's status
# page, Atom feeds of runs that outlive a restart, and reloading the
# configuration (pages: secret with HTTP Basic authentication, pages: off,
# a new schedule; a bad file or a change that needs a restart is refused
# and changes nothing).
source "$SRC/tests/it_lib.sh"

copy_chain
echo two > "$S/we<ird>&"
with_promote_hook
chain_start || exit 1
IM=http://127.0.0.1:$IM_PORT
PB=http://127.0.0.1:$PB_PORT
EX=http://127.0.0.1:$EX_PORT
TOKEN=$(cat "$T/c/token")
check "a first cycle" exporter now --wait imported
v1=$(standby_version)

# The takeover page.
code=$(curl -s -D "$T/h" -o "$T/page" -w '%{http_code}' "$IM/")
check "GET / on the importer answers 200 without the secret" [ "$code" = 200 ]
check "as HTML" grep -qi '^content-type: text/html; charset=utf-8' "$T/h"
check "that may run no script" grep -qi "^content-security-policy: default-src 'none'" "$T/h"
check "and is not cached" grep -qi '^cache-control: no-store' "$T/h"
check "it shows the version held" contains "$T/page" "$v1"
check "the last import's result" contains "$T/page" "OK: version $v1"
check "that no import runs" contains "$T/page" "none in progress"
# Without a credential, no details: no file names or hashes, no hook
# output, no peers, not the host's name.
check_fails "without a credential: no hook output" contains "$T/page" "imported $v1"
check_fails "no file names" contains "$T/page" "we&lt;ird"
check_fails "no hashes" grep -Eq "[0-9a-f]{64}" "$T/page"
check_fails "no peer URL" contains "$T/page" "$PB"
check_fails "not the host's name" contains "$T/page" "on $(hostname)<"
check "but a link to the details" contains "$T/page" 'href="/?details"'
check "which ask for a credential (401)" \
	eval '[ "$(curl -s -D "$T/h2" -o /dev/null -w "%{http_code}" "$IM/?details")" = 401 ] && grep -qi "^www-authenticate: basic" "$T/h2"'
curl -s -o "$T/page" -u "x:$TOKEN" "$IM/?details"
check "with the secret: the import hook's output" contains "$T/page" "imported $v1"
check "backup.signature, escaped" contains "$T/page" "./we&lt;ird&gt;&amp;"
check_fails "no raw markup from file names" contains "$T/page" "<ird>"
check "the pull-backup it takes from" contains "$T/page" "$PB"
check "the host's name" contains "$T/page" "on $(hostname)<"
check "a POST form to promote" contains "$T/page" '<form method="post" action="/promote"'
check "asking for the secret in a password field" contains "$T/page" 'type="password" name="secret"'
check "and for a typed confirmation" contains "$T/page" 'name="confirm"'

# The form refuses what is not right, and changes nothing.
post() { curl -s -o "$T/reply" -w '%{http_code}' "$@"; }
check "GET /promote is not a way to promote (404)" [ "$(post "$IM/promote")" = 404 ]
check "a secret in the query string is not taken (403)" \
	[ "$(post --data "source=db&confirm=db" "$IM/promote?secret=$TOKEN")" = 403 ]
check "a wrong secret is refused (403)" \
	[ "$(post --data "source=db&confirm=db&secret=not-the-secret" "$IM/promote")" = 403 ]
check "saying so" contains "$T/reply" "Wrong secret"
check "a wrong confirmation is refused (400)" \
	[ "$(post --data "source=db&confirm=dbx&secret=$TOKEN" "$IM/promote")" = 400 ]
check "a form over 4 KiB is refused from its head (413)" \
	[ "$(post --data "source=db&confirm=db&secret=$TOKEN&pad=$(head -c 5000 /dev/zero | tr '\0' a)" "$IM/promote")" = 413 ]
check "an unknown source is 404" \
	[ "$(post --data "source=nope&confirm=nope&secret=$TOKEN" "$IM/promote")" = 404 ]
importer status > "$T/st"
check "after all that the host is still a standby" contains "$T/st" "role_of_this_host: standby"
check "and the promote hook never ran" [ ! -e "$T/promoted.log" ]

# A failed import shows on the page, and promotion then needs force.
touch "$T/standby.fail"
echo three > "$S/f"
exporter now --wait imported > /dev/null 2>&1
rm "$T/standby.fail"
curl -s -o "$T/page" "$IM/"
check "the page shows the failed import" contains "$T/page" "FAILED: version"
check_fails "not its error without a credential" contains "$T/page" "import hook: refusing"
curl -s -o "$T/page" -u "x:$TOKEN" "$IM/"
check "with the hook's own words" contains "$T/page" "import hook: refusing, as asked"
check "and offers the force box" contains "$T/page" 'name="force"'
check "promotion without force is refused (409)" \
	[ "$(post --data "source=db&confirm=db&secret=$TOKEN" "$IM/promote")" = 409 ]
check "naming the failed import" contains "$T/reply" "failed"

# The pull-backup's status page.
curl -s -o "$T/pbpage" -w '%{http_code}' "$PB/" > "$T/code"
check "GET / on the pull-backup answers 200" [ "$(cat "$T/code")" = 200 ]
check_fails "without a credential it names no peer" eval 'contains "$T/pbpage" "$EX" || contains "$T/pbpage" "$IM"'
check "nor the archive's directory" eval '! contains "$T/pbpage" "$T/c/archive"'
check "the importers by number" contains "$T/pbpage" "<td>importer 1</td>"
curl -s -o "$T/pbpage" -u "x:$TOKEN" "$PB/"
check "it names the exporter" contains "$T/pbpage" "$EX"
check "the versions kept" contains "$T/pbpage" "2 versions kept"
check "the last pull" contains "$T/pbpage" "OK: version"
check "each importer" contains "$T/pbpage" "$IM"
check "its state" contains "$T/pbpage" '<td class="bad">failed</td>'
check "and how far behind it is" grep -qE "<td>[0-9]+ s</td>" "$T/pbpage"

# Feeds.
atom() {
	python3 - "$1" <<'EOP'
import base64, os, sys, urllib.request, xml.etree.ElementTree as ET
A = "{http://www.w3.org/2005/Atom}"
req = urllib.request.Request(sys.argv[1])
if os.environ.get("FEED_SECRET"):
    req.add_header("Authorization", "Basic " + base64.b64encode(
        ("x:" + os.environ["FEED_SECRET"]).encode()).decode())
root = ET.fromstring(urllib.request.urlopen(req, timeout=10).read())
assert root.tag == A + "feed", root.tag
for tag in ("id", "title", "updated", "author"):
    assert root.find(A + tag) is not None, tag
titles = [e.find(A + "title").text for e in root.findall(A + "entry")]
for e in root.findall(A + "entry"):
    assert e.find(A + "id").text and e.find(A + "updated").text
print("\n".join(titles))
print("\n".join(e.find(A + "content").text for e in root.findall(A + "entry")))
EOP
}
atom "$IM/feed" > "$T/feed" 2>&1
check "the importer's /feed is Atom" [ $? -eq 0 ]
check "with the failed import, newest first" [ "$(head -1 "$T/feed" | cut -c1-17)" = "FAILURE: import o" ]
check "and the good one" contains "$T/feed" "OK: import of db version $v1"
check_fails "without a credential, not the hook's output" contains "$T/feed" "import hook: refusing, as asked"
FEED_SECRET=$TOKEN atom "$IM/feed" > "$T/feedfull" 2>&1
check "with it, the hook's output" contains "$T/feedfull" "import hook: refusing, as asked"
atom "$EX/feed" > "$T/exfeed" && atom "$PB/feed" > "$T/pbfeed"
check "the exporter's feed has both exports" [ "$(grep -c '^OK: export of db' "$T/exfeed")" = 2 ]
check "the pull-backup's feed both pulls" [ "$(grep -c '^OK: pull of db' "$T/pbfeed")" = 2 ]
kill "$PID_importer" && wait "$PID_importer"
chain_start_one "$IMPORTER" importer
atom "$IM/feed" > "$T/feed2"
# (The failed import is retried meanwhile: entries may have come.)
check "the importer's feed outlives a restart" \
	[ -z "$(comm -23 <(sort "$T/feed") <(sort "$T/feed2"))" ]

# SIGHUP: pages behind the secret, then off; bad reloads change nothing.
cp "$T/c/importer.yaml" "$T/importer.yaml.orig"
echo "pages: secret" >> "$T/c/importer.yaml"
kill -HUP "$PID_importer"
for i in $(seq 50); do grep -q "reloaded" "$T/c/importer.log" && break; sleep 0.1; done
check "SIGHUP reloads the configuration" contains "$T/c/importer.log" "reloaded"
code=$(curl -s -D "$T/h" -o /dev/null -w '%{http_code}' "$IM/")
check "pages: secret asks for the secret (401)" [ "$code" = 401 ]
check "with HTTP Basic authentication" grep -qi '^www-authenticate: basic' "$T/h"
check "a wrong password is refused" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "admin:wrong" "$IM/")" = 401 ]
check "the secret as password opens the page" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$TOKEN" "$IM/")" = 200 ]
check "and the feed" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "x:$TOKEN" "$IM/feed")" = 200 ]
check "the feed needs it too" [ "$(curl -s -o /dev/null -w '%{http_code}' "$IM/feed")" = 401 ]
check "/health stays public" [ "$(curl -s -o /dev/null -w '%{http_code}' "$IM/health")" = 200 ]

echo "listen: [" >> "$T/c/importer.yaml"
kill -HUP "$PID_importer"
for i in $(seq 50); do grep -q "reload refused" "$T/c/importer.log" && break; sleep 0.1; done
check "a broken file is refused on reload" grep -q "reload refused.*importer.yaml:" "$T/c/importer.log"
check "keeping the running configuration" [ "$(curl -s -o /dev/null -w '%{http_code}' "$IM/")" = 401 ]
sed "s/^listen: .*/listen: 127.0.0.1:1/" "$T/importer.yaml.orig" > "$T/c/importer.yaml"
kill -HUP "$PID_importer"
for i in $(seq 50); do grep -q "needs a restart" "$T/c/importer.log" && break; sleep 0.1; done
check "a new listen address needs a restart" grep -q "reload refused.*listen changed, which needs a restart" "$T/c/importer.log"
check "and changes nothing" [ "$(curl -s -o /dev/null -w '%{http_code}' "$IM/")" = 401 ]
{ cat "$T/importer.yaml.orig"; echo "pages: \"off\""; } > "$T/c/importer.yaml"
kill -HUP "$PID_importer"
for i in $(seq 50); do [ "$(grep -c "reloaded" "$T/c/importer.log")" = 2 ] && break; sleep 0.1; done
check "pages: off hides the page (404)" [ "$(curl -s -o /dev/null -w '%{http_code}' -u "x:$TOKEN" "$IM/")" = 404 ]
cp "$T/importer.yaml.orig" "$T/c/importer.yaml"
kill -HUP "$PID_importer"
for i in $(seq 50); do [ "$(grep -c "reloaded" "$T/c/importer.log")" = 3 ] && break; sleep 0.1; done
check "and back to public" [ "$(curl -s -o /dev/null -w '%{http_code}' "$IM/")" = 200 ]

# A new schedule, by SIGHUP: the exporter starts exporting on its own.
n0=$(grep -c "started (schedule)" "$T/c/exporter.log")
sed -i 's/^schedule: .*/schedule: 2s/' "$T/c/exporter.yaml"
kill -HUP "$PID_exporter"
for i in $(seq 100); do
	[ "$(grep -c "started (schedule)" "$T/c/exporter.log")" -gt "$n0" ] && break
	sleep 0.1
done
check "a schedule set by reload takes effect" [ "$(grep -c "started (schedule)" "$T/c/exporter.log")" -gt "$n0" ]
sed -i 's/^schedule: .*/schedule: "off"/' "$T/c/exporter.yaml"
kill -HUP "$PID_exporter"
for i in $(seq 50); do [ "$(grep -c "reloaded" "$T/c/exporter.log")" = 2 ] && break; sleep 0.1; done
sleep 3	# let a run the schedule started finish
exporter now --wait imported > /dev/null 2>&1

# Promotion through the form, forced.
check "the form with force promotes (200)" \
	[ "$(post --data "source=db&confirm=db&secret=$TOKEN&force=1" "$IM/promote")" = 200 ]
check "the answer says so" contains "$T/reply" "This host is now the primary for db"
check "with the promote hook's output" contains "$T/reply" "the standby is writable now"
check "the promote hook ran once" [ "$(wc -l < "$T/promoted.log")" = 1 ]
importer status > "$T/st"
check "status shows the host promoted" contains "$T/st" "role_of_this_host: promoted"
check "and forced" contains "$T/st" "forced: true"
curl -s -o "$T/page" "$IM/"
check "the page shows it" contains "$T/page" "PROMOTED"
check_fails "and offers no promote form any more" contains "$T/page" 'action="/promote"'
check "posting again is harmless (200)" \
	[ "$(post --data "source=db&confirm=db&secret=$TOKEN" "$IM/promote")" = 200 ]
check "and says it was already" contains "$T/reply" "already promoted"
check "the hook did not run again" [ "$(wc -l < "$T/promoted.log")" = 1 ]
atom "$IM/feed" > "$T/feed"
check "the feed has the promotion" grep -q "^OK: promote of db" "$T/feed"

finish
