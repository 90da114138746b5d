#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "hash.h"
#include "json.h"
#include "manifest.h"
#include "tarw.h"
#include "xmalloc.h"

struct tarw {
	struct archive *ar;
};

/* Whether s is valid UTF-8 (the NUL-terminated string of a name). */
static int
is_utf8(const char *s)
{
	size_t n;

	for (; *s != '\0'; s += n)
		if ((n = utf8_len((const unsigned char *)s)) == 0)
			return 0;
	return 1;
}

/* Whether every name of m (paths and symlink targets) is UTF-8. */
static int
names_utf8(const struct manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!is_utf8(m->e[i].path) ||
		    (m->e[i].target != NULL && !is_utf8(m->e[i].target)))
			return 0;
	return 1;
}

struct tarw *
tarw_open(int fd, int gzip, const struct manifest *m, char *err, size_t errlen)
{
	struct tarw *t = xcalloc(1, sizeof *t);
	int utf8;

	t->ar = archive_write_new();
	/* libarchive converts names from the locale's character set: in the
	 * C locale a service or a cron job runs in, it refuses every
	 * non-ASCII name.  UTF-8 names go as pax wants them, in a UTF-8
	 * locale; others (or without such a locale) as the bytes they are,
	 * which pax says with hdrcharset=BINARY. */
	utf8 = names_utf8(m) && setlocale(LC_CTYPE, "C.UTF-8") != NULL;
	if (archive_write_set_format_pax(t->ar) != ARCHIVE_OK ||
	    (!utf8 &&
		archive_write_set_format_option(t->ar, "pax", "hdrcharset",
		    "BINARY") != ARCHIVE_OK) ||
	    (gzip && archive_write_add_filter_gzip(t->ar) != ARCHIVE_OK) ||
	    archive_write_set_bytes_in_last_block(t->ar, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(t->ar, fd) != ARCHIVE_OK) {
		snprintf(err, errlen, "libarchive: %s",
		    archive_error_string(t->ar));
		archive_write_free(t->ar);
		free(t);
		return NULL;
	}
	return t;
}

int
tarw_add(struct tarw *t, const struct ment *e, const char *path, int fd,
    char *err, size_t errlen)
{
	struct archive_entry *ae = archive_entry_new();
	char buf[1 << 16], hex[HASH_HEX_SIZE];
	struct hash h;
	int64_t total = 0;
	ssize_t n;
	int rc = -1;

	archive_entry_set_pathname(ae, path);
	archive_entry_set_perm(ae, e->mode);
	archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
	switch (e->type) {
	case MENT_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case MENT_LINK:
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, e->target);
		break;
	default:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, e->size);
		break;
	}
	if (archive_write_header(t->ar, ae) != ARCHIVE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    archive_error_string(t->ar));
		goto out;
	}
	if (e->type == MENT_FILE) {
		hash_init(&h);
		while ((n = read(fd, buf, sizeof buf)) > 0) {
			if (total + n > e->size)
				break;
			hash_update(&h, buf, (size_t)n);
			total += n;
			if (archive_write_data(t->ar, buf, (size_t)n) != n) {
				hash_abort(&h);
				snprintf(err, errlen, "%s: %s", path,
				    archive_error_string(t->ar));
				goto out;
			}
		}
		hash_final(&h, hex);
		if (n != 0 || total != e->size || strcmp(hex, e->sha) != 0) {
			snprintf(err, errlen,
			    "%s does not match its SHA-256 in the archive%s%s",
			    path, n < 0 ? ": " : "",
			    n < 0 ? strerror(errno) : "");
			goto out;
		}
	}
	rc = 0;
out:
	archive_entry_free(ae);
	return rc;
}

int
tarw_close(struct tarw *t, char *err, size_t errlen)
{
	int rc = 0;

	if (archive_write_close(t->ar) != ARCHIVE_OK) {
		snprintf(err, errlen, "libarchive: %s",
		    archive_error_string(t->ar));
		rc = -1;
	}
	archive_write_free(t->ar);
	free(t);
	return rc;
}
