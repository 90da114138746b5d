#!/bin/bash
# The house style: every C file as .clang-format has it.  The layout
# clang-format gives depends on its version: another major version than
# the one the tree was formatted with (Debian 12's) skips, saying so.
set -u
: "${SRC:?}"
want=14
if ! command -v clang-format > /dev/null; then
	echo "SKIP: clang-format is not installed (apt-get install clang-format)"
	exit 77
fi
major=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "$major" != "$want" ]; then
	echo "SKIP: clang-format $major here; the tree follows clang-format $want"
	exit 77
fi
cd "$SRC" || exit 1
files=$(find common exporter importer pullbackup tests -name '*.[ch]' | sort)
if clang-format --dry-run --Werror $files; then
	echo "ok - $(echo "$files" | wc -l) files as .clang-format has them"
	exit 0
fi
echo "FAIL - run: clang-format -i \$(find common exporter importer pullbackup tests -name '*.[ch]')" >&2
exit 1
