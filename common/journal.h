/* The pull-backup's journal (docs/archive-format.md): one line saying
 * which commit or forget is under way, read back at start-up from a disk
 * that may have been damaged or edited. */
#ifndef UNDERSTUDY_JOURNAL_H
#define UNDERSTUDY_JOURNAL_H

#include <stddef.h>

#define JOURNAL_ID_MAX 64

enum journal_kind {
	JOURNAL_COMMIT, /* "commit OLD NEW": OLD replaced by NEW */
	JOURNAL_FORGET, /* "forget NEWEST PREVIOUS": NEWEST dropped */
};

struct journal {
	enum journal_kind kind;
	char a[JOURNAL_ID_MAX]; /* OLD or NEWEST */
	char b[JOURNAL_ID_MAX]; /* NEW or PREVIOUS */
};

/* Parse buf[0..len): "commit OLD NEW\n" (OLD a version id or "-": none,
 * made "") or "forget NEWEST PREVIOUS\n" (PREVIOUS an id or "-", made
 * ""); every id valid (version_id_valid()), nothing else on the line.
 * 0, or -1. */
int journal_parse(const char *buf, size_t len, struct journal *);

#endif
