#!/usr/bin/env bash
# The calls between the files of daemon/ follow the graph written at the top
# of daemon/daemon_private.h: a straight line, transport at the bottom, the
# loop (server) above it, the protocol (proto) on top: server -> proto ->
# {async, workers, metrics, peer, limits} -> buf, server -> transport,
# limits -> transport, workers -> metrics, and no file calls back into one
# that calls it: above all, proto.c calls nothing in server.c or
# transport.c. Read from the built objects (nm): a call is a symbol one
# object needs and another defines.
set -euo pipefail
objdir="${MR_BUILD:-}/CMakeFiles/mr_daemon.dir/daemon"
command -v nm >/dev/null || { echo "SKIP: no nm"; exit 77; }
[ -n "${MR_BUILD:-}" ] && [ -f "$objdir/proto.c.o" ] ||
  { echo "SKIP: no daemon objects under ${MR_BUILD:-(MR_BUILD unset)}"; exit 77; }

# file: the files of daemon/ it may call
declare -A may=(
  [daemon]="server transport async workers metrics peer buf"
  [server]="proto transport limits async workers peer buf"
  [proto]="async workers metrics peer limits buf"
  [limits]="transport"
  [transport]=""
  [async]="buf"
  [workers]="metrics buf"
  [metrics]="buf"
  [peer]=""
  [buf]=""
  [client]=""
  [client_tls]=""
  [json]=""
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=()
for o in "$objdir"/*.c.o; do
  f=$(basename "$o" .c.o)
  files+=("$f")
  nm "$o" | awk '$2 ~ /^[TDRB]$/ { print $3 }' | sort -u > "$tmp/$f.def"
  nm "$o" | awk '$1 == "U" { print $2 }' | sort -u > "$tmp/$f.use"
done
[ "${#files[@]}" -ge 8 ] || { echo "FAIL: only ${#files[@]} objects in $objdir"; exit 1; }
bad=0
for f in "${files[@]}"; do
  [ -n "${may[$f]+set}" ] || { echo "FAIL: daemon/$f.c is not in this test's graph"; bad=1; continue; }
  for g in "${files[@]}"; do
    [ "$f" = "$g" ] && continue
    calls=$(comm -12 "$tmp/$f.use" "$tmp/$g.def" | tr '\n' ' ')
    [ -z "$calls" ] && continue
    case " ${may[$f]} " in
      *" $g "*) ;;
      *) echo "FAIL: $f.c calls $g.c ($calls), not in the graph"; bad=1 ;;
    esac
  done
done
for g in server transport; do
  calls=$(comm -12 "$tmp/proto.use" "$tmp/$g.def" | tr '\n' ' ')
  [ -z "$calls" ] || { echo "FAIL: proto.c calls into $g.c ($calls): the loop calls the protocol, never the other way"; bad=1; }
done
[ "$bad" = 0 ] && echo "daemon/ call graph as documented"
exit "$bad"
