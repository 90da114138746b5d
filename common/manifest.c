#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fsutil.h"
#include "manifest.h"
#include "xmalloc.h"

void
manifest_free(struct manifest *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++) {
		free(m->e[i].path);
		free(m->e[i].target);
	}
	free(m->e);
	owners_free(m->users, m->nusers);
	owners_free(m->groups, m->ngroups);
	free(m->source);
	free(m->version);
	free(m);
}

/* The hash cache: a file's SHA-256 by device, inode, size, mtime and
 * birth time, from the last scan.  The birth time tells a new file that
 * got a deleted one's inode number (an export hook that copies with
 * mtimes kept makes those); not ctime, which hard-linking a file, as
 * other export hooks do, changes.  Where the filesystem has no birth time
 * nothing is cached.  Text, one file a line:
 * "DEV INO SIZE SEC NSEC BIRTHSEC BIRTHNSEC SHA". */
#define HCACHE_MAGIC "understudy-hash-cache 2"

struct hc_ent {
	uint64_t dev, ino;
	int64_t size, sec, bsec;
	long nsec, bnsec;
	char sha[HASH_HEX_SIZE];
};

struct hcache {
	struct hc_ent *e;
	size_t n, cap;
};

static int
hc_cmp(const void *a, const void *b)
{
	const struct hc_ent *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static struct hc_ent *
hc_add(struct hcache *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->e = xreallocarray(c->e, c->cap, sizeof *c->e);
	}
	return &c->e[c->n++];
}

/* A missing or damaged cache is an empty one: files are hashed anew. */
static void
hc_load(struct hcache *c, const char *path)
{
	struct hc_ent *e;
	char *buf, *line, *next, *end;
	size_t len;
	int k;

	if (path == NULL || fs_read_file(path, 256u << 20, &buf, &len) != 0)
		return;
	line = buf;
	end = buf + len;
	next = memchr(line, '\n', len);
	if (next == NULL || (size_t)(next - line) != strlen(HCACHE_MAGIC) ||
	    memcmp(line, HCACHE_MAGIC, strlen(HCACHE_MAGIC)) != 0) {
		free(buf);
		return;
	}
	for (line = next + 1; line < end; line = next + 1) {
		if ((next = memchr(line, '\n', (size_t)(end - line))) == NULL)
			break;
		*next = '\0';
		e = hc_add(c);
		k = 0;
		if (sscanf(line,
			"%" SCNu64 " %" SCNu64 " %" SCNd64 " %" SCNd64
			" %ld %" SCNd64 " %ld %64[0-9a-f]%n",
			&e->dev, &e->ino, &e->size, &e->sec, &e->nsec, &e->bsec,
			&e->bnsec, e->sha, &k) != 8 ||
		    line[k] != '\0' || !hash_hex_valid(e->sha)) {
			c->n = 0; /* damaged: trust none of it */
			break;
		}
	}
	free(buf);
	if (c->n > 1)
		qsort(c->e, c->n, sizeof *c->e, hc_cmp);
}

/* The birth time of a file, or -1 where the filesystem keeps none. */
static int
birth_time(int dfd, const char *name, int flags, struct timespec *bt)
{
	struct statx stx;

	flags |= AT_SYMLINK_NOFOLLOW;
	if (statx(dfd, name, flags, STATX_BTIME, &stx) != 0 ||
	    !(stx.stx_mask & STATX_BTIME))
		return -1;
	bt->tv_sec = stx.stx_btime.tv_sec;
	bt->tv_nsec = stx.stx_btime.tv_nsec;
	return 0;
}

/* The cached SHA-256 of a file, and its birth time in *bt. */
static const char *
hc_find(const struct hcache *c, const struct stat *st, int dfd,
    const char *name, struct timespec *bt)
{
	struct hc_ent key, *e;

	if (c->n == 0)
		return NULL;
	key.dev = (uint64_t)st->st_dev;
	key.ino = (uint64_t)st->st_ino;
	e = bsearch(&key, c->e, c->n, sizeof *c->e, hc_cmp);
	if (e == NULL || e->size != st->st_size ||
	    e->sec != st->st_mtim.tv_sec || e->nsec != st->st_mtim.tv_nsec ||
	    birth_time(dfd, name, 0, bt) != 0 || e->bsec != bt->tv_sec ||
	    e->bnsec != bt->tv_nsec)
		return NULL;
	return e->sha;
}

static int
hc_save(const struct hcache *c, const char *path)
{
	struct evbuffer *b = evbuffer_new();
	size_t i;
	int rc;

	evbuffer_add_printf(b, "%s\n", HCACHE_MAGIC);
	for (i = 0; i < c->n; i++)
		evbuffer_add_printf(b,
		    "%" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64
		    " %ld %" PRId64 " %ld %s\n",
		    c->e[i].dev, c->e[i].ino, c->e[i].size, c->e[i].sec,
		    c->e[i].nsec, c->e[i].bsec, c->e[i].bnsec, c->e[i].sha);
	rc = fs_write_atomic(path, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return rc;
}

struct scan {
	struct manifest *m;
	size_t cap;
	char *err;
	size_t errlen;
	struct hcache old, now; /* hash cache: last scan's, this one's */
	int64_t hashed;         /* files hashed, not from the cache */
	int caching;
	time_t start; /* when the scan began */
};

static struct ment *
scan_add(struct scan *s)
{
	if (s->m->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->m->e = xreallocarray(s->m->e, s->cap, sizeof *s->m->e);
	}
	memset(&s->m->e[s->m->n], 0, sizeof s->m->e[0]);
	return &s->m->e[s->m->n++];
}

/* Remember a file's SHA-256 for the next scan; bt its birth time, or
 * NULL to read it from fd. */
static void
hc_keep(struct scan *s, const struct stat *st, const struct timespec *bt,
    int fd, const char *sha)
{
	struct hc_ent *e;
	struct timespec got;

	/* A file written in the second before the scan or during it could
	 * be written again within the same clock tick, its size kept, and
	 * look unchanged next time: it is hashed again then, not cached. */
	if (!s->caching || st->st_mtim.tv_sec + 1 >= s->start)
		return;
	if (bt == NULL) {
		if (birth_time(fd, "", AT_EMPTY_PATH, &got) != 0)
			return;
		bt = &got;
	}
	e = hc_add(&s->now);
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = st->st_size;
	e->sec = st->st_mtim.tv_sec;
	e->nsec = st->st_mtim.tv_nsec;
	e->bsec = bt->tv_sec;
	e->bnsec = bt->tv_nsec;
	memcpy(e->sha, sha, HASH_HEX_SIZE);
}

static int
scan_dir(struct scan *s, int dfd, const char *prefix)
{
	DIR *d;
	struct dirent *de;
	struct stat st;
	struct timespec bt;
	struct ment *e;
	char *rel, buf[PATH_MAX];
	const char *cached;
	int fd, rc = 0;
	ssize_t n;
	int64_t got;

	if ((d = fdopendir(dfd)) == NULL) {
		snprintf(s->err, s->errlen, "%s: cannot read directory: %s",
		    *prefix ? prefix : ".", strerror(errno));
		close(dfd);
		return -1;
	}
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		rel = *prefix ? xasprintf("%s/%s", prefix, de->d_name) :
				xstrdup(de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			snprintf(s->err, s->errlen, "%s: %s", rel,
			    strerror(errno));
			free(rel);
			rc = -1;
			break;
		}
		e = NULL;
		if (S_ISREG(st.st_mode) &&
		    (cached = hc_find(&s->old, &st, dirfd(d), de->d_name,
			 &bt))) {
			e = scan_add(s);
			e->type = MENT_FILE;
			memcpy(e->sha, cached, HASH_HEX_SIZE);
			e->size = st.st_size;
			s->m->files++;
			s->m->bytes += st.st_size;
			hc_keep(s, &st, &bt, -1, e->sha);
		} else if (S_ISREG(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				snprintf(s->err, s->errlen,
				    "%s: cannot open: %s", rel,
				    strerror(errno));
				free(rel);
				rc = -1;
				break;
			}
			e = scan_add(s);
			e->type = MENT_FILE;
			got = hash_fd(fd, e->sha);
			s->hashed++;
			if (got < 0 || fstat(fd, &st) != 0) {
				snprintf(s->err, s->errlen,
				    "%s: cannot read: %s", rel,
				    strerror(errno));
				rc = -1;
			} else if (got != st.st_size) {
				snprintf(s->err, s->errlen,
				    "%s: the file changed while it was hashed; "
				    "the export hook must finish writing "
				    "before it exits",
				    rel);
				rc = -1;
			} else
				hc_keep(s, &st, NULL, fd, e->sha);
			close(fd);
			e->size = st.st_size;
			s->m->files++;
			s->m->bytes += st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			e = scan_add(s);
			e->type = MENT_DIR;
			strcpy(e->sha, "-");
		} else if (S_ISLNK(st.st_mode)) {
			n = readlinkat(dirfd(d), de->d_name, buf,
			    sizeof buf - 1);
			if (n < 0) {
				snprintf(s->err, s->errlen, "%s: readlink: %s",
				    rel, strerror(errno));
				free(rel);
				rc = -1;
				break;
			}
			buf[n] = '\0';
			e = scan_add(s);
			e->type = MENT_LINK;
			e->target = xstrdup(buf);
			e->size = n;
			strcpy(e->sha, "-");
		} else {
			snprintf(s->err, s->errlen,
			    "%s: unsupported file type (only files, "
			    "directories and symlinks can be backed up)",
			    rel);
			free(rel);
			rc = -1;
			break;
		}
		e->path = rel;
		e->mode = st.st_mode & 07777;
		e->uid = (uint32_t)st.st_uid;
		e->gid = (uint32_t)st.st_gid;
		e->mtime_sec = st.st_mtim.tv_sec;
		e->mtime_nsec = st.st_mtim.tv_nsec;
		if (rc == 0 && e->type == MENT_DIR) {
			fd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				snprintf(s->err, s->errlen,
				    "%s: cannot open directory: %s", rel,
				    strerror(errno));
				rc = -1;
			} else
				rc = scan_dir(s, fd, rel);
		}
	}
	if (rc == 0 && errno != 0) {
		snprintf(s->err, s->errlen, "%s: readdir: %s",
		    *prefix ? prefix : ".", strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

static int
ment_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ment *)a)->path,
	    ((const struct ment *)b)->path);
}

int
manifest_scan(const char *dir, const char *source, const char *version,
    struct manifest **out, char *err, size_t errlen)
{
	return manifest_scan_cached(dir, source, version, NULL, out, NULL, err,
	    errlen);
}

int
manifest_scan_cached(const char *dir, const char *source, const char *version,
    const char *cache, struct manifest **out, int64_t *hashed, char *err,
    size_t errlen)
{
	struct scan s;
	struct stat top;
	int fd, rc = -1;

	memset(&s, 0, sizeof s);
	s.m = xcalloc(1, sizeof *s.m);
	s.m->generation = 1;
	s.m->source = xstrdup(source);
	s.m->version = xstrdup(version);
	s.err = err;
	s.errlen = errlen;
	s.caching = cache != NULL;
	s.start = time(NULL);
	hc_load(&s.old, cache);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
	else if (fstat(fd, &top) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		close(fd);
	} else if (scan_dir(&s, fd, "") == 0)
		rc = 0;
	/* Only what this scan saw goes into the new cache; a cache that
	 * cannot be written costs the next scan time, not correctness. */
	if (rc == 0 && cache != NULL && hc_save(&s.now, cache) != 0)
		unlink(cache);
	free(s.old.e);
	free(s.now.e);
	if (rc != 0) {
		manifest_free(s.m);
		return -1;
	}
	if (s.m->n > 0)
		qsort(s.m->e, s.m->n, sizeof *s.m->e, ment_cmp);
	s.m->owners = 1;
	s.m->root_uid = (uint32_t)top.st_uid;
	s.m->root_gid = (uint32_t)top.st_gid;
	s.m->root_mode = top.st_mode & 07777;
	owners_name(s.m);
	if (hashed != NULL)
		*hashed = s.hashed;
	*out = s.m;
	return 0;
}

void
manifest_encode(struct evbuffer *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%')
			evbuffer_add_printf(b, "%%%02X", *p);
		else
			evbuffer_add(b, p, 1);
	}
}

void
manifest_write(const struct manifest *m, struct evbuffer *b)
{
	const struct ment *e;
	size_t i;

	evbuffer_add_printf(b, "%s\nsource ", MANIFEST_MAGIC);
	manifest_encode(b, m->source);
	evbuffer_add_printf(b, "\nversion ");
	manifest_encode(b, m->version);
	/* Generation 1 says nothing: its manifests are as they always were. */
	if (m->generation > 1)
		evbuffer_add_printf(b, "\ngeneration %lld",
		    (long long)m->generation);
	if (m->owners) {
		evbuffer_add_printf(b, "\nowners %u:%u %04o", m->root_uid,
		    m->root_gid, (unsigned int)m->root_mode);
		for (i = 0; i < m->nusers; i++)
			evbuffer_add_printf(b, "\nuser %u %s", m->users[i].id,
			    m->users[i].name);
		for (i = 0; i < m->ngroups; i++)
			evbuffer_add_printf(b, "\ngroup %u %s", m->groups[i].id,
			    m->groups[i].name);
	}
	evbuffer_add_printf(b, "\nentries %zu\n", m->n);
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		evbuffer_add_printf(b, "%c %04o ", e->type,
		    (unsigned int)e->mode);
		if (m->owners)
			evbuffer_add_printf(b, "%u:%u ", e->uid, e->gid);
		evbuffer_add_printf(b, "%lld %lld.%09ld %s ",
		    (long long)e->size, (long long)e->mtime_sec, e->mtime_nsec,
		    e->sha);
		manifest_encode(b, e->path);
		if (e->type == MENT_LINK) {
			evbuffer_add(b, " ", 1);
			manifest_encode(b, e->target);
		}
		evbuffer_add(b, "\n", 1);
	}
	evbuffer_add_printf(b, "end\n");
}

int
manifest_save(const struct manifest *m, const char *path)
{
	struct evbuffer *b = evbuffer_new();
	int rc;

	manifest_write(m, b);
	rc = fs_write_atomic(path, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return rc;
}

void
manifest_signature(const struct manifest *m, struct evbuffer *b, size_t max)
{
	const struct ment *e;
	const char *p;
	size_t i, lines = 0;

	/* sha256sum's format: a name holding a newline or a backslash gets a
	 * leading backslash and escapes, so "sha256sum -c" still reads it. */
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (e->type != MENT_FILE)
			continue;
		if (max != 0 && lines++ == max)
			break;
		if (strpbrk(e->path, "\\\n") == NULL) {
			evbuffer_add_printf(b, "%s  ./%s\n", e->sha, e->path);
			continue;
		}
		evbuffer_add_printf(b, "\\%s  ./", e->sha);
		for (p = e->path; *p != '\0'; p++) {
			if (*p == '\\')
				evbuffer_add(b, "\\\\", 2);
			else if (*p == '\n')
				evbuffer_add(b, "\\n", 2);
			else
				evbuffer_add(b, p, 1);
		}
		evbuffer_add(b, "\n", 1);
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a percent-encoded field; NULL on malformed or NUL bytes. */
char *
manifest_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	size_t i;
	int hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 ||
		    (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

static int
parse_i64(const char *s, size_t len, int base, int64_t max, int64_t *out)
{
	char buf[24], *end;
	long long v;

	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (buf[0] == '-' || buf[0] == '+' || buf[0] == ' ')
		return -1;
	errno = 0;
	v = strtoll(buf, &end, base);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

#define MERR(...) \
	do { \
		snprintf(err, errlen, "manifest line %zu: ", lineno); \
		snprintf(err + strlen(err), errlen - strlen(err), \
		    __VA_ARGS__); \
		goto fail; \
	} while (0)

/* "UID:GID" */
static int
parse_owner(const char *s, size_t len, uint32_t *uid, uint32_t *gid)
{
	const char *colon = memchr(s, ':', len);
	int64_t u, g;

	if (colon == NULL ||
	    parse_i64(s, (size_t)(colon - s), 10, OWNER_ID_MAX, &u) != 0 ||
	    parse_i64(colon + 1, (size_t)(s + len - colon - 1), 10,
		OWNER_ID_MAX, &g) != 0)
		return -1;
	*uid = (uint32_t)u;
	*gid = (uint32_t)g;
	return 0;
}

/* A "user ID NAME" or "group ID NAME" line into its table, whose ids
 * must increase. */
static const char *
parse_owner_name(const char *const *f, const size_t *flen, struct mowner **t,
    size_t *n)
{
	int64_t id;

	if (parse_i64(f[1], flen[1], 10, OWNER_ID_MAX, &id) != 0)
		return "bad id";
	if (!owner_name_valid(f[2], flen[2]))
		return "bad name";
	if (*n > 0 && (*t)[*n - 1].id >= (uint32_t)id)
		return "ids not increasing";
	if (*n == OWNER_TABLE_MAX)
		return "too many names";
	if ((*n & (*n - 1)) == 0)
		*t = xreallocarray(*t, *n ? *n * 2 : 1, sizeof **t);
	(*t)[*n].id = (uint32_t)id;
	(*t)[(*n)++].name = xstrndup(f[2], flen[2]);
	return NULL;
}

int
manifest_parse(const char *buf, size_t len, struct manifest **out, char *err,
    size_t errlen)
{
	struct manifest *m = xcalloc(1, sizeof *m);
	/* The optional header lines, in this order: generation (1),
	 * owners (2), user (3), group (4); then entries (5). */
	int hdr = 0;
	size_t o = 0; /* 1 when the entries carry owners */
	const char *why;
	const char *p = buf, *end = buf + len, *nl, *f[8] = { 0 };
	size_t flen[8] = { 0 }, nf, lineno = 0, want = 0, cap = 0;
	int64_t v, sec, nsec;
	struct ment *e;
	const char *dot;
	int ended = 0;

	m->generation = 1;

	*out = NULL;
	if (len > MANIFEST_MAX_BYTES) {
		snprintf(err, errlen, "manifest larger than %u bytes",
		    MANIFEST_MAX_BYTES);
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "manifest holds a NUL byte");
		goto fail;
	}
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			MERR("no newline at the end");
		if (ended)
			MERR("data after \"end\"");
		nf = 0;
		for (const char *q = p; q <= nl;) {
			const char *sp = memchr(q, ' ', (size_t)(nl - q));
			const char *fe = sp != NULL ? sp : nl;
			if (nf == 8)
				MERR("too many fields");
			f[nf] = q;
			flen[nf++] = (size_t)(fe - q);
			q = fe + 1;
		}
		if (lineno == 1) {
			if ((size_t)(nl - p) != strlen(MANIFEST_MAGIC) ||
			    memcmp(p, MANIFEST_MAGIC, (size_t)(nl - p)) != 0)
				MERR("not an understudy manifest (expected "
				     "\"%s\")",
				    MANIFEST_MAGIC);
		} else if (lineno == 2 || lineno == 3) {
			const char *kw = lineno == 2 ? "source" : "version";
			if (nf != 2 || flen[0] != strlen(kw) ||
			    memcmp(f[0], kw, flen[0]) != 0)
				MERR("expected \"%s NAME\"", kw);
			char *val = manifest_decode(f[1], flen[1]);
			if (val == NULL || *val == '\0') {
				free(val);
				MERR("bad %s name", kw);
			}
			if (lineno == 2)
				m->source = val;
			else
				m->version = val;
		} else if (hdr < 1 && nf == 2 && flen[0] == 10 &&
		    memcmp(f[0], "generation", 10) == 0) {
			if (parse_i64(f[1], flen[1], 10, INT32_MAX, &v) != 0 ||
			    v < 1)
				MERR("bad generation");
			m->generation = v;
			hdr = 1;
		} else if (hdr < 2 && nf == 3 && flen[0] == 6 &&
		    memcmp(f[0], "owners", 6) == 0) {
			if (parse_owner(f[1], flen[1], &m->root_uid,
				&m->root_gid) != 0)
				MERR("bad owners of the top directory");
			if (parse_i64(f[2], flen[2], 8, 07777, &v) != 0)
				MERR("bad mode of the top directory");
			m->root_mode = (mode_t)v;
			m->owners = 1;
			o = 1;
			hdr = 2;
		} else if (hdr >= 2 && hdr <= 3 && nf == 3 && flen[0] == 4 &&
		    memcmp(f[0], "user", 4) == 0) {
			if ((why = parse_owner_name(f, flen, &m->users,
				 &m->nusers)) != NULL)
				MERR("user line: %s", why);
			hdr = 3;
		} else if (hdr >= 2 && hdr <= 4 && nf == 3 && flen[0] == 5 &&
		    memcmp(f[0], "group", 5) == 0) {
			if ((why = parse_owner_name(f, flen, &m->groups,
				 &m->ngroups)) != NULL)
				MERR("group line: %s", why);
			hdr = 4;
		} else if (hdr < 5) {
			if (nf != 2 || flen[0] != 7 ||
			    memcmp(f[0], "entries", 7) != 0 ||
			    parse_i64(f[1], flen[1], 10, 100000000, &v) != 0)
				MERR("expected \"entries N\"");
			/* A count from the wire is bounded by the bytes that
			 * carry it: an entry's line takes at least 22. */
			if ((size_t)v > (size_t)(end - nl) / 22)
				MERR("entries %lld: more than the %zu bytes "
				     "after it can hold",
				    (long long)v, (size_t)(end - nl));
			want = (size_t)v;
			cap = want;
			m->e = xcalloc(cap ? cap : 1, sizeof *m->e);
			hdr = 5;
		} else if (nf == 1 && flen[0] == 3 &&
		    memcmp(f[0], "end", 3) == 0) {
			if (m->n != want)
				MERR("%zu entries, the header says %zu", m->n,
				    want);
			ended = 1;
		} else {
			if (m->n == want)
				MERR("more entries than the header's %zu",
				    want);
			if (flen[0] != 1 ||
			    (f[0][0] != 'F' && f[0][0] != 'D' &&
				f[0][0] != 'L'))
				MERR("unknown entry type");
			if (nf != (f[0][0] == 'L' ? 7u : 6u) + o)
				MERR("wrong number of fields");
			e = &m->e[m->n++];
			e->type = f[0][0];
			if (parse_i64(f[1], flen[1], 8, 07777, &v) != 0)
				MERR("bad mode");
			e->mode = (mode_t)v;
			if (o &&
			    parse_owner(f[2], flen[2], &e->uid, &e->gid) != 0)
				MERR("bad owners");
			if (parse_i64(f[2 + o], flen[2 + o], 10, INT64_MAX / 2,
				&e->size) != 0)
				MERR("bad size");
			dot = memchr(f[3 + o], '.', flen[3 + o]);
			if (dot == NULL ||
			    (size_t)(f[3 + o] + flen[3 + o] - dot - 1) != 9 ||
			    parse_i64(f[3 + o], (size_t)(dot - f[3 + o]), 10,
				INT64_MAX / 2, &sec) != 0 ||
			    parse_i64(dot + 1, 9, 10, 999999999, &nsec) != 0)
				MERR("bad mtime");
			e->mtime_sec = sec;
			e->mtime_nsec = (long)nsec;
			if (e->type == MENT_FILE) {
				if (flen[4 + o] != HASH_HEX_LEN)
					MERR("bad SHA-256");
				memcpy(e->sha, f[4 + o], HASH_HEX_LEN);
				e->sha[HASH_HEX_LEN] = '\0';
				if (!hash_hex_valid(e->sha))
					MERR("bad SHA-256");
				m->files++;
				if (e->size > INT64_MAX - m->bytes)
					MERR("the sizes add up past 2^63");
				m->bytes += e->size;
			} else {
				if (flen[4 + o] != 1 || f[4 + o][0] != '-')
					MERR("only files carry a SHA-256");
				strcpy(e->sha, "-");
			}
			if ((e->path = manifest_decode(f[5 + o],
				 flen[5 + o])) == NULL)
				MERR("bad path encoding");
			why = path_check(e->path);
			if (why != NULL)
				MERR("path refused: %s", why);
			if (e->type == MENT_LINK) {
				if ((e->target = manifest_decode(f[6 + o],
					 flen[6 + o])) == NULL ||
				    *e->target == '\0')
					MERR("bad symlink target");
				if ((int64_t)strlen(e->target) != e->size)
					MERR("symlink size does not match its "
					     "target");
			}
			if (m->n > 1 &&
			    strcmp(m->e[m->n - 2].path, e->path) >= 0)
				MERR("entries not sorted or path repeated");
			/* Every parent must be a directory listed earlier. */
			const char *slash = strrchr(e->path, '/');
			if (slash != NULL) {
				size_t plen = (size_t)(slash - e->path);
				char *parent = xstrndup(e->path, plen);
				struct manifest part = *m;
				const struct ment *pe;
				part.n = m->n - 1;
				pe = manifest_find(&part, parent);
				free(parent);
				if (pe == NULL || pe->type != MENT_DIR)
					MERR("parent of \"%s\" is not a "
					     "directory of the manifest",
					    e->path);
			}
		}
		p = nl + 1;
	}
	if (lineno < 4 || !ended) {
		snprintf(err, errlen, "manifest truncated: no \"end\" line");
		goto fail;
	}
	(void)cap;
	*out = m;
	return 0;
fail:
	manifest_free(m);
	return -1;
}

int
manifest_load(const char *path, struct manifest **out, char *err, size_t errlen)
{
	char *buf, inner[512];
	size_t len;
	int rc;

	if (fs_read_file(path, MANIFEST_MAX_BYTES, &buf, &len) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = manifest_parse(buf, len, out, inner, sizeof inner);
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", path, inner);
	free(buf);
	return rc;
}

int
manifest_same(const struct ment *a, const struct ment *b)
{
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid ||
	    a->gid != b->gid || a->size != b->size ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec)
		return 0;
	if (a->type == MENT_FILE)
		return strcmp(a->sha, b->sha) == 0;
	if (a->type == MENT_LINK)
		return strcmp(a->target, b->target) == 0;
	return 1;
}

void
manifest_diff(const struct manifest *old, const struct manifest *new,
    manifest_diff_fn *fn, void *arg)
{
	size_t i = 0, j = 0;
	int c;

	while (i < old->n || j < new->n) {
		if (i == old->n)
			c = 1;
		else if (j == new->n)
			c = -1;
		else
			c = strcmp(old->e[i].path, new->e[j].path);
		if (c < 0)
			fn(arg, &old->e[i++], NULL);
		else if (c > 0)
			fn(arg, NULL, &new->e[j++]);
		else {
			if (!manifest_same(&old->e[i], &new->e[j]))
				fn(arg, &old->e[i], &new->e[j]);
			i++;
			j++;
		}
	}
}

const struct ment *
manifest_find(const struct manifest *m, const char *path)
{
	size_t lo = 0, hi = m->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(m->e[mid].path, path);
		if (c == 0)
			return &m->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct manifest_shas {
	const struct ment **e;
	size_t n;
};

static int
shas_cmp(const void *a, const void *b)
{
	return memcmp((*(const struct ment *const *)a)->sha,
	    (*(const struct ment *const *)b)->sha, HASH_HEX_SIZE);
}

struct manifest_shas *
manifest_shas_new(const struct manifest *m)
{
	struct manifest_shas *s = xcalloc(1, sizeof *s);
	size_t i;

	s->e = xreallocarray(NULL, m->n > 0 ? m->n : 1, sizeof *s->e);
	for (i = 0; i < m->n; i++)
		if (m->e[i].type == MENT_FILE)
			s->e[s->n++] = &m->e[i];
	qsort(s->e, s->n, sizeof *s->e, shas_cmp);
	return s;
}

const struct ment *const *
manifest_shas_all(const struct manifest_shas *s, const char *sha, size_t *n)
{
	size_t lo = 0, hi = s->n, mid, end;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (memcmp(s->e[mid]->sha, sha, HASH_HEX_SIZE) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo;
	     end < s->n && memcmp(s->e[end]->sha, sha, HASH_HEX_SIZE) == 0;
	     end++)
		;
	*n = end - lo;
	return s->e + lo;
}

const struct ment *
manifest_shas_find(const struct manifest_shas *s, const char *sha)
{
	size_t n;
	const struct ment *const *e = manifest_shas_all(s, sha, &n);

	return n > 0 ? e[0] : NULL;
}

void
manifest_shas_free(struct manifest_shas *s)
{
	if (s == NULL)
		return;
	free(s->e);
	free(s);
}
