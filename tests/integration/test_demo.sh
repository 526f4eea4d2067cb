#!/usr/bin/env bash
# `mailrestore demo` on a smaller partition: the whole story (generate,
# back up, a day of changes, the daemon with logins and mail, verify) must
# check out, so a change in any module that breaks the main job fails here.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
out=$("$MR" demo --users 60 2>&1) || { echo "$out" | tail -n 40; echo "FAIL: demo"; exit 1; }
echo "$out" | tail -n 3
echo "$out" | grep -q "demo passed" || { echo "FAIL: no verdict"; exit 1; }
