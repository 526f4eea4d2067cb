/*
 * test_agent.c: the release agent (front/agent.c) against a fake daemon
 * and a fake Postfix (postqueue and postsuper scripts first in PATH that
 * log their arguments): exactly the held messages whose recipients are all
 * back, and one of them back through the stream, are released, oldest
 * first, each with postsuper -H then postqueue -i, with -c (many at once:
 * one postsuper -H - and one postqueue -f); mail held for
 * a user still waiting or for nobody of the outage stays; the place in the
 * stream survives a restart, and a new epoch reads the stream again.
 */
#include "tests/testutil.h"
#include "front/front.h"
#include "tests/front/fakedaemon.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The hold queue as `postqueue -j` shows it, one object a line. */
static const char queue_json[] =
	"{\"queue_name\": \"hold\", \"queue_id\": \"M3\", \"arrival_time\": 300, "
	"\"recipients\": [{\"address\": \"alice@example.org\"}]}\n"
	"{\"queue_name\": \"hold\", \"queue_id\": \"M1\", \"arrival_time\": 100, "
	"\"recipients\": [{\"address\": \"dave@example.org\"}, {\"address\": \"carol@example.org\"}]}\n"
	"{\"queue_name\": \"hold\", \"queue_id\": \"M2\", \"arrival_time\": 200, "
	"\"recipients\": [{\"address\": \"alice@example.org\"}, {\"address\": \"bob2@example.org\"}, "
	"{\"address\": \"erin@example.org\"}]}\n"
	"{\"queue_name\": \"hold\", \"queue_id\": \"M4\", \"arrival_time\": 50, "
	"\"recipients\": [{\"address\": \"carol@example.org\"}]}\n"
	"{\"queue_name\": \"deferred\", \"queue_id\": \"M5\", \"arrival_time\": 10, "
	"\"recipients\": [{\"address\": \"alice@example.org\"}]}\n"
	"{\"queue_name\": \"hold\", \"queue_id\": \"M6\", \"arrival_time\": 150, "
	"\"recipients\": [{\"address\": \"erin+tag@example.org\"}]}\n"
	"not json at all\n";

/* Logs its arguments and, for "-H -", the ids it reads. */
static const char postsuper_sh[] =
	"#!/bin/sh\necho \"postsuper $*\" >> \"$FAKE_PF/calls\"\n"
	"for a; do last=$a; done\n"
	"[ \"$last\" = - ] && cat >> \"$FAKE_PF/calls\"\nexit 0\n";

static void fake_postfix(const char *dir)
{
	char *bin = tu_path(dir, "bin"), *path;
	const char *old = getenv("PATH");

	assert_int_equal(tu_sh("mkdir -p '%s'", bin), 0);
	tu_write_file(dir, "bin/postqueue",
		      "#!/bin/sh\necho \"postqueue $*\" >> \"$FAKE_PF/calls\"\n"
		      "case \"$*\" in *-j*) cat \"$FAKE_PF/queue.json\";; esac\n",
		      strlen("#!/bin/sh\necho \"postqueue $*\" >> \"$FAKE_PF/calls\"\n"
			     "case \"$*\" in *-j*) cat \"$FAKE_PF/queue.json\";; esac\n"));
	tu_write_file(dir, "bin/postsuper", postsuper_sh, strlen(postsuper_sh));
	assert_int_equal(tu_sh("chmod +x '%s'/*", bin), 0);
	tu_write_file(dir, "queue.json", queue_json, strlen(queue_json));
	path = malloc(strlen(bin) + strlen(old ? old : "") + 2);
	sprintf(path, "%s:%s", bin, old ? old : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	setenv("FAKE_PF", dir, 1);
	free(path);
	free(bin);
}

static int run_agent(struct fake *fk, const char *state)
{
	struct front_agent_settings as;
	struct front_settings s;
	struct front *f = NULL;
	struct mr_error err;
	volatile int stop = 0;
	int rc;

	front_settings_init(&s);
	s.daemon.socket = fk->sock;
	s.state_dir = state;
	if (front_new(&s, &f, &err) < 0)
		fail_msg("front_new: %s", err.msg);
	memset(&as, 0, sizeof(as));
	as.release = 1;
	as.postfix_config = "/etc/pf-test";
	as.max_passes = 1;
	as.interval = 0.01;
	rc = front_agent_run(f, &as, &stop, &err);
	front_free(&f);
	return rc;
}

static void agent_releases_exactly_what_is_due(void **state)
{
	static const char *const active[] = { "alice", "dave", NULL };
	static const char *const more[] = { "dave", "alice", "erin", NULL };
	struct fake fk;
	char *st, *calls;
	size_t len;

	(void)state;
	fake_start(&fk);
	fake_postfix(fk.dir);
	fk.active = active;
	st = tu_path(fk.dir, "state");
	assert_int_equal(run_agent(&fk, st), 0);
	calls = tu_read_file(fk.dir, "calls", &len);
	/* M1 (100: dave back, carol untouched) then M3 (300: alice back);
	 * not M2 (erin waits), M4 (nobody came back), M5 (not held), M6. */
	assert_string_equal(calls, "postqueue -c /etc/pf-test -j\n"
				   "postsuper -c /etc/pf-test -H M1\n"
				   "postqueue -c /etc/pf-test -i M1\n"
				   "postsuper -c /etc/pf-test -H M3\n"
				   "postqueue -c /etc/pf-test -i M3\n");
	free(calls);
	assert_non_null(strstr(fk.requests, "ACTIVATIONS 0000000000000000 0 1000\n"));
	/* The snapshot knows them now; the place in the stream is kept. */
	assert_int_equal(tu_sh("test -f '%s/active/alice' && test -f '%s/active/dave' && "
			       "test -f '%s/unaffected/carol' && ! test -e '%s/active/erin'",
			       st, st, st, st),
			 0);
	calls = tu_read_file(st, "follow", &len);
	assert_non_null(strstr(calls, "mailrestore-follow 1 00000000000000ab 2 "));
	free(calls);

	/* A restart of the agent goes on from 2; a restart of the daemon (a
	 * new epoch) reads again from 0; erin is back, so M2 and M6 go, oldest
	 * first (M1 and M3 once more too: gone already, that is harmless). */
	fk.requests[0] = '\0';
	fk.epoch = "00000000000000cd";
	fk.active = more;
	assert_int_equal(tu_sh("rm '%s/calls'", fk.dir), 0);
	assert_int_equal(run_agent(&fk, st), 0);
	assert_non_null(strstr(fk.requests, "ACTIVATIONS 00000000000000ab 2 1000\n"));
	calls = tu_read_file(fk.dir, "calls", &len);
	assert_string_equal(calls, "postqueue -c /etc/pf-test -j\n"
				   "postsuper -c /etc/pf-test -H M1\n"
				   "postqueue -c /etc/pf-test -i M1\n"
				   "postsuper -c /etc/pf-test -H M6\n"
				   "postqueue -c /etc/pf-test -i M6\n"
				   "postsuper -c /etc/pf-test -H M2\n"
				   "postqueue -c /etc/pf-test -i M2\n"
				   "postsuper -c /etc/pf-test -H M3\n"
				   "postqueue -c /etc/pf-test -i M3\n");
	free(calls);
	calls = tu_read_file(st, "follow", &len);
	assert_non_null(strstr(calls, "mailrestore-follow 1 00000000000000cd 3 "));
	free(calls);
	free(st);
	fake_stop(&fk);
}

/* A follow file that does not check is ignored: the stream from 0. */
static void agent_follow_file_damaged(void **state)
{
	static const char *const active[] = { "dave", NULL };
	struct fake fk;
	char *st;

	(void)state;
	fake_start(&fk);
	fake_postfix(fk.dir);
	fk.active = active;
	st = tu_path(fk.dir, "state");
	assert_int_equal(tu_sh("mkdir -p '%s' && echo 'mailrestore-follow 1 00000000000000ab 7 "
			       "0000000000000000' > '%s/follow'",
			       st, st),
			 0);
	assert_int_equal(run_agent(&fk, st), 0);
	assert_non_null(strstr(fk.requests, "ACTIVATIONS 0000000000000000 0 1000\n"));
	free(st);
	fake_stop(&fk);
}

/* Many due at once: one postsuper -H - with the ids oldest first, one
 * postqueue -f. */
static void agent_releases_many_in_one_batch(void **state)
{
	static const char *const active[] = { "dave", NULL };
	struct fake fk;
	char *st, *calls, *q, line[256], want[8192];
	size_t len, n = 0, qn = 0;
	int i;

	(void)state;
	fake_start(&fk);
	fake_postfix(fk.dir);
	fk.active = active;
	q = malloc(64 * 256);
	/* 40 for dave, arriving in the reverse order of their ids, and one
	 * for erin (waiting) among them. */
	for (i = 0; i < 40; i++)
		qn += (size_t)sprintf(q + qn, "{\"queue_name\": \"hold\", \"queue_id\": \"D%02d\", "
					   "\"arrival_time\": %d, \"recipients\": [{\"address\": "
					   "\"dave@example.org\"}]}\n",
				      i, 1000 - i);
	qn += (size_t)sprintf(q + qn, "{\"queue_name\": \"hold\", \"queue_id\": \"E1\", "
				   "\"arrival_time\": 1, \"recipients\": [{\"address\": "
				   "\"erin@example.org\"}]}\n");
	tu_write_file(fk.dir, "queue.json", q, qn);
	free(q);
	st = tu_path(fk.dir, "state");
	assert_int_equal(run_agent(&fk, st), 0);
	n = (size_t)sprintf(want, "postqueue -c /etc/pf-test -j\npostsuper -c /etc/pf-test -H -\n");
	for (i = 39; i >= 0; i--) {
		snprintf(line, sizeof(line), "D%02d\n", i);
		n += (size_t)sprintf(want + n, "%s", line);
	}
	sprintf(want + n, "postqueue -c /etc/pf-test -f\n");
	calls = tu_read_file(fk.dir, "calls", &len);
	assert_string_equal(calls, want);
	free(calls);
	free(st);
	fake_stop(&fk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(agent_releases_exactly_what_is_due),
		cmocka_unit_test(agent_follow_file_damaged),
		cmocka_unit_test(agent_releases_many_in_one_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
