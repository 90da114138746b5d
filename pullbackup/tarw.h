/* Writing a version as a tar (or tar.gz) stream through libarchive, one
 * entry at a time, file data streamed in bounded pieces and checked
 * against the manifest's SHA-256 on the way. */
#ifndef UNDERSTUDY_TARW_H
#define UNDERSTUDY_TARW_H

#include <stddef.h>

struct manifest;
struct ment;
struct tarw;

/* A tar stream to fd of the entries of m (which decides how names are
 * written). */
struct tarw *tarw_open(int fd, int gzip, const struct manifest *m, char *err,
    size_t errlen);
/* Add e under path; for a file, its content is read from fd. */
int tarw_add(struct tarw *, const struct ment *e, const char *path, int fd,
    char *err, size_t errlen);
int tarw_close(struct tarw *, char *err, size_t errlen);

#endif
