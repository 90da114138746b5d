#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <event2/http.h>

#include "config.h"
#include "gate.h"
#include "doc.h"
#include "fsutil.h"
#include "wirez.h"
#include "xmalloc.h"

#define DEFAULT_HOOK_TIMEOUT 3600
#define DEFAULT_VERIFY_EVERY 86400 /* a day */
#define DEFAULT_MAX_AGE (25 * 3600)

struct cctx {
	const char *file;
	char *dir;
	char *err;
	size_t errlen;
};

const char *
role_name(enum role r)
{
	switch (r) {
	case ROLE_EXPORTER:
		return "exporter";
	case ROLE_PULLBACKUP:
		return "pullbackup";
	case ROLE_IMPORTER:
		return "importer";
	}
	return "?";
}

static int __attribute__((format(printf, 3, 4)))
cerr(struct cctx *c, const struct doc *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, c->errlen, "%s:%d:%d: ", c->file,
	    at ? at->line : 1, at ? at->col : 1);
	if (n < 0 || (size_t)n >= c->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Unknown keys are errors, and so are repeated ones. */
static int
check_keys(struct cctx *c, const struct doc *map, const char *where,
    const char *const *known)
{
	size_t i, j, k;
	char list[512];

	for (i = 0; i + 1 < map->n; i += 2) {
		const struct doc *key = map->kids[i];
		if (key->type != DOC_SCALAR)
			return cerr(c, key, "keys must be plain names");
		for (j = 0; known[j] != NULL; j++)
			if (strcmp(known[j], key->str) == 0)
				break;
		if (known[j] == NULL) {
			list[0] = '\0';
			for (k = 0; known[k] != NULL; k++) {
				strncat(list, k ? ", " : "",
				    sizeof list - strlen(list) - 1);
				strncat(list, known[k],
				    sizeof list - strlen(list) - 1);
			}
			return cerr(c, key,
			    "unknown key \"%s\" in %s (known keys: %s)",
			    key->str, where, list);
		}
		for (j = 0; j < i; j += 2) {
			if (strcmp(map->kids[j]->str, key->str) == 0)
				return cerr(c, key, "key \"%s\" given twice",
				    key->str);
		}
	}
	return 0;
}

static const struct doc *
need(struct cctx *c, const struct doc *map, const char *key)
{
	const struct doc *v = doc_get(map, key);

	if (v == NULL)
		cerr(c, map, "missing required key \"%s\"", key);
	return v;
}

static int
get_str(struct cctx *c, const struct doc *v, const char *key, char **out)
{
	if (v->type != DOC_SCALAR || v->len == 0)
		return cerr(c, v, "\"%s\" must be a non-empty string, not %s",
		    key,
		    v->type == DOC_SCALAR ? "an empty one" :
					    doc_type_name(v->type));
	*out = xstrdup(v->str);
	return 0;
}

static char *
abs_path(struct cctx *c, const char *p)
{
	if (p[0] == '/')
		return xstrdup(p);
	return xasprintf("%s/%s", c->dir, p);
}

static int
get_path(struct cctx *c, const struct doc *v, const char *key, char **out)
{
	char *s = NULL;

	if (get_str(c, v, key, &s) != 0)
		return -1;
	*out = abs_path(c, s);
	free(s);
	return 0;
}

int
url_split(const char *url, char **host, int *port)
{
	struct evhttp_uri *u;
	const char *path, *h;
	int rc = -1;

	if ((u = evhttp_uri_parse(url)) == NULL)
		return -1;
	path = evhttp_uri_get_path(u);
	h = evhttp_uri_get_host(u);
	if (evhttp_uri_get_scheme(u) != NULL &&
	    (strcmp(evhttp_uri_get_scheme(u), "http") == 0 ||
		strcmp(evhttp_uri_get_scheme(u), "https") == 0) &&
	    h != NULL && *h != '\0' && evhttp_uri_get_port(u) > 0 &&
	    evhttp_uri_get_query(u) == NULL &&
	    evhttp_uri_get_userinfo(u) == NULL &&
	    evhttp_uri_get_fragment(u) == NULL &&
	    (path == NULL || *path == '\0' || strcmp(path, "/") == 0)) {
		/* An IPv6 literal comes in brackets, which a resolver
		 * does not take. */
		if (host != NULL && h[0] == '[' && h[strlen(h) - 1] == ']')
			*host = xstrndup(h + 1, strlen(h) - 2);
		else if (host != NULL)
			*host = xstrdup(h);
		if (port != NULL)
			*port = evhttp_uri_get_port(u);
		rc = 0;
	}
	evhttp_uri_free(u);
	return rc;
}

int
url_is_tls(const char *url)
{
	return strncmp(url, "https://", 8) == 0;
}

char *
url_make_scheme(int tls, const char *host, int port)
{
	const char *scheme = tls ? "https" : "http";

	if (strchr(host, ':') != NULL)
		return xasprintf("%s://[%s]:%d", scheme, host, port);
	return xasprintf("%s://%s:%d", scheme, host, port);
}

char *
url_make(const char *host, int port)
{
	return url_make_scheme(0, host, port);
}

int
tls_pin_canon(const char *s, char out[72])
{
	size_t n = 0;

	if (strncasecmp(s, "sha256:", 7) != 0)
		return -1;
	strcpy(out, "sha256:");
	for (s += 7; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 64)
			return -1;
		out[7 + n++] = (char)tolower((unsigned char)*s);
	}
	out[7 + n] = '\0';
	return n == 64 ? 0 : -1;
}

static int
get_url(struct cctx *c, const struct doc *v, const char *key, char **out)
{
	char *s = NULL, *host;
	int port;

	if (get_str(c, v, key, &s) != 0)
		return -1;
	if (url_split(s, &host, &port) != 0) {
		free(s);
		return cerr(c, v,
		    "\"%s\" must be a URL like https://HOST:PORT or "
		    "http://HOST:PORT (no path)",
		    key);
	}
	*out = url_make_scheme(url_is_tls(s), host, port);
	free(host);
	free(s);
	return 0;
}

static int
get_urls(struct cctx *c, const struct doc *v, const char *key, char ***out,
    size_t *n)
{
	size_t i;

	if (v->type != DOC_SEQ)
		return cerr(c, v, "\"%s\" must be a list of URLs", key);
	*out = xcalloc(v->n + 1, sizeof **out);
	for (i = 0; i < v->n; i++) {
		if (get_url(c, v->kids[i], key, &(*out)[i]) != 0)
			return -1;
		*n = i + 1;
	}
	return 0;
}

static int
get_command(struct cctx *c, const struct doc *v, const char *key, char ***out)
{
	char **argv;
	size_t i;

	if (v->type == DOC_SCALAR) {
		if (v->len == 0)
			return cerr(c, v, "\"%s\" must not be empty", key);
		argv = xcalloc(2, sizeof *argv);
		argv[0] = strchr(v->str, '/') ? abs_path(c, v->str) :
						xstrdup(v->str);
		*out = argv;
		return 0;
	}
	if (v->type != DOC_SEQ || v->n == 0)
		return cerr(c, v, "\"%s\" must be a list: [PROGRAM, ARG...]",
		    key);
	argv = xcalloc(v->n + 1, sizeof *argv);
	*out = argv;
	for (i = 0; i < v->n; i++) {
		if (v->kids[i]->type != DOC_SCALAR)
			return cerr(c, v->kids[i],
			    "\"%s\": each word must be a string", key);
		argv[i] = xstrdup(v->kids[i]->str);
	}
	if (argv[0][0] == '\0')
		return cerr(c, v, "\"%s\": the program is empty", key);
	if (argv[0][0] != '/' && strchr(argv[0], '/') != NULL) {
		char *a = abs_path(c, argv[0]);
		free(argv[0]);
		argv[0] = a;
	}
	return 0;
}

static int
get_age(struct cctx *c, const struct doc *v, const char *key, int64_t *out)
{
	if (v->type != DOC_SCALAR || age_parse(v->str, out) != 0)
		return cerr(c, v, "\"%s\" must be an age like 90m, 12h, 3D, 2W",
		    key);
	return 0;
}

/* A rate like 20Mbit, 2.5MB or 512KiB (per second; "/s" may follow):
 * bytes per second, at least CONFIG_MIN_RATE. */
int
config_rate_parse(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double bytes;
	} units[] = { { "bit", 1 / 8.0 }, { "Kbit", 1e3 / 8 },
		{ "Mbit", 1e6 / 8 }, { "Gbit", 1e9 / 8 }, { "B", 1 },
		{ "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 }, { "KiB", 1024.0 },
		{ "MiB", 1048576.0 }, { "GiB", 1073741824.0 } };
	char *end;
	double v;
	size_t i, n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return -1;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		n = strlen(units[i].unit);
		if (strncmp(end, units[i].unit, n) == 0 &&
		    (end[n] == '\0' || strcmp(end + n, "/s") == 0))
			break;
	}
	if (i == sizeof units / sizeof units[0])
		return -1;
	v *= units[i].bytes;
	if (!(v >= CONFIG_MIN_RATE && v <= 1e15))
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int
get_rate(struct cctx *c, const struct doc *v, const char *key, int64_t *out)
{
	if (v->type != DOC_SCALAR || config_rate_parse(v->str, out) != 0)
		return cerr(c, v,
		    "\"%s\" must be a rate like 20Mbit, 2.5MB or 512KiB (per "
		    "second, at least 4KiB)",
		    key);
	return 0;
}

static int
get_uint(struct cctx *c, const struct doc *v, const char *key, int64_t min,
    int64_t max, int64_t *out)
{
	if (doc_scalar_i64(v, out) != 0 || !v->plain || *out < min ||
	    *out > max)
		return cerr(c, v,
		    "\"%s\" must be a whole number from %lld to %lld", key,
		    (long long)min, (long long)max);
	return 0;
}

static int
get_listen(struct cctx *c, struct config *cf, const struct doc *v)
{
	char *s = NULL, *colon, *end;
	long port;

	if (get_str(c, v, "listen", &s) != 0)
		return -1;
	colon = strrchr(s, ':');
	if (colon == NULL || colon == s) {
		free(s);
		return cerr(c, v,
		    "\"listen\" must be HOST:PORT, like 127.0.0.1:7401");
	}
	*colon = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port < 1 ||
	    port > 65535) {
		free(s);
		return cerr(c, v, "\"listen\": bad port (1 to 65535)");
	}
	if (s[0] == '[' && colon[-1] == ']') {
		colon[-1] = '\0';
		cf->listen_host = xstrdup(s + 1);
	} else
		cf->listen_host = xstrdup(s);
	cf->listen_port = (int)port;
	free(s);
	return 0;
}

int
source_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	}
	return 1;
}

/* A secret from key's file: one line of 16 characters or more. */
static int
read_secret(struct cctx *c, struct config *cf, const struct doc *at,
    const char *key, const char *path, char **out, size_t *outlen)
{
	struct stat st;
	char *buf;
	size_t len;

	/* Whoever reads the secret can do anything on every link. */
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0 &&
	    cf->warning == NULL)
		cf->warning = xasprintf("%s %s is readable by others "
					"(mode %04o): chmod 600 it",
		    key, path, (unsigned)(st.st_mode & 07777));

	if (fs_read_file(path, 4096, &buf, &len) != 0)
		return cerr(c, at, "%s %s: %s", key, path,
		    errno == EFBIG ? "larger than 4096 bytes" :
				     strerror(errno));
	while (len > 0 &&
	    (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
		buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\n', len) != NULL ||
	    memchr(buf, '\0', len) != NULL) {
		free(buf);
		return cerr(c, at,
		    "%s %s must hold one non-empty line: a secret", key, path);
	}
	if (len < 16) {
		free(buf);
		return cerr(c, at,
		    "%s %s: the secret is too short (at least 16 "
		    "characters; try: openssl rand -hex 32)",
		    key, path);
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int
read_token(struct cctx *c, struct config *cf, const struct doc *at,
    const struct doc *read_at)
{
	if (read_secret(c, cf, at, "token_file", cf->token_file, &cf->token,
		&cf->token_len) != 0)
		return -1;
	if (read_at == NULL)
		return 0;
	if (get_path(c, read_at, "read_token_file", &cf->read_token_file) !=
		0 ||
	    read_secret(c, cf, read_at, "read_token_file", cf->read_token_file,
		&cf->read_token, &cf->read_token_len) != 0)
		return -1;
	if (cf->read_token_len == cf->token_len &&
	    memcmp(cf->read_token, cf->token, cf->token_len) == 0)
		return cerr(c, read_at,
		    "read_token_file %s holds the secret of token_file: the "
		    "read-only credential must be another secret",
		    cf->read_token_file);
	return 0;
}

static int
read_promote_token(struct cctx *c, struct config *cf, const struct doc *at)
{
	if (at == NULL)
		return 0;
	if (get_path(c, at, "promote_token_file", &cf->promote_token_file) !=
		0 ||
	    read_secret(c, cf, at, "promote_token_file", cf->promote_token_file,
		&cf->promote_token, &cf->promote_token_len) != 0)
		return -1;
	if ((cf->promote_token_len == cf->token_len &&
		memcmp(cf->promote_token, cf->token, cf->token_len) == 0) ||
	    (cf->read_token != NULL &&
		cf->promote_token_len == cf->read_token_len &&
		memcmp(cf->promote_token, cf->read_token, cf->read_token_len) ==
		    0))
		return cerr(c, at,
		    "promote_token_file %s holds the secret of another token "
		    "file: promotion needs a secret of its own",
		    cf->promote_token_file);
	return 0;
}

/* A key of map m that takes one of two words: *out 0 for the first
 * (and when the key is absent), 1 for the second. */
static int
get_either(struct cctx *c, const struct doc *m, const char *key, const char *no,
    const char *yes, int *out)
{
	const struct doc *x = doc_get(m, key);

	if (x == NULL)
		return 0;
	if (x->type == DOC_SCALAR && strcmp(x->str, yes) == 0)
		*out = 1;
	else if (x->type != DOC_SCALAR || strcmp(x->str, no) != 0)
		return cerr(c, x, "\"%s\" must be %s or %s", key, no, yes);
	return 0;
}

static int
parse_sources(struct cctx *c, struct config *cf, const struct doc *v)
{
	static const char *const pb_keys[] = { "exporter", "importers",
		"retention", "bandwidth_limit", "compress",
		"increment_compression", NULL };
	static const char *const im_keys[] = { "pullbackup", "import_command",
		"promote_command", "hook_timeout", "verify_every",
		"special_bits", "bandwidth_limit", "compress", NULL };
	static const char *const ret_keys[] = { "older_than", "keep_last",
		NULL };
	const struct doc *s, *x, *r;
	struct source_conf *sc;
	size_t i;

	if (v->type != DOC_MAP || v->n == 0)
		return cerr(c, v,
		    "\"sources\" must map each source name to its settings");
	cf->sources = xcalloc(v->n / 2, sizeof *cf->sources);
	for (i = 0; i + 1 < v->n; i += 2) {
		const struct doc *key = v->kids[i];
		s = v->kids[i + 1];
		sc = &cf->sources[cf->nsources++];
		sc->hook_timeout = DEFAULT_HOOK_TIMEOUT;
		sc->verify_every = DEFAULT_VERIFY_EVERY;
		sc->older_than = -1;
		if ((x = doc_get(s, "bandwidth_limit")) != NULL &&
		    get_rate(c, x, "bandwidth_limit", &sc->bandwidth_limit))
			return -1;
		/* compress: auto | zstd | off (the fetching side's) */
		if ((x = doc_get(s, "compress")) != NULL &&
		    (x->type != DOC_SCALAR ||
			wirez_mode_parse(x->str, &sc->compress) != 0))
			return cerr(c, x,
			    "\"compress\" must be auto, zstd or off");
		if (key->type != DOC_SCALAR || !source_name_valid(key->str))
			return cerr(c, key,
			    "bad source name: use letters, digits, '.', '_', "
			    "'-' (at most 64)");
		for (size_t j = 0; j < i; j += 2)
			if (strcmp(v->kids[j]->str, key->str) == 0)
				return cerr(c, key, "source \"%s\" given twice",
				    key->str);
		sc->name = xstrdup(key->str);
		if (s->type != DOC_MAP)
			return cerr(c, s, "source \"%s\" must be a mapping",
			    sc->name);
		if (cf->role == ROLE_PULLBACKUP) {
			if (check_keys(c, s, "a source", pb_keys) != 0)
				return -1;
			if ((x = need(c, s, "exporter")) == NULL ||
			    get_url(c, x, "exporter", &sc->exporter) != 0)
				return -1;
			if ((x = doc_get(s, "importers")) != NULL &&
			    get_urls(c, x, "importers", &sc->importers,
				&sc->nimporters) != 0)
				return -1;
			if (get_either(c, s, "increment_compression", "gzip",
				"zstd", &sc->zstd_increments) != 0)
				return -1;
			if ((r = doc_get(s, "retention")) != NULL) {
				if (r->type != DOC_MAP)
					return cerr(c, r,
					    "\"retention\" must be a mapping "
					    "like {keep_last: 3}");
				if (check_keys(c, r, "retention", ret_keys))
					return -1;
				if ((x = doc_get(r, "older_than")) != NULL &&
				    get_age(c, x, "older_than",
					&sc->older_than) != 0)
					return -1;
				if ((x = doc_get(r, "keep_last")) != NULL &&
				    get_uint(c, x, "keep_last", 1, 1000000,
					&sc->keep_last) != 0)
					return -1;
			}
		} else {
			if (check_keys(c, s, "a source", im_keys) != 0)
				return -1;
			if ((x = need(c, s, "pullbackup")) == NULL ||
			    get_url(c, x, "pullbackup", &sc->pullbackup) != 0)
				return -1;
			if ((x = need(c, s, "import_command")) == NULL ||
			    get_command(c, x, "import_command",
				&sc->import_command) != 0)
				return -1;
			if ((x = doc_get(s, "promote_command")) != NULL &&
			    get_command(c, x, "promote_command",
				&sc->promote_command) != 0)
				return -1;
			x = doc_get(s, "hook_timeout");
			if (x != NULL &&
			    get_age(c, x, "hook_timeout", &sc->hook_timeout))
				return -1;
			x = doc_get(s, "verify_every");
			if (x != NULL &&
			    get_age(c, x, "verify_every", &sc->verify_every))
				return -1;
			/* setuid, setgid, sticky */
			if (get_either(c, s, "special_bits", "drop", "keep",
				&sc->special_bits) != 0)
				return -1;
		}
	}
	return 0;
}

/* pages: public | secret | off */
static int
get_pages(struct cctx *c, const struct doc *v, struct config *cf)
{
	if (v->type == DOC_SCALAR && strcmp(v->str, "public") == 0)
		cf->pages = PAGES_PUBLIC;
	else if (v->type == DOC_SCALAR && strcmp(v->str, "secret") == 0)
		cf->pages = PAGES_SECRET;
	else if (v->type == DOC_SCALAR && strcmp(v->str, "off") == 0)
		cf->pages = PAGES_OFF;
	else
		return cerr(c, v,
		    "\"pages\" must be public, secret or off, not %s",
		    v->type == DOC_SCALAR ? v->str : doc_type_name(v->type));
	return 0;
}

static int
add_pin(struct cctx *c, const struct doc *v, struct tls_conf *t,
    const char *peer)
{
	char canon[72];

	if (v->type != DOC_SCALAR || tls_pin_canon(v->str, canon) != 0)
		return cerr(c, v,
		    "\"pins\": not a fingerprint like sha256: and 64 hex "
		    "digits (the tls-init verb prints a host's)");
	t->pins = xreallocarray(t->pins, t->npins + 2, sizeof *t->pins);
	t->pin_peers = xreallocarray(t->pin_peers, t->npins + 2,
	    sizeof *t->pin_peers);
	t->pins[t->npins] = xstrdup(canon);
	t->pin_peers[t->npins] = peer != NULL ? xstrdup(peer) : NULL;
	t->npins++;
	t->pins[t->npins] = NULL;
	t->pin_peers[t->npins] = NULL;
	return 0;
}

/* pins: [FINGERPRINT...], pinned for any peer; or {PEER: FINGERPRINT or
 * [FINGERPRINT...]}, each for that peer only: PEER a URL (https://H:P) or
 * a host name or address (any port). */
static int
get_pins(struct cctx *c, const struct doc *x, struct config *cf)
{
	struct tls_conf *t = cf->tls;
	const struct doc *k, *v;
	char *host, *peer;
	size_t i, j;
	int port, rc = 0;

	if (x->type == DOC_SEQ) {
		for (i = 0; i < x->n; i++)
			if (add_pin(c, x->kids[i], t, NULL) != 0)
				return -1;
		if (x->n > 0 && cf->warning == NULL)
			cf->warning = xstrdup(
			    "tls: pins is a list: this daemon cannot tell its "
			    "peers apart, and lets each do what any peer may; "
			    "write it as a map of each peer's URL to its "
			    "fingerprint (docs/operations.md, \"TLS\")");
		return 0;
	}
	if (x->type != DOC_MAP)
		return cerr(c, x,
		    "\"pins\" must be a mapping of each peer (its URL or "
		    "host) to its certificate's fingerprint (sha256:3f9a..., "
		    "the tls-init verb prints a host's), or a list of "
		    "fingerprints");
	for (i = 0; i + 1 < x->n && rc == 0; i += 2) {
		k = x->kids[i];
		v = x->kids[i + 1];
		if (k->type != DOC_SCALAR)
			return cerr(c, k,
			    "\"pins\": a peer must be a URL or a host");
		if (strstr(k->str, "://") != NULL) {
			if (!url_is_tls(k->str) ||
			    url_split(k->str, &host, &port) != 0)
				return cerr(c, k,
				    "\"pins\": %s is not a URL like "
				    "https://HOST:PORT",
				    k->str);
			peer = url_make_scheme(1, host, port);
			free(host);
		} else if (k->str[0] == '\0' || strpbrk(k->str, "/ \t") != NULL)
			return cerr(c, k,
			    "\"pins\": %s is neither a peer's URL nor its "
			    "host",
			    k->str);
		else {
			peer = xstrdup(k->str);
			for (j = 0; peer[j] != '\0'; j++)
				peer[j] = (char)tolower((unsigned char)peer[j]);
		}
		if (v->type == DOC_SEQ) {
			for (j = 0; j < v->n && rc == 0; j++)
				rc = add_pin(c, v->kids[j], t, peer);
		} else
			rc = add_pin(c, v, t, peer);
		free(peer);
	}
	return rc;
}

/* tls: {certificate: FILE, key: FILE, ca: FILE, pins: ...}, or off */
static int
get_tls(struct cctx *c, const struct doc *v, struct config *cf)
{
	static const char *const keys[] = { "certificate", "key", "ca", "pins",
		NULL };
	const struct doc *x;
	struct tls_conf *t;

	if (v->type == DOC_SCALAR && strcmp(v->str, "off") == 0) {
		cf->tls_off = 1;
		return 0;
	}
	if (v->type != DOC_MAP)
		return cerr(c, v,
		    "\"tls\" must be a mapping like {certificate: FILE, key: "
		    "FILE, pins: {PEER: sha256:...}}, or off");
	if (check_keys(c, v, "tls", keys) != 0)
		return -1;
	t = cf->tls = xcalloc(1, sizeof *t);
	if ((x = need(c, v, "certificate")) == NULL ||
	    get_path(c, x, "certificate", &t->certificate) != 0)
		return -1;
	if ((x = need(c, v, "key")) == NULL ||
	    get_path(c, x, "key", &t->key) != 0)
		return -1;
	if ((x = doc_get(v, "ca")) != NULL && get_path(c, x, "ca", &t->ca) != 0)
		return -1;
	if ((x = doc_get(v, "pins")) != NULL && get_pins(c, x, cf) != 0)
		return -1;
	if (t->ca == NULL && t->npins == 0)
		return cerr(c, v,
		    "\"tls\" needs a way to know the peers: \"ca\" (the "
		    "certificate of the CA that signs theirs) or \"pins\" "
		    "(their certificates' fingerprints), or both");
	return 0;
}

/* Only this host reaches it: a loopback address, or localhost. */
static int
host_is_loopback(const char *h)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcasecmp(h, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

static int
url_is_loopback(const char *url)
{
	char *host;
	int port, lo;

	if (url_split(url, &host, &port) != 0)
		return 0;
	lo = host_is_loopback(host);
	free(host);
	return lo;
}

/* Every https:// URL needs tls:, which says how to know the peer; plain
 * HTTP to or from another host needs tls: off. */
static int
check_tls_urls(struct cctx *c, const struct doc *root, struct config *cf)
{
	const char *bad = NULL;
	size_t i, j;

	if (cf->tls != NULL)
		return 0;
	for (i = 0; i < cf->nnotify && bad == NULL; i++)
		if (url_is_tls(cf->notify[i]))
			bad = cf->notify[i];
	for (i = 0; i < cf->nsources && bad == NULL; i++) {
		const struct source_conf *sc = &cf->sources[i];
		if (sc->exporter != NULL && url_is_tls(sc->exporter))
			bad = sc->exporter;
		if (sc->pullbackup != NULL && url_is_tls(sc->pullbackup))
			bad = sc->pullbackup;
		for (j = 0; j < sc->nimporters && bad == NULL; j++)
			if (url_is_tls(sc->importers[j]))
				bad = sc->importers[j];
	}
	if (bad != NULL)
		return cerr(c, root,
		    "%s is https: the configuration needs \"tls\" "
		    "(certificate, key, and ca or pins)",
		    bad);
	if (cf->tls_off)
		return 0;
	/* Plain HTTP beyond this host only when the operator says so. */
	if (!host_is_loopback(cf->listen_host))
		bad = cf->listen_host;
	for (i = 0; i < cf->nnotify && bad == NULL; i++)
		if (!url_is_loopback(cf->notify[i]))
			bad = cf->notify[i];
	for (i = 0; i < cf->nsources && bad == NULL; i++) {
		const struct source_conf *sc = &cf->sources[i];
		if (sc->exporter != NULL && !url_is_loopback(sc->exporter))
			bad = sc->exporter;
		if (sc->pullbackup != NULL && !url_is_loopback(sc->pullbackup))
			bad = sc->pullbackup;
		for (j = 0; j < sc->nimporters && bad == NULL; j++)
			if (!url_is_loopback(sc->importers[j]))
				bad = sc->importers[j];
	}
	if (bad != NULL)
		return cerr(c, root,
		    "no \"tls\", and %s is beyond this host: every link would "
		    "be plain HTTP, data and secret in clear; set tls: "
		    "{certificate, key, pins} (the tls-init verb makes them), "
		    "or tls: off on a network you trust",
		    bad);
	return 0;
}

/* true or false, nothing else. */
static int
get_flag(struct cctx *c, const struct doc *v, const char *key, int *out)
{
	if (v->type == DOC_SCALAR && strcmp(v->str, "true") == 0)
		*out = 1;
	else if (v->type == DOC_SCALAR && strcmp(v->str, "false") == 0)
		*out = 0;
	else
		return cerr(c, v, "\"%s\" must be true or false", key);
	return 0;
}

static int
config_parse(struct cctx *c, struct config *cf, const struct doc *root)
{
	static const char *const ex_keys[] = { "source", "listen", "state_dir",
		"export_command", "schedule", "notify", "token_file",
		"read_token_file", "hook_timeout", "max_age", "pages", "tls",
		"max_connections", "max_connections_per_peer",
		"keep_last_export", NULL };
	static const char *const pb_keys[] = { "listen", "archive_dir",
		"token_file", "read_token_file", "sources", "max_age", "pages",
		"tls", "max_connections", "max_connections_per_peer", NULL };
	static const char *const im_keys[] = { "listen", "state_dir",
		"token_file", "read_token_file", "promote_token_file",
		"sources", "max_age", "pages", "tls", "max_connections",
		"max_connections_per_peer", NULL };
	const struct doc *v, *tok;
	char why[256];

	if (root->type != DOC_MAP)
		return cerr(c, root,
		    "the configuration must be a mapping of keys to values");
	if (check_keys(c, root, "the configuration",
		cf->role == ROLE_EXPORTER       ? ex_keys :
		    cf->role == ROLE_PULLBACKUP ? pb_keys :
						  im_keys) != 0)
		return -1;
	if ((v = need(c, root, "listen")) == NULL || get_listen(c, cf, v))
		return -1;
	if ((tok = need(c, root, "token_file")) == NULL ||
	    get_path(c, tok, "token_file", &cf->token_file) != 0)
		return -1;
	cf->hook_timeout = DEFAULT_HOOK_TIMEOUT;
	cf->max_age = DEFAULT_MAX_AGE;
	if ((v = doc_get(root, "max_age")) != NULL &&
	    get_age(c, v, "max_age", &cf->max_age) != 0)
		return -1;
	cf->pages = PAGES_PUBLIC;
	if ((v = doc_get(root, "pages")) != NULL && get_pages(c, v, cf) != 0)
		return -1;
	if ((v = doc_get(root, "tls")) != NULL && get_tls(c, v, cf) != 0)
		return -1;
	cf->max_conns = GATE_DEFAULT_MAX_CONNS;
	cf->max_peer_conns = GATE_DEFAULT_MAX_PEER_CONNS;
	if ((v = doc_get(root, "max_connections")) != NULL &&
	    get_uint(c, v, "max_connections", 1, 1000000, &cf->max_conns) != 0)
		return -1;
	if ((v = doc_get(root, "max_connections_per_peer")) != NULL &&
	    get_uint(c, v, "max_connections_per_peer", 1, 1000000,
		&cf->max_peer_conns) != 0)
		return -1;
	switch (cf->role) {
	case ROLE_EXPORTER:
		if ((v = need(c, root, "source")) == NULL ||
		    get_str(c, v, "source", &cf->source) != 0)
			return -1;
		if (!source_name_valid(cf->source))
			return cerr(c, v,
			    "bad source name: use letters, digits, '.', '_', "
			    "'-' (at most 64)");
		if ((v = need(c, root, "state_dir")) == NULL ||
		    get_path(c, v, "state_dir", &cf->state_dir) != 0)
			return -1;
		v = need(c, root, "export_command");
		if (v == NULL ||
		    get_command(c, v, "export_command", &cf->export_command))
			return -1;
		if ((v = doc_get(root, "schedule")) != NULL) {
			if (get_str(c, v, "schedule", &cf->schedule_text))
				return -1;
		} else
			cf->schedule_text = xstrdup("off");
		if (schedule_parse(cf->schedule_text, &cf->schedule, why,
			sizeof why) != 0)
			return cerr(c, v, "\"schedule\": %s", why);
		if ((v = need(c, root, "notify")) == NULL ||
		    get_urls(c, v, "notify", &cf->notify, &cf->nnotify) != 0)
			return -1;
		if (cf->nnotify == 0)
			return cerr(c, v,
			    "\"notify\" must name at least one pull-backup");
		if ((v = doc_get(root, "hook_timeout")) != NULL &&
		    get_age(c, v, "hook_timeout", &cf->hook_timeout) != 0)
			return -1;
		if ((v = doc_get(root, "keep_last_export")) != NULL &&
		    get_flag(c, v, "keep_last_export", &cf->keep_last_export))
			return -1;
		break;
	case ROLE_PULLBACKUP:
		if ((v = need(c, root, "archive_dir")) == NULL ||
		    get_path(c, v, "archive_dir", &cf->archive_dir) != 0)
			return -1;
		if ((v = need(c, root, "sources")) == NULL ||
		    parse_sources(c, cf, v) != 0)
			return -1;
		break;
	case ROLE_IMPORTER:
		if ((v = need(c, root, "state_dir")) == NULL ||
		    get_path(c, v, "state_dir", &cf->state_dir) != 0)
			return -1;
		if ((v = need(c, root, "sources")) == NULL ||
		    parse_sources(c, cf, v) != 0)
			return -1;
		break;
	}
	if (read_token(c, cf, tok, doc_get(root, "read_token_file")) != 0)
		return -1;
	return read_promote_token(c, cf, doc_get(root, "promote_token_file"));
}

int
config_load(const char *path, enum role role, struct config **out, char *err,
    size_t errlen)
{
	struct cctx c;
	struct config *cf;
	struct doc *root = NULL;
	char *buf, *slash, inner[512], real[PATH_MAX];
	size_t len;
	int rc;

	*out = NULL;
	if (fs_read_file(path, 1 << 20, &buf, &len) != 0) {
		snprintf(err, errlen, "%s: cannot read the configuration: %s",
		    path,
		    errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return -1;
	}
	memset(&c, 0, sizeof c);
	c.file = path;
	c.err = err;
	c.errlen = errlen;
	if (realpath(path, real) == NULL)
		snprintf(real, sizeof real, "%s", path);
	c.dir = xstrdup(real);
	if ((slash = strrchr(c.dir, '/')) != NULL)
		*(slash == c.dir ? slash + 1 : slash) = '\0';
	else
		strcpy(c.dir, ".");
	if (doc_parse(buf, len, &root, inner, sizeof inner) != 0) {
		snprintf(err, errlen, "%s:%s", path, inner);
		free(buf);
		free(c.dir);
		return -1;
	}
	free(buf);
	cf = xcalloc(1, sizeof *cf);
	cf->role = role;
	cf->path = xstrdup(path);
	rc = config_parse(&c, cf, root);
	if (rc == 0)
		rc = check_tls_urls(&c, root, cf);
	doc_free(root);
	free(c.dir);
	if (rc != 0) {
		config_free(cf);
		return -1;
	}
	*out = cf;
	return 0;
}

static void
strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void
config_free(struct config *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	for (i = 0; i < cf->nsources; i++) {
		struct source_conf *sc = &cf->sources[i];
		free(sc->name);
		free(sc->exporter);
		strv_free(sc->importers);
		free(sc->pullbackup);
		strv_free(sc->import_command);
		strv_free(sc->promote_command);
	}
	free(cf->sources);
	free(cf->path);
	free(cf->listen_host);
	free(cf->state_dir);
	free(cf->archive_dir);
	free(cf->token_file);
	free(cf->read_token_file);
	free(cf->promote_token_file);
	if (cf->promote_token != NULL)
		explicit_bzero(cf->promote_token, cf->promote_token_len);
	free(cf->promote_token);
	if (cf->read_token != NULL)
		explicit_bzero(cf->read_token, cf->read_token_len);
	free(cf->read_token);
	free(cf->warning);
	if (cf->tls != NULL) {
		free(cf->tls->certificate);
		free(cf->tls->key);
		free(cf->tls->ca);
		strv_free(cf->tls->pins);
		for (i = 0; i < cf->tls->npins; i++)
			free(cf->tls->pin_peers[i]);
		free(cf->tls->pin_peers);
		free(cf->tls);
	}
	if (cf->token != NULL)
		memset(cf->token, 0, cf->token_len);
	free(cf->token);
	free(cf->source);
	strv_free(cf->export_command);
	free(cf->schedule_text);
	strv_free(cf->notify);
	free(cf);
}

const struct source_conf *
config_source(const struct config *cf, const char *name)
{
	size_t i;

	for (i = 0; i < cf->nsources; i++)
		if (strcmp(cf->sources[i].name, name) == 0)
			return &cf->sources[i];
	return NULL;
}

static int
str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

int
config_needs_restart(const struct config *a, const struct config *b, char *what,
    size_t len)
{
	const struct source_conf *sa, *sb;
	size_t i, k;

	if (str_differs(a->listen_host, b->listen_host) ||
	    a->listen_port != b->listen_port)
		snprintf(what, len, "listen");
	else if ((a->tls == NULL) != (b->tls == NULL))
		snprintf(what, len, "tls (on or off)");
	else if (str_differs(a->state_dir, b->state_dir))
		snprintf(what, len, "state_dir");
	else if (str_differs(a->archive_dir, b->archive_dir))
		snprintf(what, len, "archive_dir");
	else if (str_differs(a->source, b->source))
		snprintf(what, len, "source");
	else if (a->nsources != b->nsources)
		snprintf(what, len, "the list of sources");
	else {
		for (i = 0; i < a->nsources; i++) {
			sa = &a->sources[i];
			if ((sb = config_source(b, sa->name)) == NULL) {
				snprintf(what, len, "the list of sources");
				return 1;
			}
			if (sa->nimporters != sb->nimporters) {
				snprintf(what, len, "the importers of \"%s\"",
				    sa->name);
				return 1;
			}
			for (k = 0; k < sa->nimporters; k++)
				if (strcmp(sa->importers[k],
					sb->importers[k]) != 0) {
					snprintf(what, len,
					    "the importers of \"%s\"",
					    sa->name);
					return 1;
				}
		}
		return 0;
	}
	return 1;
}
