/* Generations (design.md, "Fencing by generation"): a source's history is
 * split into generations, like PostgreSQL's timelines.  The first is 1; a
 * promotion starts the next, durably, on the promoted host, before
 * anything else.  Every event names its sender's generation of the source
 * (and, past 1, the promotion that started it: where, when, which
 * version), and so does every manifest past 1.  A daemon that has seen
 * generation G refuses anything of an older one for that source (409,
 * naming the promotion), and takes a newer one as its own when it sees it
 * (the role may decide otherwise: an exporter is fenced by it).
 *
 * The node keeps one struct gen per source, in a state file of the role's
 * choosing, written on the commit thread in order with the events. */
#ifndef UNDERSTUDY_GENERATION_H
#define UNDERSTUDY_GENERATION_H

#include <stddef.h>
#include <stdint.h>

struct doc;
struct json;
struct node;

#define GEN_HOST_MAX 255

/* A generation, and the promotion that started it (none for 1). */
struct gen_start {
	int64_t n;
	char *host;    /* the promoted host's name */
	char *at;      /* ISO 8601 UTC */
	char *version; /* the version it was promoted at */
};

struct gen {
	char *source;
	char *path; /* the state file */
	struct gen_start cur;
	/* An exporter's: the newer generation that fenced it off (n 0:
	 * none). */
	struct gen_start fence;
};

/* Event and reply members. */
#define EVF_GENERATION "generation"
#define EVF_PROMOTED "promoted" /* {host, at, version} */

/* Load a source's generation from path (absent: 1) and keep it in the
 * node: 0, or -1 with the reason when the file is damaged. */
int gen_add(struct node *, const char *source, const char *path, char *err,
    size_t errlen);
struct gen *gen_find(struct node *, const char *source);
/* The same without a node (a verb): g to gen_clear(). */
int gen_load(struct gen *, const char *source, const char *path, char *err,
    size_t errlen);
void gen_clear(struct gen *);
/* Write g's state file now (a verb; the daemon uses gen_save()). */
int gen_write_now(const struct gen *);
void gen_free_all(struct node *);
/* Write g's state file (commit thread, in order with the events). */
void gen_save(struct node *, const struct gen *);
/* Take s as g's generation (or, fence, as what fences it off): copied. */
void gen_set(struct gen_start *dst, const struct gen_start *s);
void gen_start_clear(struct gen_start *);

/* The generation an event or a reply names: 1 when it names none; -1
 * (with why) when malformed.  With s, also the promotion that started it
 * (s->n set; strings to clear). */
int64_t gen_parse(const struct doc *, struct gen_start *s, char *why,
    size_t whylen);
/* The members of an event or a refusal: generation, promoted. */
void gen_members(struct json *, const struct gen_start *);
/* "generation G, started by the promotion on HOST at TIME (version V)",
 * or "generation 1". */
void gen_describe(const struct gen_start *, char *buf, size_t len);
/* The status block's members: generation, promoted, fenced_by. */
void gen_status(struct json *, const struct gen *);

/* The common check of an event of source (inbox.c): 0 to go on; else 409
 * with why and *g set, the event being of an older generation than g.  A
 * newer one is taken (or handed to the role) first. */
int gen_check_event(struct node *, const struct doc *ev, struct gen **g,
    char *why, size_t whylen);
/* 1, with why, when ev (queued before g's generation was known, or just
 * received) is of an older generation than g's. */
int gen_stale(const struct gen *, const struct doc *ev, char *why,
    size_t whylen);
/* A newer generation seen for g, in an event or a peer's refusal: the
 * role's newer_generation(), or taken as g's own. */
void gen_seen(struct node *, struct gen *, const struct gen_start *);

#endif
