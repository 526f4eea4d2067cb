/*
 * limits.c: what every open connection holds at once, counted over all of
 * them: the connections of one peer (its uid on the socket, its address
 * over the network), the DELIVER bytes one peer has in flight, and the
 * reply bytes built and not yet sent. The loop (server.c) asks before it
 * takes a connection; the verbs (proto.c) before they take a body or
 * build a long reply. Scans of the connection table, made only where a
 * limit may bite; only the loop's thread calls them.
 */
#include "daemon/daemon_private.h"

/* Connections of c's peer now, c included when it is open. */
uint32_t daemon_limits_peer_conns(struct daemon *d, const struct conn *c)
{
	uint32_t slot, n = 0;
	const struct conn *o;

	for (slot = 0; slot < d->max_conns; slot++) {
		o = d->conns[slot];
		if (o != NULL && o->link.fd >= 0 && daemon_transport_same_peer(&o->link, &c->link))
			n++;
	}
	return n;
}

/* Bytes of DELIVER bodies c's peer has in flight. */
uint64_t daemon_limits_peer_charge(struct daemon *d, const struct conn *c)
{
	uint64_t sum = 0;
	uint32_t slot;
	const struct conn *o;

	for (slot = 0; slot < d->max_conns; slot++) {
		o = d->conns[slot];
		if (o != NULL && o->link.fd >= 0 && daemon_transport_same_peer(&o->link, &c->link))
			sum += o->body_charge;
	}
	return sum;
}

/* Reply bytes built and not yet sent, over every connection. */
uint64_t daemon_limits_out_pending(struct daemon *d)
{
	uint64_t sum = 0;
	uint32_t slot;
	const struct conn *c;

	for (slot = 0; slot < d->max_conns; slot++) {
		c = d->conns[slot];
		if (c != NULL && c->link.fd >= 0 && c->out.len > c->out_off)
			sum += c->out.len - c->out_off;
	}
	return sum;
}
