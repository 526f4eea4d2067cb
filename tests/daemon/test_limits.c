/* test_limits.c: what daemon/limits.c counts over all connections: the
 * connections and DELIVER bytes of one peer (a uid on the socket, an
 * address over the network: never one for the other) and the reply bytes
 * not yet sent. */
#include "daemon/daemon_private.h"
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 8

struct fixture {
	struct daemon d;
	struct conn *c[SLOTS];
};

static struct conn *local(struct fixture *f, int slot, uid_t uid)
{
	struct conn *c = f->c[slot];

	c->link.fd = 100 + slot; /* never used: only "open" */
	c->link.net = 0;
	c->link.uid = uid;
	return c;
}

static struct conn *remote(struct fixture *f, int slot, const char *addr)
{
	struct conn *c = f->c[slot];
	unsigned len;

	c->link.fd = 100 + slot;
	c->link.net = 1;
	c->link.uid = (uid_t)-1;
	assert_int_equal(mr_sockaddr_parse(addr, &c->link.addr, &len), 0);
	return c;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int i;

	assert_non_null(f);
	f->d.max_conns = SLOTS;
	f->d.conns = f->c;
	for (i = 0; i < SLOTS; i++) {
		f->c[i] = calloc(1, sizeof(struct conn));
		assert_non_null(f->c[i]);
		f->c[i]->link.fd = -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	for (i = 0; i < SLOTS; i++)
		free(f->c[i]);
	free(f);
	return 0;
}

static void peers_counted_apart(void **state)
{
	struct fixture *f = *state;
	struct conn *a, *b;

	a = local(f, 0, 1000);
	local(f, 1, 1000);
	local(f, 2, 1001);
	b = remote(f, 3, "10.0.0.7:5000");
	remote(f, 4, "10.0.0.7:5001");   /* same host, another port: same peer */
	remote(f, 5, "10.0.0.8:5000");
	remote(f, 6, "[::ffff:10.0.0.9]:1");
	assert_int_equal(daemon_limits_peer_conns(&f->d, a), 2);
	assert_int_equal(daemon_limits_peer_conns(&f->d, b), 2);
	assert_int_equal(daemon_limits_peer_conns(&f->d, f->c[2]), 1);
	assert_int_equal(daemon_limits_peer_conns(&f->d, f->c[5]), 1);
	/* A network peer has no uid: uid -1 on the socket is not it. */
	local(f, 7, (uid_t)-1);
	assert_int_equal(daemon_limits_peer_conns(&f->d, f->c[7]), 1);
	assert_int_equal(daemon_limits_peer_conns(&f->d, b), 2);
	/* A closed slot counts for nobody. */
	f->c[1]->link.fd = -1;
	assert_int_equal(daemon_limits_peer_conns(&f->d, a), 1);
}

static void charges_and_replies(void **state)
{
	struct fixture *f = *state;
	struct conn *a = local(f, 0, 1000);

	local(f, 1, 1000)->body_charge = 300;
	a->body_charge = 200;
	local(f, 2, 1001)->body_charge = 5000;
	remote(f, 3, "[2001:db8::1]:7")->body_charge = 7;
	assert_int_equal(daemon_limits_peer_charge(&f->d, a), 500);
	assert_int_equal(daemon_limits_peer_charge(&f->d, f->c[3]), 7);
	daemon_buf_printf(&f->c[0]->out, "%s", "0123456789");
	f->c[0]->out_off = 4;
	daemon_buf_printf(&f->c[3]->out, "%s", "abc");
	assert_int_equal(daemon_limits_out_pending(&f->d), 6 + 3);
	f->c[3]->link.fd = -1;
	assert_int_equal(daemon_limits_out_pending(&f->d), 6);
	daemon_buf_free(&f->c[0]->out);
	daemon_buf_free(&f->c[3]->out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(peers_counted_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(charges_and_replies, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
