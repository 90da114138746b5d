/* Who may do what, by certificate (docs/operations.md, "Peers and what
 * each may do").  With TLS on, a request's certificate says which peer
 * sent it; each peer may do what its role in this daemon's configuration
 * needs and nothing more:
 *
 *   exporter     its pull-backups (notify) read its versions and report
 *                on them (backup.archived, backup.imported)
 *   pull-backup  a source's exporter announces it (backup.ready); its
 *                importers read its versions and report (import.done,
 *                source.promoted)
 *   importer     a source's pull-backup offers it (import.ready)
 *
 * This host's own certificate (the verbs) may do everything; so may a
 * certificate pinned without naming its peer (a pins list), as the
 * secret alone does without TLS.  Status and metrics go by the secrets
 * only; promotion by its own rules (importer/promote.c). */
#ifndef UNDERSTUDY_ALLOW_H
#define UNDERSTUDY_ALLOW_H

#include <stddef.h>

struct bufferevent;
struct evhttp_request;
struct node;

enum allow_what {
	ALLOW_READ,  /* a served version of source */
	ALLOW_EVENT, /* an event of type on source */
	ALLOW_LOCAL, /* this host's verbs only: now, runs, verify */
};

/* 0 when the peer whose certificate was shown on tls (an accepted
 * connection's TLS bufferevent; NULL: plain, the secret was enough) may;
 * else PROTO_FORBIDDEN with why naming the peer and what it lacked, also
 * logged. */
int allow_peer(struct node *, struct bufferevent *tls, const char *addr,
    enum allow_what, const char *type, const char *source, char *why,
    size_t len);
/* The same for a request the server parsed. */
int allow_request(struct node *, struct evhttp_request *, enum allow_what,
    const char *type, const char *source, char *why, size_t len);

#endif
