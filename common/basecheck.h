/* Checking the local copy's files a sync links instead of fetching (its
 * verify_base option), on a second thread: it takes them from the end of
 * the manifest backwards while the sync goes forwards, until they meet.
 * Each entry is checked once, by one of the two. */
#ifndef UNDERSTUDY_BASECHECK_H
#define UNDERSTUDY_BASECHECK_H

struct manifest;
struct ment;
struct basecheck;

/* The base entry of e when the sync will link e from it, else NULL. */
typedef const struct ment *basecheck_want_fn(void *arg, const struct ment *e);

/* Start checking the entries of m that want() names a base for, their
 * base files opened beneath basefd.  NULL when no thread could start: then
 * basecheck_file() checks each itself. */
struct basecheck *basecheck_start(const struct manifest *m, int basefd,
    basecheck_want_fn *want, void *arg);
/* Whether the base file of e, open at bfd, holds e's content; bfd is at
 * offset 0 again afterwards. */
int basecheck_file(struct basecheck *, const struct ment *e, int bfd);
void basecheck_stop(struct basecheck *);

#endif
