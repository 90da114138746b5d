/* Allocation for daemon glue: never returns NULL, dies loudly instead. */
#ifndef UNDERSTUDY_XMALLOC_H
#define UNDERSTUDY_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Replace *p with a copy of v (or NULL), freeing the old string. */
void xstrset(char **p, const char *v);

#endif
