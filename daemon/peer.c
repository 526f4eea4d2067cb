/*
 * peer.c: who is on the other end of a connection and what it may do.
 *
 * The kernel vouches for the peer (SO_PEERCRED: uid, gid; SO_PEERGROUPS:
 * the supplementary groups the peer process had when it connected). A
 * peer is in a group when that group is its primary gid, one of those
 * supplementary groups, or one the group database gives its uid's name
 * (getgrouplist), so a hook that dropped its groups still counts. Rights
 * are worked out once per connection, on first need.
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

/* Fills the peer's supplementary groups (process and group database) into
 * groups (room for max); returns how many. Never fails: what cannot be
 * read is left out (the peer then has fewer rights, never more). */
static int peer_groups(const struct conn *c, gid_t *groups, int max)
{
	struct passwd pw, *pwr = NULL;
	socklen_t len = (socklen_t)(max * (int)sizeof(gid_t));
	char pwbuf[4096];
	gid_t more[256];
	int n = 0, m = 256, i;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		n = (int)(len / sizeof(gid_t));
	if (getpwuid_r(c->uid, &pw, pwbuf, sizeof(pwbuf), &pwr) == 0 && pwr != NULL &&
	    getgrouplist(pw.pw_name, pw.pw_gid, more, &m) >= 0) {
		for (i = 0; i < m && n < max; i++)
			if (!has_gid(groups, n, more[i]))
				groups[n++] = more[i];
	}
	return n;
}

/* Returns the PEER_* rights of c's peer (cached in c). */
unsigned daemon_peer_rights(struct daemon *d, struct conn *c)
{
	gid_t *groups = NULL;
	int n = 0, need_groups;

	if (c->rights_checked)
		return c->rights;
	c->rights_checked = 1;
	c->rights = 0;
	if (c->uid == 0 || c->uid == geteuid()) {
		c->rights = PEER_OPERATOR | PEER_DELIVER;
		return c->rights;
	}
	need_groups = (d->have_operator_gid && c->gid != d->operator_gid) ||
		      (d->have_deliver_gid && c->gid != d->deliver_gid);
	if (need_groups) {
		groups = malloc(PEER_GROUPS_MAX * sizeof(*groups));
		if (groups != NULL)
			n = peer_groups(c, groups, PEER_GROUPS_MAX);
	}
	if (d->have_operator_gid &&
	    (c->gid == d->operator_gid || has_gid(groups, n, d->operator_gid)))
		c->rights |= PEER_OPERATOR;
	if (d->have_deliver_gid &&
	    (c->gid == d->deliver_gid || has_gid(groups, n, d->deliver_gid)))
		c->rights |= PEER_DELIVER;
	free(groups);
	return c->rights;
}

/* The account name of c's peer uid into buf. 0, or -1 when the uid has
 * no name (or it does not fit). */
int daemon_peer_name(const struct conn *c, char *buf, size_t len)
{
	struct passwd pw, *pwr = NULL;
	char pwbuf[4096];

	if (getpwuid_r(c->uid, &pw, pwbuf, sizeof(pwbuf), &pwr) != 0 || pwr == NULL ||
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
