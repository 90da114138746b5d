/* The importer daemon's sources, shared by its parts:
 *
 *   importer.c  the daemon: sources, events accepted, status, health,
 *               metrics, the promote route, reload, main()
 *   isrc.c      a source's state on disk
 *   import.c    an import: sync, verify, hook, swap, report
 *   promote.c   promotion
 *   page.c      the takeover page
 *   verbs.c     the verify and promote verbs */
#ifndef UNDERSTUDY_IMPORTER_H
#define UNDERSTUDY_IMPORTER_H

#include <stddef.h>
#include <string.h>

#include "config.h"
#include "isrc.h"
#include "node.h"

struct evhttp_request;

struct importer {
	struct node node;
	struct config *cf;
	struct isrc *srcs;
	size_t nsrcs;
};

static inline struct isrc *
importer_find(struct importer *im, const char *name)
{
	size_t i;

	for (i = 0; i < im->nsrcs; i++)
		if (strcmp(im->srcs[i].run.sc->name, name) == 0)
			return &im->srcs[i];
	return NULL;
}

/* page.c */
int page_request(struct node *, struct evhttp_request *, const char *path);

/* verbs.c */
int verb_verify(struct config *, int argc, char **argv);
int verb_promote(struct config *, int argc, char **argv);
int verb_rejoin(struct config *, int argc, char **argv);

#endif
