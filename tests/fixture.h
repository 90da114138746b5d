/* What the unit tests of the daemon's parts share: a configuration made
 * from YAML in a temporary directory, a free loopback port, and a loop
 * run until a condition holds or time is up. */
#ifndef UNDERSTUDY_FIXTURE_H
#define UNDERSTUDY_FIXTURE_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "unit.h"

/* A port nothing listens on now. */
static inline int
fixture_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
		perror("fixture_port");
		exit(2);
	}
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* dir/NAME.yaml holding yaml, with a token file beside it, loaded. */
static inline struct config *
fixture_config(const char *dir, enum role role, const char *yaml)
{
	char path[4200], err[1024], *text;
	struct config *cf;

	snprintf(path, sizeof path, "%s/token", dir);
	unit_write(path, "0123456789abcdef0123456789abcdef\n");
	snprintf(path, sizeof path, "%s/%s.yaml", dir, role_name(role));
	if (asprintf(&text, "token_file: %s/token\n%s", dir, yaml) < 0)
		exit(2);
	unit_write(path, text);
	free(text);
	if (config_load(path, role, &cf, err, sizeof err) != 0) {
		fprintf(stderr, "fixture: %s\n", err);
		exit(2);
	}
	return cf;
}

static void
fixture_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run base until done(arg) says so, at most secs seconds: 1 if it did. */
static inline int
fixture_loop(struct event_base *base, int (*done)(void *), void *arg,
    double secs)
{
	struct timeval tv = { 0, 20000 };
	struct event *tick = event_new(base, -1, EV_PERSIST, fixture_tick,
	    NULL);
	struct timespec t0, t;
	int ok = 0;

	event_add(tick, &tv);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (done(arg)) {
			ok = 1;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) +
			(double)(t.tv_nsec - t0.tv_nsec) / 1e9 >
		    secs)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(tick);
	return ok;
}

#endif
