#!/usr/bin/env bash
# `cmake --install` puts in place what an operator needs: the binary, the
# lean login hook, the man page mailrestore(8) and the systemd unit; the
# unit starts the daemon in the foreground and restarts it on failure.
set -euo pipefail
BUILD=${MR_BUILD:?MR_BUILD must point at the build folder}
dest=$(mktemp -d /tmp/mr-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
DESTDIR=$dest cmake --install "$BUILD" >/dev/null
for f in usr/local/sbin/mailrestore usr/local/sbin/mailrestore-login \
         usr/local/share/man/man8/mailrestore.8 usr/local/lib/systemd/system/mailrestore.service; do
  [ -e "$dest/$f" ] || fail "$f not installed"
done
"$dest/usr/local/sbin/mailrestore" --help | grep -q "restore-user" || fail "installed binary does not run"
if command -v man >/dev/null; then
  MANWIDTH=80 man -l "$dest/usr/local/share/man/man8/mailrestore.8" 2>/dev/null | grep -q "EXIT STATUS" \
    || fail "man page does not render"
fi
unit=$dest/usr/local/lib/systemd/system/mailrestore.service
grep -q '^ExecStart=/usr/local/sbin/mailrestore daemon ' "$unit" || fail "unit does not run the daemon"
grep -q '^Restart=on-failure' "$unit" || fail "unit does not restart on failure"
grep -q '^Type=simple' "$unit" || fail "unit is not a foreground service"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" 2>&1 | grep -v -e 'Failed to' -e 'not found' -e '^$' | grep -i error \
    && fail "systemd-analyze finds errors" || true
fi
echo "install: ok"
