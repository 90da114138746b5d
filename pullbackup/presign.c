#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "delta.h"
#include "fsutil.h"
#include "hash.h"
#include "hints.h"
#include "log.h"
#include "manifest.h"
#include "presign.h"
#include "sync.h"
#include "worker.h"
#include "xmalloc.h"

#define SIG_NAME_MAX (HASH_HEX_SIZE + 32)

struct presign_file {
	char sha[HASH_HEX_SIZE];
	size_t block;
};

struct presign {
	char *dir;
	struct presign_file *f;
	size_t n;
};

/* The name of the signature of content sha in blocks of block bytes. */
static void
sig_name(char buf[SIG_NAME_MAX], const char *sha, size_t block)
{
	snprintf(buf, SIG_NAME_MAX, "%s.%zu.sig", sha, block);
}

static char *
sig_path(const char *dir, const char *sha, size_t block)
{
	char name[SIG_NAME_MAX];

	sig_name(name, sha, block);
	return xasprintf("%s/%s", dir, name);
}

static char *
src_path(const char *dir, const char *sha)
{
	return xasprintf("%s/%s.src", dir, sha);
}

static int
sigs_get(void *arg, const char *sha, size_t block, struct evbuffer *sig)
{
	char *p = sig_path(arg, sha, block), *buf;
	size_t len;
	int rc;

	if ((rc = fs_read_file(p, DELTA_MAX_SIGNATURE, &buf, &len)) == 0) {
		evbuffer_add(sig, buf, len);
		free(buf);
	}
	free(p);
	return rc;
}

static void
sigs_bad(void *arg, const char *sha, size_t block)
{
	char *p = sig_path(arg, sha, block);

	unlink(p);
	free(p);
}

void
presign_sigs(struct sync_sigs *sigs, const char *dir)
{
	sigs->get = sigs_get;
	sigs->bad = sigs_bad;
	sigs->arg = (void *)dir;
}

struct presign *
presign_build(const char *dir, const struct manifest *m,
    const struct manifest *base_m, const struct hints *hints,
    const char *staging)
{
	struct presign *p;
	const struct ment *e, *be;
	const char *name;
	char *src;
	size_t i;
	int stagefd, pfd, rc;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_warn("%s", dir);
		return NULL;
	}
	if ((stagefd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warn("%s", staging);
		return NULL;
	}
	p = xcalloc(1, sizeof *p);
	p->dir = xstrdup(dir);
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (e->type != MENT_FILE || e->size < PRESIGN_MIN)
			continue;
		be = base_m != NULL ? manifest_find(base_m, e->path) : NULL;
		if (be != NULL && be->type == MENT_FILE &&
		    strcmp(be->sha, e->sha) == 0)
			continue;
		if ((pfd = fs_open_parent(stagefd, e->path, &name)) < 0)
			continue;
		src = src_path(dir, e->sha);
		rc = linkat(pfd, name, AT_FDCWD, src, 0);
		close(pfd);
		free(src);
		if (rc != 0)
			continue; /* EEXIST: the same content twice */
		p->f = xreallocarray(p->f, p->n + 1, sizeof *p->f);
		memcpy(p->f[p->n].sha, e->sha, sizeof p->f[p->n].sha);
		p->f[p->n].block = hints_block(hints_find(hints, e->path),
		    e->size);
		p->n++;
	}
	close(stagefd);
	return p;
}

static int
presign_sink(void *arg, const void *buf, size_t n)
{
	if (worker_stopping()) {
		errno = ECANCELED;
		return -1;
	}
	return fs_write_all(*(int *)arg, buf, n);
}

/* Whether name in dir is one of p's signatures. */
static int
presign_keeps(const struct presign *p, const char *name)
{
	char want[SIG_NAME_MAX];
	size_t i;

	for (i = 0; i < p->n; i++) {
		sig_name(want, p->f[i].sha, p->f[i].block);
		if (strcmp(want, name) == 0)
			return 1;
	}
	return 0;
}

static void *
presign_thread(void *arg)
{
	struct presign *p = arg;
	struct dirent *de;
	char *src, *out, *tmp, err[256];
	size_t i;
	int fd, ofd, rc;
	DIR *d;

	/* Only what the machine leaves idle: a chain may be under way. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	for (i = 0; i < p->n && !worker_stopping(); i++) {
		src = src_path(p->dir, p->f[i].sha);
		out = sig_path(p->dir, p->f[i].sha, p->f[i].block);
		tmp = xasprintf("%s.tmp", out);
		fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		rc = -1;
		if (fd >= 0 && ofd >= 0)
			rc = delta_signature_alone(fd, p->f[i].block,
			    presign_sink, &ofd, err, sizeof err);
		if (fd >= 0)
			close(fd);
		if (ofd >= 0 && close(ofd) != 0)
			rc = -1;
		if (rc != 0 || rename(tmp, out) != 0)
			unlink(tmp); /* the next sync makes it then */
		unlink(src);
		free(src);
		free(out);
		free(tmp);
	}
	/* The signatures of older versions, and what a stop left. */
	if (!worker_stopping() && (d = opendir(p->dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    !presign_keeps(p, de->d_name))
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	return NULL;
}

void
presign_run(struct presign *p)
{
	pthread_t t;

	if (p == NULL)
		return;
	/* A thread of its own, whose priority can be lowered for good. */
	if (pthread_create(&t, NULL, presign_thread, p) != 0)
		presign_thread(p);
	else
		pthread_join(t, NULL);
	presign_free(p);
}

void
presign_free(struct presign *p)
{
	if (p == NULL)
		return;
	free(p->f);
	free(p->dir);
	free(p);
}
