# postfix_lib.sh: what the tests that run a private Postfix share
# (test_postfix.sh, test_multihost.sh). Sourced, not run.

# Prints master.cf's service lines every private Postfix of the tests runs
# (after the test's own smtpd line, before its mailrestore transport).
mr_postfix_services() {
	cat <<'EOF_SERVICES'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF_SERVICES
}

# Stops the private Postfix whose queue and etc/ are below $1 (when it
# runs): `postfix stop`, then its master killed if it has not gone in 5 s.
mr_postfix_stop() {
	local pf=$1 pid
	[ -f "$pf/queue/pid/master.pid" ] || return 0
	postfix -c "$pf/etc" stop >/dev/null 2>&1
	pid=$(tr -d ' ' < "$pf/queue/pid/master.pid" 2>/dev/null)
	for _ in $(seq 50); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	return 0
}
