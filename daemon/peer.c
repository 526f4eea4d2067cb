/*
 * peer.c: who is on the other end of a connection and what it may do.
 *
 * The kernel vouches for the peer (SO_PEERCRED: uid, gid; SO_PEERGROUPS:
 * the supplementary groups the peer process had when it connected). A
 * peer is in a group when that group is its primary gid, one of those
 * supplementary groups, or one the group database gives its uid's name
 * (getgrouplist, remembered for 10 s), so a hook that dropped its groups
 * still counts. Rights are worked out once per connection, on first need.
 * A network peer (transport.c let its address in) has no uid and no
 * group: it gets PEER_NETWORK, and the table of verbs says what that
 * allows.
 */
#include "daemon/daemon_private.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define PEER_GROUPS_MAX 1024

/* 1 when gid is in list (n entries). */
static int has_gid(const gid_t *list, int n, gid_t gid)
{
	int i;

	for (i = 0; i < n; i++)
		if (list[i] == gid)
			return 1;
	return 0;
}

/* What the group database says of a uid, remembered a short while: a
 * client that connects in a loop must not make the event loop read the
 * group database each time. Only the event loop calls these. */
#define DB_CACHE 64
#define DB_CACHE_SECONDS 10.0
static struct db_entry {
	uid_t uid;
	unsigned rights;  /* PEER_* the uid's groups in the database give */
	double at;        /* monotonic; 0: empty */
} db_cache[DB_CACHE];

/* PEER_* rights that the groups of uid's account give (getgrouplist). */
static unsigned db_rights(struct daemon *d, uid_t uid)
{
	struct passwd pw, *pwr = NULL;
	struct db_entry *e = &db_cache[uid % DB_CACHE];
	char pwbuf[4096];
	gid_t *groups;
	int n = PEER_GROUPS_MAX;
	double now = mr_monotonic();

	if (e->at > 0 && e->uid == uid && now - e->at < DB_CACHE_SECONDS)
		return e->rights;
	e->uid = uid;
	e->rights = 0;
	e->at = now;
	groups = malloc(PEER_GROUPS_MAX * sizeof(*groups));
	if (groups != NULL && getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &pwr) == 0 &&
	    pwr != NULL && getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0) {
		if (d->have_operator_gid && has_gid(groups, n, d->operator_gid))
			e->rights |= PEER_OPERATOR;
		if (d->have_deliver_gid && has_gid(groups, n, d->deliver_gid))
			e->rights |= PEER_DELIVER;
	}
	free(groups);
	return e->rights;
}

/* Returns the PEER_* rights of c's peer (cached in c). */
unsigned daemon_peer_rights(struct daemon *d, struct conn *c)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	int n = 0;

	if (c->rights_checked)
		return c->rights;
	c->rights_checked = 1;
	c->rights = 0;
	/* Over the network nobody is anybody: no uid, no group. */
	if (c->link.net) {
		c->rights = PEER_NETWORK;
		return c->rights;
	}
	if (c->link.uid == 0 || c->link.uid == geteuid()) {
		c->rights = PEER_OPERATOR | PEER_DELIVER;
		return c->rights;
	}
	if (!d->have_operator_gid && !d->have_deliver_gid)
		return c->rights;
	/* The process's own groups when it connected (a peer with more
	 * groups than fit is judged on the database alone). */
	if (getsockopt(c->link.fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		n = (int)(len / sizeof(gid_t));
	if (d->have_operator_gid &&
	    (c->link.gid == d->operator_gid || has_gid(groups, n, d->operator_gid)))
		c->rights |= PEER_OPERATOR;
	if (d->have_deliver_gid &&
	    (c->link.gid == d->deliver_gid || has_gid(groups, n, d->deliver_gid)))
		c->rights |= PEER_DELIVER;
	c->rights |= db_rights(d, c->link.uid);
	return c->rights;
}

/* The account name of c's peer uid into buf. 0, or -1 when the uid has
 * no name (or it does not fit). */
int daemon_peer_name(const struct conn *c, char *buf, size_t len)
{
	struct passwd pw, *pwr = NULL;
	char pwbuf[4096];

	if (c->link.net)
		return -1;
	if (getpwuid_r(c->link.uid, &pw, pwbuf, sizeof(pwbuf), &pwr) != 0 || pwr == NULL ||
	    strlen(pw.pw_name) >= len)
		return -1;
	memcpy(buf, pw.pw_name, strlen(pw.pw_name) + 1);
	return 0;
}

/* Returns 1 when the peer's uid is the account named user (a user may see
 * itself), else 0. */
int daemon_peer_is_user(const struct conn *c, const char *user)
{
	char name[MR_USER_NAME_MAX + 1];

	return daemon_peer_name(c, name, sizeof(name)) == 0 && strcmp(name, user) == 0;
}

/* Resolves a group given by name or number. 0 with *gid_r, or -1 (logged,
 * naming the option). */
int daemon_peer_group(const char *option, const char *name, gid_t *gid_r)
{
	struct group gr, *grr = NULL;
	char buf[16384];
	uint64_t gid;

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &grr) == 0 && grr != NULL) {
		*gid_r = gr.gr_gid;
		return 0;
	}
	if (mr_parse_u64(name, &gid) == 0 && gid < (uint64_t)(gid_t)-1) {
		*gid_r = (gid_t)gid;
		return 0;
	}
	mr_log("%s %s: no such group", option, name);
	return -1;
}
