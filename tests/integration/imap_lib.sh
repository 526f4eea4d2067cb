# shellcheck shell=bash
# Shared by the client tests (test_client_dovecot.sh, test_client_cyrus.sh):
# free ports on a chosen loopback address, bounded waits, the IMAP server
# binaries from Debian's packages, and a private mbsync (isync) set-up.
# Sourced; the caller defines skip() and fail().
#
# Debian's dovecot-imapd and cyrus-imapd conflict (each Provides and
# Conflicts imap-server): installing one removes the other. The tests need
# both servers on one machine, so the IMAP part of the one that is not
# installed is unpacked from its package (same version as the installed
# -core/-common package, from apt's cache or `apt-get download`) into the
# test's own folder and started from there; nothing is installed or
# removed for that.

IMAP_CHECK=${MR_SRC:?MR_SRC must point at the source tree}/tests/integration/imap_check.py
# The system's python3 where there is one: a version manager's shim in front
# of it costs half a second a call on a loaded machine, and these tests call
# it often.
PY=$(command -v /usr/bin/python3 || command -v python3 || echo python3)

# mr_free_port ADDR: a TCP port free on ADDR right now.
mr_free_port() {
	"$PY" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# mr_free_addr: a 127.0.0.x (x in 100..250) with no listener on it, so that
# concurrent tests do not share an address.
mr_free_addr() {
	local x
	for _ in $(seq 20); do
		x=$(( (RANDOM % 150) + 100 ))
		ss -Hltn 2>/dev/null | grep -q "127\.0\.0\.$x:" || { echo "127.0.0.$x"; return 0; }
	done
	echo "127.0.0.$x"
}

# mr_wait_port ADDR PORT [PID]: wait (at most 30 s) until something accepts
# on ADDR:PORT; fail early when PID (the server) is gone.
mr_wait_port() {
	for _ in $(seq 300); do
		"$PY" -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' \
			"$1" "$2" 2>/dev/null && return 0
		[ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# mr_apt_install PKG...: install from Debian's packages (apt's lists are
# brought up to date once when the first try fails, as on a fresh machine).
mr_apt_install() {
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
	timeout 300 apt-get update -qq >/dev/null 2>&1 || return 1
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >/dev/null 2>&1
}

# mr_unpack_deb PKG VERSION DEST: unpack the package PKG=VERSION into DEST
# (from apt's cache, else downloaded with apt-get). Returns 1 when neither
# works.
mr_unpack_deb() {
	local pkg=$1 ver=$2 dest=$3 deb
	mkdir -p "$dest"
	deb=$(ls /var/cache/apt/archives/"${pkg}_${ver//:/%3a}"_*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ]; then
		(cd "$dest" && { timeout 120 apt-get download "$pkg=$ver" >/dev/null 2>&1 ||
			{ timeout 300 apt-get update -qq >/dev/null 2>&1 &&
			  timeout 120 apt-get download "$pkg=$ver" >/dev/null 2>&1; }; }) || return 1
		deb=$(ls "$dest"/"${pkg}"_*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || return 1
	fi
	dpkg-deb -x "$deb" "$dest/root" || return 1
}

# mr_dovecot_imap_conf DIR: prints the Dovecot settings (service blocks,
# which Dovecot merges with the config's own) that run the IMAP processes
# from dovecot-imapd unpacked under DIR when that package is not installed;
# prints nothing when it is (MR_IMAP_UNPACK=1: unpack all the same).
# Returns 1 (with the reason on stderr) when
# neither works: the caller skips.
mr_dovecot_imap_conf() {
	local lib=/usr/lib/dovecot ver s
	[ -z "${MR_IMAP_UNPACK:-}" ] && [ -x $lib/imap ] && [ -x $lib/imap-login ] && return 0
	ver=$(dpkg-query -W -f '${Version}' dovecot-core 2>/dev/null) ||
		{ echo "dovecot-core is not a Debian package here" >&2; return 1; }
	mr_unpack_deb dovecot-imapd "$ver" "$1/deb" ||
		{ echo "dovecot-imapd $ver is neither installed nor obtainable from Debian's packages" >&2; return 1; }
	echo "using Dovecot's IMAP processes from the unpacked dovecot-imapd $ver (not installed: it conflicts with cyrus-imapd)" >&2
	lib=$1/deb/root/usr/lib/dovecot
	for s in imap imap-login imap-hibernate imap-urlauth imap-urlauth-login imap-urlauth-worker; do
		printf 'service %s {\n  executable = %s/%s\n}\n' "$s" "$lib" "$s"
	done
}

# mr_need_mbsync: isync's mbsync, installed when missing (or skip).
mr_need_mbsync() {
	command -v mbsync >/dev/null && return 0
	echo "mbsync is not installed; trying apt-get install isync"
	mr_apt_install isync ||
		skip "isync (mbsync) could not be installed from Debian's packages"
	command -v mbsync >/dev/null || skip "no mbsync after installing isync"
}

# mr_mbsync_conf FILE ADDR PORT USER PASS LOCAL: a private mbsync set-up
# that pulls every folder of USER into the Maildir LOCAL (flags, new mail,
# deletions; nothing is pushed back to the server).
mr_mbsync_conf() {
	mkdir -p "$6"
	cat > "$1" <<EOF
IMAPAccount acct
Host $2
Port $3
User $4
Pass $5
SSLType None
AuthMechs LOGIN PLAIN
PipelineDepth 4

IMAPStore far
Account acct

MaildirStore near
Path $6/
Inbox $6/INBOX
SubFolders Verbatim

Channel ch
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
Expunge Near
SyncState *
EOF
}

# mr_mbsync CONF LOG: one sync, its network log (-Dn: every command sent)
# in LOG. Returns mbsync's exit code.
mr_mbsync() {
	timeout 60 mbsync -c "$1" -a -Dn > "$2" 2>&1
}

# imap_check CMD ARGS...: see imap_check.py.
imap_check() { "$PY" "$IMAP_CHECK" "$@"; }
