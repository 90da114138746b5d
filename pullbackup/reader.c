/* Versions rebuilt file by file (store.h).  The content of a file at
 * version k starts from a plain base, the newest version's file in
 * current/ or a whole increment on the way there, and goes back through
 * the reverse deltas of the versions in between, newest first; where a
 * version has the content at another path (renamed, moved), the way goes
 * on from there.  Every file rebuilt is hashed and checked against its
 * manifest. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "fsutil.h"
#include "hashsink.h"
#include "log.h"
#include "manifest.h"
#include "store.h"
#include "xmalloc.h"

struct store_reader {
	const struct store *st;
	struct manifest **ms;        /* per version, loaded on demand */
	struct manifest_shas **shas; /* their files by content, the same */
	int curfd;
	/* the last rebuild failed for want of space: nothing is known of
	 * the file then */
	int nospace;
};

/* One reverse delta of a chain: version j's increment that turns the
 * content next (of version j + 1) into sha. */
struct link {
	size_t j;
	char sha[HASH_HEX_SIZE];
	char next[HASH_HEX_SIZE];
};

const struct manifest *
store_reader_manifest(struct store_reader *r, size_t j, char *err,
    size_t errlen)
{
	if (r->ms[j] == NULL) {
		if (store_manifest(r->st, j, &r->ms[j], err, errlen) != 0)
			return NULL;
		/* With it, not later: threads that share the reader read
		 * both once loaded (restore loads them first). */
		r->shas[j] = manifest_shas_new(r->ms[j]);
	}
	return r->ms[j];
}

/* The file of version j (loaded) with content sha, or NULL. */
static const struct ment *
moved_to(struct store_reader *r, size_t j, const char *sha)
{
	return manifest_shas_find(r->shas[j], sha);
}

/* Whether version j has the reverse delta from next to sha. */
static int
has_rdelta(struct store_reader *r, size_t j, const char *sha, const char *next)
{
	char *path;
	int fd = increment_open_rdelta(r->st, r->st->ids[j], sha, next, &path);

	free(path);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* Unpack a whole increment into a temporary file: an fd at offset 0. */
static int
unpack_full(struct store_reader *r, int in, const char *path, char *err,
    size_t errlen)
{
	int fd = store_tmpfile(r->st);

	if (fd < 0) {
		snprintf(err, errlen, "temporary file: %s", strerror(errno));
		close(in);
		return -1;
	}
	if (increment_read(in, path, -1, delta_sink_fd, &fd, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* Where the content of e at version k comes from: an fd open at offset 0
 * on a plain base, and the reverse deltas that take it back to version k,
 * to be applied from chain[*nchain - 1] down to chain[0]. */
static int
content_base(struct store_reader *r, size_t k, const struct ment *e,
    struct link **chainp, size_t *nchainp, char *err, size_t errlen)
{
	const struct store *st = r->st;
	const struct manifest *nm;
	const struct ment *ne;
	struct link *chain = NULL;
	char sha[HASH_HEX_SIZE], *ipath;
	const char *path = e->path;
	size_t nchain = 0, j = k;
	int fd = -1, in, missing;

	memcpy(sha, e->sha, sizeof sha);
	for (;;) {
		if (j + 1 == st->n) {
			fd = fs_open_beneath(r->curfd, path, O_RDONLY, 0);
			if (fd < 0)
				snprintf(err, errlen, "current/%s: %s", path,
				    strerror(errno));
			break;
		}
		in = increment_open_full(st, st->ids[j], sha, &ipath);
		missing = in < 0 && errno == ENOENT;
		if (in >= 0)
			fd = unpack_full(r, in, ipath, err, errlen);
		else if (!missing)
			snprintf(err, errlen, "%s: %s", ipath, strerror(errno));
		free(ipath);
		if (!missing)
			break;
		if ((nm = store_reader_manifest(r, j + 1, err, errlen)) == NULL)
			break;
		ne = manifest_find(nm, path);
		if (ne != NULL && ne->type == MENT_FILE &&
		    strcmp(ne->sha, sha) != 0 &&
		    !has_rdelta(r, j, sha, ne->sha))
			ne = NULL; /* another content there: look for ours */
		if (ne == NULL || ne->type != MENT_FILE) {
			/* Moved: version j + 1 has this content elsewhere. */
			if ((ne = moved_to(r, j + 1, sha)) == NULL) {
				snprintf(err, errlen,
				    "archive damaged: %s of version %s has no "
				    "increment in %s",
				    e->path, st->ids[k], st->ids[j]);
				break;
			}
			path = ne->path;
		}
		if (strcmp(ne->sha, sha) != 0) {
			chain = xreallocarray(chain, nchain + 1, sizeof *chain);
			chain[nchain].j = j;
			memcpy(chain[nchain].sha, sha, sizeof sha);
			memcpy(chain[nchain].next, ne->sha, sizeof sha);
			nchain++;
			memcpy(sha, ne->sha, sizeof sha);
		}
		j++;
	}
	if (fd < 0) {
		free(chain);
		chain = NULL;
		nchain = 0;
	}
	*chainp = chain;
	*nchainp = nchain;
	return fd;
}

/* Apply one reverse delta to the content at basefd, into sink. */
static int
apply_link(struct store_reader *r, const struct link *l, int basefd,
    delta_sink sink, void *arg, char *err, size_t errlen)
{
	char *path;
	int in, rc;

	in = increment_open_rdelta(r->st, r->st->ids[l->j], l->sha, l->next,
	    &path);
	if (in < 0) {
		snprintf(err, errlen, "archive damaged: no increment %s: %s",
		    path, strerror(errno));
		free(path);
		return -1;
	}
	rc = increment_read(in, path, basefd, sink, arg, err, errlen);
	free(path);
	return rc;
}

/* Apply chain[n - 1] .. chain[stop] to fd, each into a temporary file;
 * the fd of the last, at offset 0 (fd itself when there is nothing to
 * apply), or -1.  fd is closed if it is replaced. */
static int
walk_back(struct store_reader *r, int fd, const struct link *chain, size_t n,
    size_t stop, char *err, size_t errlen)
{
	int out, sink;

	while (fd >= 0 && n-- > stop) {
		if ((out = store_tmpfile(r->st)) < 0) {
			r->nospace |= fs_no_room(errno);
			snprintf(err, errlen, "temporary file: %s",
			    strerror(errno));
		}
		sink = out;
		if (out >= 0 &&
		    apply_link(r, &chain[n], fd, delta_sink_fd, &sink, err,
			errlen) != 0) {
			r->nospace |= fs_no_room(errno);
			close(out);
			out = -1;
		}
		close(fd);
		fd = out;
		if (fd >= 0)
			lseek(fd, 0, SEEK_SET);
	}
	return fd;
}

int
store_reader_content(struct store_reader *r, size_t k, const struct ment *e,
    char *err, size_t errlen)
{
	struct link *chain;
	size_t nchain;
	int fd;

	fd = content_base(r, k, e, &chain, &nchain, err, errlen);
	fd = walk_back(r, fd, chain, nchain, 0, err, errlen);
	free(chain);
	return fd;
}

static int
hash_failed(const struct ment *e, const char *version, const char *why,
    char *err, size_t errlen)
{
	snprintf(err, errlen,
	    "%s of version %s does not match its SHA-256 (rebuilt %s)", e->path,
	    version, why);
	return -1;
}

/* The last reverse delta of the chain writes into out directly, not
 * through a temporary file. */
int
store_reader_copy(struct store_reader *r, size_t k, const struct ment *e,
    int out, char *err, size_t errlen)
{
	struct hashsink hs;
	struct link *chain;
	char why[200];
	size_t nchain;
	int fd, rc;

	fd = content_base(r, k, e, &chain, &nchain, err, errlen);
	fd = walk_back(r, fd, chain, nchain, 1, err, errlen);
	if (fd < 0) {
		free(chain);
		return -1;
	}
	hashsink_init(&hs, out, -1);
	if (nchain == 0) {
		rc = hashsink_read(&hs, fd);
		if (rc != 0)
			snprintf(err, errlen, "%s: %s", e->path,
			    strerror(errno));
	} else
		rc = apply_link(r, &chain[0], fd, hashsink_write, &hs, err,
		    errlen);
	if (rc != 0)
		hashsink_abort(&hs);
	else if (hashsink_check(&hs, e, why, sizeof why) != 0)
		rc = hash_failed(e, r->st->ids[k], why, err, errlen);
	close(fd);
	free(chain);
	return rc;
}

struct store_reader *
store_reader_new(const struct store *st, char *err, size_t errlen)
{
	struct store_reader *r = xcalloc(1, sizeof *r);

	r->st = st;
	r->ms = xcalloc(st->n ? st->n : 1, sizeof *r->ms);
	r->shas = xcalloc(st->n ? st->n : 1, sizeof *r->shas);
	r->curfd = openat(st->dfd, "current",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->curfd < 0 && st->n > 0) {
		snprintf(err, errlen, "%s/current: %s", st->dir,
		    strerror(errno));
		store_reader_free(r);
		return NULL;
	}
	return r;
}

void
store_reader_free(struct store_reader *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->st->n; i++) {
		manifest_free(r->ms[i]);
		manifest_shas_free(r->shas[i]);
	}
	free(r->ms);
	free(r->shas);
	if (r->curfd >= 0)
		close(r->curfd);
	free(r);
}

/* Whether the symlink at e's path (st says it is one) points where the
 * manifest says. */
static int
link_is(int curfd, const struct ment *e, char *target, size_t len)
{
	ssize_t n = readlinkat(curfd, e->path, target, len - 1);

	if (n < 0)
		return 0;
	target[n] = '\0';
	return strcmp(target, e->target) == 0;
}

/* The newest version's plain tree must hold the directories and symlinks
 * too: 0 when e is there as the manifest says. */
static int
check_entry(struct store_reader *r, const struct ment *e, char *err,
    size_t errlen)
{
	char target[4096];
	struct stat st;

	if (fstatat(r->curfd, e->path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		snprintf(err, errlen, "current/%s: %s", e->path,
		    strerror(errno));
		return -1;
	}
	if (e->type == MENT_DIR && !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "current/%s is not a directory", e->path);
		return -1;
	}
	if (e->type == MENT_LINK &&
	    (!S_ISLNK(st.st_mode) ||
		!link_is(r->curfd, e, target, sizeof target))) {
		snprintf(err, errlen,
		    "current/%s: not the symlink the "
		    "manifest says",
		    e->path);
		return -1;
	}
	return 0;
}

int
store_verify(const struct store *st, size_t index, store_bad_fn bad, void *arg,
    int64_t *files, int64_t *bytes, int *unchecked)
{
	struct store_reader *r;
	const struct manifest *m;
	const struct ment *e;
	char err[1024];
	int nbad = 0;
	size_t i;

	*files = *bytes = 0;
	if (unchecked != NULL)
		*unchecked = 0;
	err[0] = '\0';
	if ((r = store_reader_new(st, err, sizeof err)) == NULL ||
	    (m = store_reader_manifest(r, index, err, sizeof err)) == NULL) {
		bad(arg, st->ids[index], "manifest", err);
		store_reader_free(r);
		return 1;
	}
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		err[0] = '\0';
		if (e->type != MENT_FILE) {
			if (index + 1 == st->n &&
			    check_entry(r, e, err, sizeof err) != 0) {
				bad(arg, st->ids[index], e->path, err);
				nbad++;
			}
			continue;
		}
		r->nospace = 0;
		if (store_reader_copy(r, index, e, -1, err, sizeof err) == 0) {
			(*files)++;
			*bytes += e->size;
		} else if (r->nospace && unchecked != NULL) {
			/* Not damage: the disk had no room to rebuild it. */
			(*unchecked)++;
			log_warnx(
			    "version %s: %s cannot be checked: no room to "
			    "rebuild it in %s (%s)",
			    st->ids[index], e->path, st->dir, err);
		} else {
			bad(arg, st->ids[index], e->path, err);
			nbad++;
		}
	}
	store_reader_free(r);
	return nbad;
}
