#!/usr/bin/env bash
# `cmake --install` puts in place everything the documents name by its
# installed path: the binary, the lean login hook, the Dovecot hook and the
# Postfix wrapper, the man page mailrestore(8), the systemd unit with its
# environment file, the runbook and the wiring guides. The unit starts the
# daemon in the foreground, reads /etc/default/mailrestore (with extra flags
# in MR_OPTS), waits for the mounts of S, T and B, restarts on failure
# (not after 66, an unmounted source), and `systemd-analyze verify` accepts
# it (skipped with a note where systemd-analyze is missing).
set -euo pipefail
BUILD=${MR_BUILD:?MR_BUILD must point at the build folder}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
dest=$(mktemp -d /tmp/mr-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
DESTDIR=$dest cmake --install "$BUILD" >/dev/null
p=$dest/usr/local
for f in sbin/mailrestore sbin/mailrestore-login sbin/mailrestore-checkpassword \
         sbin/mailrestore-deliver share/man/man8/mailrestore.8 lib/systemd/system/mailrestore.service \
         share/doc/mailrestore/mailrestore.default share/doc/mailrestore/10-mailrestore.conf \
         share/doc/mailrestore/RUNBOOK.md share/doc/mailrestore/README.dovecot.md \
         share/doc/mailrestore/README.postfix.md; do
  [ -e "$p/$f" ] || fail "$f not installed"
done
for f in mailrestore mailrestore-login mailrestore-checkpassword mailrestore-deliver; do
  [ -x "$p/sbin/$f" ] || fail "sbin/$f is not executable"
done
"$p/sbin/mailrestore" --help | grep -q "restore-user" || fail "installed binary does not run"
"$p/sbin/mailrestore-deliver" </dev/null 2>/dev/null && fail "the wrapper without a user exited 0" || true
# every installed path the documents name exists in the install
for doc in "$SRC/README.md" "$SRC/contrib/dovecot/README.md" "$SRC/contrib/postfix/README.md" \
           "$SRC/contrib/dovecot/10-mailrestore.conf" "$SRC/docs/RUNBOOK.md"; do
  for path in $(grep -o '/usr/local/[A-Za-z0-9_./-]*' "$doc" | sed 's/[.]$//' | sort -u); do
    case $path in */your-*) continue ;; esac
    [ -e "$dest$path" ] || fail "$(basename "$doc") names $path, which is not installed"
  done
done
if command -v man >/dev/null; then
  MANWIDTH=80 man -l "$p/share/man/man8/mailrestore.8" 2>/dev/null | grep -q "EXIT STATUS" \
    || fail "man page does not render"
fi
unit=$p/lib/systemd/system/mailrestore.service
grep -q '^ExecStart=/usr/local/sbin/mailrestore daemon .* \$MR_OPTS$' "$unit" || fail "unit does not run the daemon with MR_OPTS"
grep -q '^EnvironmentFile=-/etc/default/mailrestore$' "$unit" || fail "unit reads no environment file"
grep -q '^RequiresMountsFor=' "$unit" || fail "unit does not wait for the mounts"
grep -q '^Restart=on-failure' "$unit" || fail "unit does not restart on failure"
grep -q '^RestartPreventExitStatus=.*66' "$unit" || fail "unit restarts after exit 66"
grep -q '^Type=simple' "$unit" || fail "unit is not a foreground service"
grep -q '@[A-Z]*@' "$unit" && fail "unit has unsubstituted @VARS@"
if ! command -v systemd-analyze >/dev/null; then
  echo "NOTE: systemd-analyze is not installed (package systemd): unit not verified"
else
  # --root: the ExecStart binary is looked up in the install, not on this
  # machine; the install root gets a copy of the system's own units
  # (sysinit.target and the like) for the dependencies.
  sysunits=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
  mkdir -p "$dest/usr/lib/systemd"
  cp -a "$(readlink -f "$sysunits")" "$dest/usr/lib/systemd/system"
  out=$(systemd-analyze verify --man=no --root="$dest" "$unit" 2>&1) && rc=0 || rc=$?
  if [ $rc != 0 ] || [ -n "$out" ]; then
    if echo "$out" | grep -qi -e 'not booted' -e 'Failed to initialize manager' -e 'Failed to setup'; then
      echo "NOTE: systemd-analyze cannot run here: $out"
    else
      fail "systemd-analyze verify: rc=$rc: $out"
    fi
  fi
fi
echo "install: ok"
