#!/usr/bin/env bash
# The socket's mode and group are set without following a symlink: a local
# user who can write the socket's folder and swaps the freshly bound socket
# for a symlink must not get the daemon (root) to chmod the file it points
# to. A shim around bind() makes the swap happen every time.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "SKIP: no C compiler for the bind() shim"; exit 77; }
setup_dir socket-swap
mkuser u01 2
"$MR" backup --source "$S" --out "$B" >/dev/null
cat > "$dir/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
		(int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	const char *want = getenv("SWAP_SOCKET"), *victim = getenv("SWAP_VICTIM");
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	char moved[sizeof(un->sun_path) + 8];
	int r = real(fd, sa, len);

	if (r == 0 && sa->sa_family == AF_UNIX && want && victim && strcmp(un->sun_path, want) == 0) {
		snprintf(moved, sizeof(moved), "%s.moved", want);
		if (rename(want, moved) < 0 || symlink(victim, want) < 0)
			abort();
	}
	return r;
}
C
"$CC" -shared -fPIC -o "$dir/shim.so" "$dir/shim.c" -ldl 2>"$dir/cc.err" ||
  { echo "SKIP: the bind() shim does not build: $(head -c 300 "$dir/cc.err")"; exit 77; }
echo secret > "$dir/victim"
chmod 600 "$dir/victim"
for grp in "" "--socket-group $(id -gn nobody 2>/dev/null || echo 0)"; do
  set +e
  # shellcheck disable=SC2086
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$dir/shim.so" \
    SWAP_SOCKET="$SOCK" SWAP_VICTIM="$dir/victim" \
    timeout 20 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
    --background off --exit-when-done $grp >>"$dir/daemon.log" 2>&1 &
  pid=$!
  # A daemon that did not notice the swap keeps running: stop it.
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  set -e
  mode=$(stat -c %a "$dir/victim")
  [ "$mode" = 600 ] || fail "the socket's chmod followed a swapped-in symlink ($grp): victim now mode $mode"
  [ "$(stat -c %g "$dir/victim")" = 0 ] || fail "the socket's chown followed a swapped-in symlink ($grp)"
  # The socket itself got its mode all the same (from the umask at bind).
  want=666; [ -z "$grp" ] || want=660
  [ "$(stat -c %a "$SOCK.moved")" = "$want" ] || fail "socket mode $(stat -c %a "$SOCK.moved"), want $want"
  rm -f "$SOCK" "$SOCK.moved"
done
echo "ok: the socket's mode and group never follow a symlink"
