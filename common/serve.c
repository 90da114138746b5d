#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>

#include "delta.h"
#include "fsutil.h"
#include "http.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "serve.h"
#include "worker.h"
#include "xmalloc.h"

struct delta_job {
	struct serve *sv;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	int orphaned;
	char *sig;
	size_t siglen;
	int fd;			/* the version's file */
	int outfd;		/* the delta */
	int spillfd;		/* its second half's, at first */
	off_t outlen;
	char *path;
	char err[512];
	int rc;
};

/* A reply body that goes out with sendfile: without the flag, libevent
 * would mmap the whole file to add it. */
static struct evbuffer *
file_body(int fd, off_t len)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
	if (len > 0)
		evbuffer_add_file(b, fd, 0, len);
	else
		close(fd);
	return b;
}

static int
open_tmp(const char *dir)
{
	char *tmpl;
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
	tmpl = xasprintf("%s/.delta.XXXXXX", dir);
	if ((fd = mkostemp(tmpl, O_CLOEXEC)) >= 0)
		unlink(tmpl);
	free(tmpl);
	return fd;
}

static void
delta_job_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct delta_job *j = arg;

	j->orphaned = 1;
}

static void
delta_job_work(void *arg)
{
	struct delta_job *j = arg;
	struct stat st;

	j->rc = delta_compute_fd(j->sig, j->siglen, j->fd, j->outfd,
	    j->spillfd, j->err, sizeof j->err);
	if (j->rc == 0 && fstat(j->outfd, &st) == 0)
		j->outlen = st.st_size;
}

static void
delta_job_done(void *arg)
{
	struct delta_job *j = arg;
	struct evbuffer *b;

	if (j->orphaned) {
		log_info("delta of %s: the client went away", j->path);
		close(j->outfd);
	} else {
		evhttp_connection_set_closecb(j->conn, NULL, NULL);
		if (j->rc != 0) {
			http_reply_error(j->req, 400, "delta of %s: %s",
			    j->path, j->err);
			close(j->outfd);
		} else {
			b = file_body(j->outfd, j->outlen);
			j->sv->deltas_sent++;
			j->sv->bytes_sent += (unsigned long long)j->outlen;
			j->sv->sig_bytes += (unsigned long long)j->siglen;
			http_reply(j->req, 200, "application/octet-stream", b);
			evbuffer_free(b);
		}
	}
	close(j->fd);
	if (j->spillfd >= 0)
		close(j->spillfd);
	free(j->sig);
	free(j->path);
	free(j);
}

static const char *
query_path(struct evhttp_request *req, char **decoded, char from[65])
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq q;
	const char *qs = evhttp_uri_get_query(u), *p;

	*decoded = NULL;
	if (qs == NULL)
		return NULL;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(qs, &q) != 0)
		return NULL;
	if ((p = evhttp_find_header(&q, "path")) != NULL)
		*decoded = xstrdup(p);
	if (from != NULL && (p = evhttp_find_header(&q, "from")) != NULL &&
	    strlen(p) == 64 && strspn(p, "0123456789abcdef") == 64)
		memcpy(from, p, 65);
	evhttp_clear_headers(&q);
	return *decoded;
}

/* GET delta?path=P&from=SHA: the delta the last pull kept that turns a
 * file with hash SHA into this version's P; 204 when there is none (the
 * client then posts a signature).  Safe whatever the file holds: the
 * client checks what it patches against the manifest. */
static void
serve_stored(struct serve *sv, struct evhttp_request *req,
    const struct serve_version *v, const struct ment *e, const char *from,
    int filefd)
{
	struct evbuffer *b;
	struct stat st;
	char *name;
	int fd = -1;

	close(filefd);
	if (from[0] == '\0') {
		http_reply_error(req, 400, "a GET of a delta needs from=SHA-256");
		return;
	}
	if (v->deltas_dir != NULL) {
		name = xasprintf("%s/%s.%s.delta", v->deltas_dir, from,
		    e->sha);
		fd = open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		free(name);
	}
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		b = evbuffer_new();
		http_reply(req, 204, NULL, b);
		evbuffer_free(b);
		return;
	}
	b = file_body(fd, st.st_size);
	sv->deltas_sent++;
	sv->stored_sent++;
	sv->bytes_sent += (unsigned long long)st.st_size;
	http_reply(req, 200, "application/octet-stream", b);
	evbuffer_free(b);
}

void
serve_request(struct serve *sv, struct evhttp_request *req, const char *rest)
{
	struct serve_version v;
	const struct ment *e;
	struct evbuffer *b;
	struct delta_job *j;
	struct stat st;
	char source[128], version[128], what[32], why[512], *path = NULL;
	char from[65];
	int code, fd, rootfd, n = 0;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *qmark = strchr(rest, '?');
	size_t restlen = qmark ? (size_t)(qmark - rest) : strlen(rest);
	char *r = xstrndup(rest, restlen);

	/* <source>/versions/<version>/<what> */
	if (sscanf(r, "%127[^/]/versions/%127[^/]/%31[a-z]%n", source, version,
	    what, &n) != 3 || r[n] != '\0') {
		free(r);
		http_reply_error(req, 404, "no such route");
		return;
	}
	free(r);
	memset(&v, 0, sizeof v);
	code = sv->lookup(sv->arg, source, version, &v, why, sizeof why);
	if (code != 200) {
		http_reply_error(req, code, "%s", why);
		return;
	}
	if (strcmp(what, "manifest") == 0 && cmd == EVHTTP_REQ_GET) {
		if ((fd = open(v.manifest_path, O_RDONLY | O_CLOEXEC)) < 0 ||
		    fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			http_reply_error(req, 500, "manifest of %s: %s",
			    version, strerror(errno));
			return;
		}
		b = file_body(fd, st.st_size);
		http_reply(req, 200, "text/plain; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	if ((strcmp(what, "file") == 0 && cmd == EVHTTP_REQ_GET) ||
	    (strcmp(what, "delta") == 0 && (cmd == EVHTTP_REQ_POST ||
	    cmd == EVHTTP_REQ_GET))) {
		from[0] = '\0';
		if (query_path(req, &path, from) == NULL ||
		    path_check(path) != NULL ||
		    (e = manifest_find(v.m, path)) == NULL ||
		    e->type != MENT_FILE) {
			http_reply_error(req, 404, "version %s of %s has no "
			    "file %s", version, source, path ? path : "(none)");
			free(path);
			return;
		}
		if ((rootfd = open(v.root, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) < 0)
			fd = -1;
		else {
			fd = fs_open_beneath(rootfd, path, O_RDONLY, 0);
			close(rootfd);
		}
		if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_size != e->size) {
			if (fd >= 0)
				close(fd);
			http_reply_error(req, 410, "file %s of version %s is "
			    "gone or changed on this host", path, version);
			free(path);
			return;
		}
		if (cmd == EVHTTP_REQ_GET && what[0] == 'd') {
			serve_stored(sv, req, &v, e, from, fd);
			free(path);
			return;
		}
		if (what[0] == 'f') {
			b = file_body(fd, st.st_size);
			sv->files_sent++;
			sv->bytes_sent += (unsigned long long)st.st_size;
			http_reply(req, 200, "application/octet-stream", b);
			evbuffer_free(b);
			free(path);
			return;
		}
		j = xcalloc(1, sizeof *j);
		j->sv = sv;
		j->req = req;
		j->fd = fd;
		j->path = path;
		j->sig = http_body(req, PROTO_MAX_BODY, &j->siglen);
		j->outfd = open_tmp(v.tmp_dir);
		/* Without it, the delta is made on one thread. */
		j->spillfd = st.st_size >= delta_split_min ?
		    open_tmp(v.tmp_dir) : -1;
		if (j->sig == NULL || j->outfd < 0) {
			http_reply_error(req, j->sig == NULL ? 413 : 500,
			    "delta of %s: %s", path, j->sig == NULL ?
			    "signature too large" : strerror(errno));
			if (j->outfd >= 0)
				close(j->outfd);
			if (j->spillfd >= 0)
				close(j->spillfd);
			close(fd);
			free(j->sig);
			free(path);
			free(j);
			return;
		}
		j->conn = evhttp_request_get_connection(req);
		evhttp_connection_set_closecb(j->conn, delta_job_close_cb, j);
		worker_submit(sv->workers, delta_job_work, delta_job_done, j);
		return;
	}
	http_reply_error(req, cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_POST ?
	    404 : 405, "no such route");
}
