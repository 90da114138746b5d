#!/bin/bash
# The systemd units, as meson generates them, pass systemd-analyze verify
# (with ExecStart pointing at the binaries just built), are Type=notify and
# carry the hardening options.
source "$SRC/tests/it_lib.sh"

if ! command -v systemd-analyze > /dev/null; then
	echo "skip - systemd-analyze is not installed"
	finish
	exit $?
fi
mkdir -p "$T/units"
for r in exporter pullbackup importer; do
	u=understudy-$r.service
	check "$u was generated" [ -f "$BUILD/systemd/$u" ]
	sed "s|[^ =]*/bin/understudy-$r|$BUILD/$r/understudy-$r|g" \
		"$BUILD/systemd/$u" > "$T/units/$u"
	SYSTEMD_LOG_LEVEL=notice timeout 60 systemd-analyze verify "$T/units/$u" > "$T/out" 2>&1
	rc=$?
	cat "$T/out"
	check "$u passes systemd-analyze verify" [ $rc -eq 0 ]
	check "$u says nothing is wrong" [ ! -s "$T/out" ]
	for opt in Type=notify NoNewPrivileges=yes PrivateTmp=yes ProtectSystem=strict \
		   ReadWritePaths= User=understudy LimitNOFILE=; do
		check "$u has $opt" grep -q "^$opt" "$T/units/$u"
	done
done
# Documentation= pointed to a file the install did not create.
DESTDIR=$T/root meson install -C "$BUILD" --no-rebuild > "$T/install.log" 2>&1
check "meson install succeeds" [ $? -eq 0 ]
for r in exporter pullbackup importer; do
	doc=$(sed -n 's|^Documentation=file://||p' "$BUILD/systemd/understudy-$r.service")
	check "understudy-$r.service's Documentation= is installed ($doc)" [ -s "$T/root$doc" ]
done
finish
