#!/usr/bin/env bash
# One command: install what is missing, build, and run `mailrestore demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/mailrestore demo "$@"
