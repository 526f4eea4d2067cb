#!/bin/bash
# test_sync_cli.sh: `mailrestore sync` and `mailrestore verify` through the
# binary: exit codes (0, 1, 64, 65, 66), the attic beside DST, the summary
# and --json, the guard, and the verify report lines.
set -u
BIN=${MR_BIN:-}
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
	echo "skipped: MR_BIN does not name the built mailrestore"
	exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect() { # expect CODE cmd...
	local want=$1; shift
	"$@" >"$T/out" 2>"$T/err"
	local got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err"; fail "'$*' exited $got, wanted $want"; }
}

expect 0 "$BIN" sync --help
grep -q "usage: mailrestore sync" "$T/out" || fail "sync --help"
expect 0 "$BIN" verify --help
grep -q "usage: mailrestore verify" "$T/out" || fail "verify --help"
expect 64 "$BIN" sync
expect 64 "$BIN" sync only-one
expect 64 "$BIN" sync --bogus a b
expect 64 "$BIN" sync --max-remove 101 a b
expect 64 "$BIN" verify --source a alice
expect 66 "$BIN" sync "$T/does-not-exist" "$T/dst"

S=$T/S; W=$T/W
mkdir -p "$S/alice/cur" "$S/alice/new" "$S/alice/.Trash/cur" "$W"
for i in 1 2 3 4 5 6; do echo "message $i" > "$S/alice/cur/100$i.M1.h:2,S"; done
echo "new one" > "$S/alice/new/2000.M1.h"
ln -s cur "$S/alice/link"
cp -a "$S/alice" "$W/alice"
# A day of changes.
mv "$S/alice/cur/1001.M1.h:2,S" "$S/alice/cur/1001.M1.h:2,RS"
mv "$S/alice/new/2000.M1.h" "$S/alice/cur/2000.M1.h:2,"
rm "$S/alice/cur/1002.M1.h:2,S"
echo "fresh" > "$S/alice/new/3000.M1.h"

expect 0 "$BIN" sync "$S/alice" "$W/alice"
grep -q "renamed 2" "$T/out" || { cat "$T/out"; fail "summary: renamed 2"; }
grep -q "attic 1" "$T/out" || { cat "$T/out"; fail "summary: attic 1"; }
[ -f "$W/.mailrestore-attic/cur/1002.M1.h:2,S" ] || fail "attic keeps the relative path"
[ -z "$(ls -d "$W"/.mailrestore-tmp.* 2>/dev/null)" ] || fail "scratch folder left behind"
[ -z "$(find "$W/alice" -name '.mrsync-*')" ] || fail "temporary file left in DST"
expect 0 "$BIN" verify --source "$S" --target "$W" alice
expect 0 "$BIN" sync --json "$S/alice" "$W/alice"
grep -q '"result":"equal"' "$T/out" || fail "--json result"
grep -q '"bytes_written":0' "$T/out" || fail "--json: a second sync writes nothing"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" || fail "--json is not JSON"
fi

# verify lists differences as 'user: path: what'.
chmod 0600 "$W/alice/cur/1003.M1.h:2,S"
echo extra > "$W/alice/extra"
expect 1 "$BIN" verify --source "$S" --target "$W" alice
grep -q "^alice: cur/1003.M1.h:2,S: mode differs" "$T/out" || { cat "$T/out"; fail "verify mode line"; }
grep -q "^alice: extra: not in the source" "$T/out" || { cat "$T/out"; fail "verify extra line"; }
expect 1 "$BIN" verify --json --source "$S" --target "$W" alice
grep -q '"equal":false' "$T/out" || fail "verify --json"
expect 65 "$BIN" verify --source "$S" --target "$W" alice ../etc
grep -q "invalid user name" "$T/err" || fail "verify: invalid user name message"
expect 1 "$BIN" verify --source "$S" --target "$W" nobody

# The guard: a source that suddenly lost most files moves nothing.
rm "$S"/alice/cur/100[3-6]*
expect 64 "$BIN" sync --min-remove x "$S/alice" "$W/alice"
expect 1 "$BIN" sync --max-remove 20 --min-remove 4 "$S/alice" "$W/alice"
grep -q "would go to the attic" "$T/err" || { cat "$T/err"; fail "guard problem on stderr"; }
[ -f "$W/alice/cur/1003.M1.h:2,S" ] || fail "guard moved a file"
expect 0 "$BIN" sync --max-remove 100 --attic "$T/myattic" "$S/alice" "$W/alice"
[ -f "$T/myattic/cur/1004.M1.h:2,S" ] || fail "--attic DIR"
[ -f "$T/myattic/extra" ] || fail "--attic DIR: extra"
expect 0 "$BIN" verify --source "$S" --target "$W" alice
echo "ok"
