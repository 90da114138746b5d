/* Who may do what, by certificate (allow.h). */
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "allow.h"
#include "config.h"
#include "gate.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "tls.h"

/* Whether the certificate on tls is that of one of urls[0..n). */
static int
is_one_of(struct bufferevent *tls, char *const *urls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (urls[i] != NULL && tls_peer_is(tls, urls[i]))
			return 1;
	return 0;
}

/* Who may, here: 1 if the peer is one of them; else 0 with who in buf. */
static int
who_may(const struct config *cf, struct bufferevent *tls, enum allow_what what,
    const char *type, const char *source, char *buf, size_t len)
{
	const struct source_conf *sc = source != NULL ?
	    config_source(cf, source) :
	    NULL;

	switch (cf->role) {
	case ROLE_EXPORTER:
		snprintf(buf, len, "the pull-backups this exporter notifies");
		if (what == ALLOW_LOCAL)
			break;
		if (what == ALLOW_READ && source != NULL &&
		    strcmp(source, cf->source) != 0)
			break;
		if (what == ALLOW_EVENT && strcmp(type, EV_BACKUP_ARCHIVED) &&
		    strcmp(type, EV_BACKUP_IMPORTED))
			break;
		return is_one_of(tls, cf->notify, cf->nnotify);
	case ROLE_PULLBACKUP:
		if (what == ALLOW_EVENT && strcmp(type, EV_BACKUP_READY) == 0) {
			snprintf(buf, len, "the exporter of source %s",
			    source != NULL ? source : "?");
			return sc != NULL && is_one_of(tls, &sc->exporter, 1);
		}
		snprintf(buf, len, "the importers of source %s",
		    source != NULL ? source : "?");
		if (what == ALLOW_LOCAL ||
		    (what == ALLOW_EVENT && strcmp(type, EV_IMPORT_DONE) &&
			strcmp(type, EV_SOURCE_PROMOTED)))
			break;
		return sc != NULL &&
		    is_one_of(tls, sc->importers, sc->nimporters);
	case ROLE_IMPORTER:
		snprintf(buf, len, "the pull-backup of source %s",
		    source != NULL ? source : "?");
		if (what != ALLOW_EVENT || strcmp(type, EV_IMPORT_READY) != 0)
			break;
		return sc != NULL && is_one_of(tls, &sc->pullbackup, 1);
	}
	if (what == ALLOW_LOCAL)
		snprintf(buf, len, "this host's own certificate (the verbs)");
	else if (what == ALLOW_EVENT)
		snprintf(buf, len, "no peer of a %s", log_role());
	return 0;
}

int
allow_peer(struct node *n, struct bufferevent *tls, const char *addr,
    enum allow_what what, const char *type, const char *source, char *why,
    size_t len)
{
	const char *fp;
	char who[160], asked[200];

	if (tls == NULL || tls_peer_self(tls) || tls_peer_unnamed(tls))
		return 0;
	if (who_may(n->cf, tls, what, type, source, who, sizeof who))
		return 0;
	fp = tls_peer_fp(tls);
	switch (what) {
	case ALLOW_READ:
		snprintf(asked, sizeof asked, "read the versions of source %s",
		    source != NULL ? source : "?");
		break;
	case ALLOW_EVENT:
		snprintf(asked, sizeof asked, "send %s for source %s", type,
		    source != NULL ? source : "?");
		break;
	case ALLOW_LOCAL:
		snprintf(asked, sizeof asked,
		    "ask for what only this host "
		    "asks");
		break;
	}
	snprintf(why, len,
	    "%s refused %s (certificate %s): only %s may %s, and this "
	    "certificate is not theirs (see tls: pins or ca in %s)",
	    log_role(), addr, fp != NULL ? fp : "?", who, asked, n->cf->path);
	log_warnx("refused %s (certificate %s): may not %s (only %s)", addr,
	    fp != NULL ? fp : "?", asked, who);
	return PROTO_FORBIDDEN;
}

int
allow_request(struct node *n, struct evhttp_request *req, enum allow_what what,
    const char *type, const char *source, char *why, size_t len)
{
	return allow_peer(n, gate_tls_of(n->gate, req), http_peer(req), what,
	    type, source, why, len);
}
