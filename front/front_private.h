/*
 * front_private.h: what the files of front/ share behind front.h: the
 * handle (settings, the snapshot's fd, the backend map) and the daemon's
 * reply to one request.
 */
#ifndef MR_FRONT_PRIVATE_H
#define MR_FRONT_PRIVATE_H

#include "front/front.h"

struct front_map_entry {
	char *user;
	struct front_backend b;
};

struct front {
	struct front_settings set;
	int snapfd;                     /* the snapshot folder, or -1 */
	struct front_map_entry *map;    /* sorted by user */
	size_t nmap;
	struct front_backend def;       /* the "*" line */
	int have_def;
};

/* Default timeout of a call to the daemon, seconds. */
#define FRONT_DAEMON_TIMEOUT 5.0

/* Loads the backend map file into f (front.c). 0, or -1 with err naming
 * the file and line. */
int front_map_load(struct front *f, const char *path, struct mr_error *err);

/* Sends one request line (with its '\n') on c and reads the reply into
 * *reply_r (malloc'd) (link.c). 0, or -1 with err. */
int front_call(struct daemon_client *c, const char *req, char **reply_r, struct mr_error *err);

#endif
