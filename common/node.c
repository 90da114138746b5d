/* The node: a daemon's plumbing, the same for every role.  node_init()
 * opens the queues and the run history and starts listening; node_run()
 * runs the loop until SIGTERM or SIGINT, then stops the workers (running
 * jobs end at a safe point) and writes what is still to be made durable.
 * SIGHUP reloads the configuration.  See node.h for the parts. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "fsutil.h"
#include "http.h"
#include "generation.h"
#include "gate.h"
#include "log.h"
#include "node.h"
#include "queue.h"
#include "runner.h"
#include "tls.h"
#include "worker.h"
#include "xmalloc.h"

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	size_t i;

	if (n->stopping)
		return;
	if (n->ops->kick != NULL)
		n->ops->kick(n);
	else
		for (i = 0; i < n->nrunners; i++)
			runner_kick(n->runners[i]);
}

void
node_add_runner(struct node *n, struct runner *r)
{
	n->runners = xreallocarray(n->runners, n->nrunners + 1,
	    sizeof *n->runners);
	n->runners[n->nrunners++] = r;
}

void
node_kick(struct node *n)
{
	event_active(n->kick_ev, EV_READ, 0);
}

static void
discard_work(void *arg)
{
	char *path = arg;

	/* A tree inside another being discarded (an export's data, and
	 * then the export) may go under the other's feet: not an error. */
	if (fs_rm_rf(path) != 0 && errno != ENOENT)
		log_warn("removing %s", path);
	free(path);
}

void
node_discard_tree(struct node *n, char *path)
{
	if (path == NULL)
		return;
	if (n->stopping) {
		free(path);
		return;
	}
	worker_submit(n->runs, discard_work, NULL, path);
}

void
node_record(struct node *n, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output)
{
	struct evbuffer *b;
	int rewrite;

	b = runlog_add(&n->runs_log, what, source, version, ok, started,
	    summary, output, &rewrite);
	if (b == NULL)
		return;
	if (rewrite)
		durable_write(n, n->runs_log.path, evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
	else
		durable_append(n, n->runs_log.path, evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
	evbuffer_free(b);
}

int
node_init(struct node *n, struct config *cf, const struct node_ops *ops,
    void *role, const char *queue_dir, char *err, size_t errlen)
{
	char *in, *out, *runs;

	memset(n, 0, sizeof *n);
	n->cf = cf;
	n->ops = ops;
	n->role = role;
	n->started = time(NULL);
	n->base = daemon_base_new();
	/* Without it, libevent resolves a peer's name with getaddrinfo() on
	 * the loop, which a slow resolver stalls.  /etc/hosts is read too. */
	if ((n->dns = evdns_base_new(n->base,
		 EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
		log_warnx("no resolver set up (/etc/resolv.conf); peers' names "
			  "are resolved on the loop");
	in = xasprintf("%s/inbox", queue_dir);
	out = xasprintf("%s/outbox", queue_dir);
	n->inbox = queue_open(in, err, errlen);
	n->outbox = n->inbox ? queue_open(out, err, errlen) : NULL;
	free(in);
	free(out);
	if (n->outbox == NULL)
		return -1;
	runs = xasprintf("%s/runs.jsonl", queue_dir);
	runlog_open(&n->runs_log, runs);
	free(runs);
	n->gate = gate_new(n);
	if ((n->http = http_server_new(n->base, cf, gate_bevcb, n->gate, err,
		 errlen)) == NULL)
		return -1;
	evhttp_set_gencb(n->http, router_request, n);
	n->cpu = worker_pool_new(n->base, 2);
	n->runs = worker_pool_new(n->base, 4);
	n->commit = worker_pool_new(n->base, 1);
	n->serve.lookup = ops->lookup;
	n->serve.arg = n;
	n->serve.workers = n->cpu;
	n->serve.base = n->base;
	n->kick_ev = event_new(n->base, -1, 0, kick_cb, n);
	durable_init(n);
	outbox_init(n);
	if (cf->warning != NULL)
		log_warnx("%s: %s", cf->path, cf->warning);
	if (n->inbox->count > 0 || n->outbox->count > 0)
		log_info("resuming: %zu event(s) to handle, %zu to deliver",
		    n->inbox->count, n->outbox->count);
	return 0;
}

/* SIGHUP: re-read the configuration file.  A bad file, or a change that
 * needs a restart, leaves the running configuration as it was. */
static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct node *n = arg;
	struct config *ncf;
	char err[1024], key[128];
	size_t i;

	log_info("received SIGHUP: reloading %s", n->cf->path);
	if (config_load(n->cf->path, n->cf->role, &ncf, err, sizeof err) != 0) {
		log_warnx("reload refused, the running configuration stays: %s",
		    err);
		return;
	}
	if (config_needs_restart(n->cf, ncf, key, sizeof key)) {
		log_warnx("reload refused, the running configuration stays: %s "
			  "changed, which needs a restart",
		    key);
		config_free(ncf);
		return;
	}
	/* A certificate renewed in place is taken now. */
	if (tls_setup(ncf, err, sizeof err) != 0) {
		log_warnx("reload refused, the running configuration stays: %s",
		    err);
		config_free(ncf);
		return;
	}
	n->retired = xreallocarray(n->retired, n->nretired + 1,
	    sizeof *n->retired);
	n->retired[n->nretired++] = n->cf;
	n->cf = ncf;
	for (i = 0; i < n->nrunners; i++)
		runner_reload(n->runners[i],
		    config_source(ncf, n->runners[i]->sc->name));
	if (n->ops->reload != NULL)
		n->ops->reload(n, ncf);
	log_info("reloaded %s", ncf->path);
}

static void
node_stop(void *arg)
{
	struct node *n = arg;

	n->stopping = 1;
	worker_request_stop();
	daemon_notify("STOPPING=1");
	event_base_loopexit(n->base, NULL);
}

int
node_run(struct node *n)
{
	daemon_signals(n->base, node_stop, n);
	n->hup_ev = evsignal_new(n->base, SIGHUP, hup_cb, n);
	event_add(n->hup_ev, NULL);
	outbox_pump(n);
	node_kick(n);
	monitor_lag_start(n);
	log_info("listening on %s:%d", n->cf->listen_host, n->cf->listen_port);
	daemon_notify("READY=1");
	event_base_dispatch(n->base);
	/* Running jobs see worker_stopping() and end at a safe point. */
	worker_pool_free(n->runs);
	worker_pool_free(n->cpu);
	worker_pool_free(n->commit);
	n->runs = n->cpu = n->commit = NULL;
	durable_flush(n);
	log_info("stopped");
	return 0;
}

void
node_free(struct node *n)
{
	worker_pool_free(n->commit);
	n->commit = NULL;
	durable_flush(n);
	if (n->http != NULL)
		evhttp_free(n->http);
	serve_free(&n->serve);
	gate_free(n->gate);
	n->gate = NULL;
	queue_close(n->inbox);
	queue_close(n->outbox);
	runlog_close(&n->runs_log);
	if (n->hup_ev != NULL)
		event_free(n->hup_ev);
	if (n->lag_ev != NULL)
		event_free(n->lag_ev);
	if (n->kick_ev != NULL)
		event_free(n->kick_ev);
	if (n->commit_ev != NULL)
		event_free(n->commit_ev);
	if (n->again_ev != NULL)
		event_free(n->again_ev);
	if (n->outbox_timer != NULL)
		event_free(n->outbox_timer);
	/* The first configuration belongs to prog_main(). */
	if (n->nretired > 0) {
		config_free(n->cf);
		n->cf = n->retired[0];
	}
	while (n->nretired > 1)
		config_free(n->retired[--n->nretired]);
	free(n->retired);
	free(n->runners);
	gen_free_all(n);
	worker_pool_free(n->runs);
	worker_pool_free(n->cpu);
	daemon_signals_free();
	if (n->dns != NULL)
		evdns_base_free(n->dns, 0);
	if (n->base != NULL)
		event_base_free(n->base);
	n->base = NULL;
}
