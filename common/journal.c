/* The pull-backup's journal line (journal.h). */
#include <string.h>

#include "journal.h"
#include "timespec.h"

/* One space-ended word of p[0..n) into out: its length, or 0. */
static size_t
word(const char *p, size_t n, char out[JOURNAL_ID_MAX])
{
	size_t i;

	for (i = 0; i < n && p[i] != ' ' && p[i] != '\n'; i++)
		if (i + 1 >= JOURNAL_ID_MAX || p[i] == '\0')
			return 0;
	memcpy(out, p, i);
	out[i] = '\0';
	return i;
}

int
journal_parse(const char *buf, size_t len, struct journal *j)
{
	size_t n, pos;
	int a_opt;

	memset(j, 0, sizeof *j);
	if (len > 7 && memcmp(buf, "commit ", 7) == 0)
		j->kind = JOURNAL_COMMIT;
	else if (len > 7 && memcmp(buf, "forget ", 7) == 0)
		j->kind = JOURNAL_FORGET;
	else
		return -1;
	pos = 7;
	if ((n = word(buf + pos, len - pos, j->a)) == 0 || pos + n >= len ||
	    buf[pos + n] != ' ')
		return -1;
	pos += n + 1;
	if ((n = word(buf + pos, len - pos, j->b)) == 0 || pos + n + 1 != len ||
	    buf[pos + n] != '\n')
		return -1;
	/* The one that may be "-": a commit's old, a forget's previous. */
	a_opt = j->kind == JOURNAL_COMMIT;
	if (strcmp(a_opt ? j->a : j->b, "-") == 0)
		(a_opt ? j->a : j->b)[0] = '\0';
	if ((j->a[0] != '\0' && !version_id_valid(j->a)) ||
	    (j->b[0] != '\0' && !version_id_valid(j->b)) ||
	    (a_opt ? j->b : j->a)[0] == '\0')
		return -1;
	return 0;
}
