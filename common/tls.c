#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

/* How a context knows its peers: kept with it (ex_data), freed with it. */
struct peers {
	char **pins;
	char **pin_peer; /* the peer each pin is for, or NULL: any peer */
	size_t npins;
	int ca;
	/* This host's own: the verbs call their daemon with it, and must
	 * reach it to say it has expired. */
	char own[TLS_FP_SIZE];
};

/* What a connection's verification saw, kept with it (ex_data). */
struct seen {
	char fp[TLS_FP_SIZE];
	int ca_ok; /* the CA signed it */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *srv, *cli;
static int peers_idx = -1, fp_idx = -1;

static void
peers_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct peers *p = ptr;
	size_t i;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (p == NULL)
		return;
	for (i = 0; i < p->npins; i++) {
		free(p->pins[i]);
		free(p->pin_peer[i]);
	}
	free(p->pins);
	free(p->pin_peer);
	free(p);
}

static void
fp_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static void
indexes_init(void)
{
	peers_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, peers_free);
	fp_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, fp_free);
}

static void
indexes(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, indexes_init);
}

static void
fingerprint(X509 *x, char fp[TLS_FP_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	strcpy(fp, "sha256:");
	if (X509_digest(x, EVP_sha256(), md, &n) != 1)
		n = 0;
	for (i = 0; i < n && i < 32; i++)
		snprintf(fp + 7 + 2 * i, 3, "%02x", md[i]);
}

/* The OpenSSL errors queued, as one line. */
static void
ssl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t n = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0 && n + 2 < len) {
		if (n > 0)
			n += (size_t)snprintf(buf + n, len - n, "; ");
		ERR_error_string_n(e, buf + n, len - n);
		n = strlen(buf);
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "no detail from OpenSSL");
}

/* The address of the other end of ssl, for a log line. */
static void
ssl_peer(SSL *ssl, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";
	int fd = SSL_get_fd(ssl), port = 0;

	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/* Every certificate a peer shows comes here: taken when it is in its
 * validity period and pinned, or signed by the CA (for the name the
 * client asked for). */
static int
verify_peer(X509_STORE_CTX *x, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct peers *p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), peers_idx);
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	struct seen *seen;
	char fp[TLS_FP_SIZE], who[INET6_ADDRSTRLEN + 16];
	size_t i;
	int ok = 0, err = X509_V_ERR_CERT_REJECTED;

	(void)arg;
	if (leaf == NULL || p == NULL)
		return 0;
	fingerprint(leaf, fp);
	seen = xcalloc(1, sizeof *seen);
	memcpy(seen->fp, fp, sizeof fp);
	free(SSL_get_ex_data(ssl, fp_idx));
	SSL_set_ex_data(ssl, fp_idx, seen);
	if (strcmp(fp, p->own) == 0)
		return 1;
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
		err = X509_V_ERR_CERT_HAS_EXPIRED;
	else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
		err = X509_V_ERR_CERT_NOT_YET_VALID;
	else {
		for (i = 0; i < p->npins && !ok; i++)
			ok = strcmp(p->pins[i], fp) == 0;
		if (!ok && p->ca) {
			ok = seen->ca_ok = X509_verify_cert(x) == 1;
			err = X509_STORE_CTX_get_error(x);
		}
	}
	if (ok)
		return 1;
	X509_STORE_CTX_set_error(x, err);
	if (SSL_is_server(ssl)) {
		ssl_peer(ssl, who, sizeof who);
		log_warnx("refused a TLS connection from %s: its certificate "
			  "%s: %s",
		    who, fp,
		    err == X509_V_ERR_CERT_REJECTED ?
			(p->ca ? "neither pinned nor signed by the CA" :
				 "not pinned") :
			X509_verify_cert_error_string(err));
	}
	return 0;
}

static SSL_CTX *
ctx_new(const struct tls_conf *t, int server, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(
	    server ? TLS_server_method() : TLS_client_method());
	struct peers *p;
	char why[512];
	size_t i;

	if (ctx == NULL) {
		ssl_errors(why, sizeof why);
		snprintf(err, errlen, "TLS: %s", why);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->certificate) != 1) {
		ssl_errors(why, sizeof why);
		snprintf(err, errlen, "tls: certificate %s: %s", t->certificate,
		    why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		ssl_errors(why, sizeof why);
		snprintf(err, errlen, "tls: key %s: %s", t->key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen,
		    "tls: key %s is not the key of certificate %s", t->key,
		    t->certificate);
		goto fail;
	}
	if (t->ca != NULL &&
	    SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
		ssl_errors(why, sizeof why);
		snprintf(err, errlen, "tls: ca %s: %s", t->ca, why);
		goto fail;
	}
	p = xcalloc(1, sizeof *p);
	p->ca = t->ca != NULL;
	p->pins = xcalloc(t->npins + 1, sizeof *p->pins);
	p->pin_peer = xcalloc(t->npins + 1, sizeof *p->pin_peer);
	for (i = 0; i < t->npins; i++) {
		p->pins[i] = xstrdup(t->pins[i]);
		if (t->pin_peers[i] != NULL)
			p->pin_peer[i] = xstrdup(t->pin_peers[i]);
	}
	p->npins = t->npins;
	fingerprint(SSL_CTX_get0_certificate(ctx), p->own);
	SSL_CTX_set_ex_data(ctx, peers_idx, p);
	SSL_CTX_set_verify(ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_peer, NULL);
	if (server)
		SSL_CTX_set_session_id_context(ctx,
		    (const unsigned char *)"understudy", 10);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_setup(const struct config *cf, char *err, size_t errlen)
{
	SSL_CTX *s = NULL, *c = NULL, *olds, *oldc;

	indexes();
	if (cf->tls != NULL) {
		if ((s = ctx_new(cf->tls, 1, err, errlen)) == NULL)
			return -1;
		if ((c = ctx_new(cf->tls, 0, err, errlen)) == NULL) {
			SSL_CTX_free(s);
			return -1;
		}
	}
	pthread_mutex_lock(&mu);
	olds = srv;
	oldc = cli;
	srv = s;
	cli = c;
	pthread_mutex_unlock(&mu);
	/* Connections under way hold their own references. */
	SSL_CTX_free(olds);
	SSL_CTX_free(oldc);
	return 0;
}

int
tls_on(void)
{
	int on;

	pthread_mutex_lock(&mu);
	on = srv != NULL;
	pthread_mutex_unlock(&mu);
	return on;
}

static SSL *
ssl_new(int server)
{
	SSL *ssl = NULL;

	pthread_mutex_lock(&mu);
	if ((server ? srv : cli) != NULL)
		ssl = SSL_new(server ? srv : cli);
	pthread_mutex_unlock(&mu);
	return ssl;
}

struct bufferevent *
tls_server_bev(struct event_base *base)
{
	struct bufferevent *bev;
	SSL *ssl = ssl_new(1);

	/* Never a plain connection instead: libevent would make one from a
	 * NULL bufferevent. */
	if (ssl == NULL)
		fatalx("TLS: cannot make a connection's TLS state");
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("TLS: cannot make a TLS bufferevent");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *
tls_client_bev(struct event_base *base, const char *host)
{
	struct bufferevent *bev;
	struct in6_addr a6;
	struct in_addr a4;
	SSL *ssl = ssl_new(0);
	int ip;

	if (ssl == NULL)
		return NULL;
	ip = inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
	/* The name the CA must have signed for; a pin needs none. */
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else {
		SSL_set_tlsext_host_name(ssl, host);
		X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), host, 0);
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

int
tls_describe(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	const struct seen *seen;
	unsigned long e;
	const char *fp;
	long v;

	if (ssl == NULL)
		return 0;
	seen = SSL_get_ex_data(ssl, fp_idx);
	fp = seen != NULL ? seen->fp : NULL;
	v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK) {
		snprintf(buf, len,
		    "TLS: the peer's certificate %s was refused: %s",
		    fp != NULL ? fp : "(none)",
		    v == X509_V_ERR_CERT_REJECTED ?
			"not pinned (tls: pins) and not signed by the CA "
			"(tls: ca)" :
			X509_verify_cert_error_string(v));
		return 1;
	}
	if ((e = bufferevent_get_openssl_error(bev)) != 0) {
		char why[256], own[TLS_FP_SIZE];
		time_t na;
		/* The connection closed or broke: no word on certificates. */
		if (ERR_GET_LIB(e) == ERR_LIB_SYS) {
			snprintf(buf, len, "TLS: connection lost: %s",
			    strerror(ERR_GET_REASON(e)));
			return 1;
		}
		/* libevent queues SSL_get_error()'s code itself when the
		 * socket failed under OpenSSL ("lib(0)::reason(5)"). */
		if (e == SSL_ERROR_SYSCALL) {
			snprintf(buf, len,
			    "TLS: connection closed or refused by the peer or "
			    "the link");
			return 1;
		}
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
		if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			snprintf(buf, len,
			    "TLS: connection closed by the peer or the link");
			return 1;
		}
#endif
		ERR_error_string_n(e, why, sizeof why);
		if (tls_own(own, &na) != 0)
			strcpy(own, "?");
		/* An alert is the peer refusing this host's certificate, or
		 * the handshake. */
		snprintf(buf, len, "TLS: %s (this host's certificate is %s)",
		    why, own);
		return 1;
	}
	if (!SSL_is_init_finished(ssl)) {
		snprintf(buf, len,
		    "TLS: no handshake (is the link down? does the peer "
		    "listen with TLS?)");
		return 1;
	}
	return 0;
}

/* The peer's certificate as verified on bev, and how this end knows its
 * peers. */
static const struct seen *
conn_seen(struct bufferevent *bev, const struct peers **p)
{
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

	if (ssl == NULL)
		return NULL;
	*p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), peers_idx);
	return *p != NULL ? SSL_get_ex_data(ssl, fp_idx) : NULL;
}

const char *
tls_peer_fp(struct bufferevent *bev)
{
	const struct peers *p;
	const struct seen *s = conn_seen(bev, &p);

	return s != NULL ? s->fp : NULL;
}

int
tls_peer_self(struct bufferevent *bev)
{
	const struct peers *p;
	const struct seen *s = conn_seen(bev, &p);

	return s != NULL && strcmp(s->fp, p->own) == 0;
}

int
tls_peer_unnamed(struct bufferevent *bev)
{
	const struct peers *p;
	const struct seen *s = conn_seen(bev, &p);
	size_t i;

	for (i = 0; s != NULL && i < p->npins; i++)
		if (p->pin_peer[i] == NULL && strcmp(p->pins[i], s->fp) == 0)
			return 1;
	return 0;
}

int
tls_peer_is(struct bufferevent *bev, const char *url)
{
	const struct peers *p;
	const struct seen *s = conn_seen(bev, &p);
	X509 *x;
	char *host = NULL, *canon;
	size_t i;
	int port, ok = 0;

	if (s == NULL || url_split(url, &host, &port) != 0)
		return 0;
	canon = url_make_scheme(1, host, port);
	for (i = 0; i < p->npins && !ok; i++)
		ok = p->pin_peer[i] != NULL && strcmp(p->pins[i], s->fp) == 0 &&
		    (strcmp(p->pin_peer[i], canon) == 0 ||
			strcasecmp(p->pin_peer[i], host) == 0);
	if (!ok && s->ca_ok &&
	    (x = SSL_get0_peer_certificate(bufferevent_openssl_get_ssl(bev))) !=
		NULL)
		ok = X509_check_ip_asc(x, host, 0) == 1 ||
		    X509_check_host(x, host, 0, 0, NULL) == 1;
	free(canon);
	free(host);
	return ok;
}

int
tls_own(char fp[TLS_FP_SIZE], time_t *not_after)
{
	X509 *x = NULL;
	struct tm tm;
	int rc = -1;

	pthread_mutex_lock(&mu);
	if (srv != NULL && (x = SSL_CTX_get0_certificate(srv)) != NULL) {
		fingerprint(x, fp);
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
			*not_after = timegm(&tm);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

int
tls_file_info(const char *path, char fp[TLS_FP_SIZE], time_t *not_after,
    char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	struct tm tm;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		snprintf(err, errlen, "%s: not a PEM certificate", path);
		return -1;
	}
	fingerprint(x, fp);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		*not_after = timegm(&tm);
	X509_free(x);
	return 0;
}

/* Write data with PEM through fn into a new file (O_EXCL) of mode. */
static int
pem_out(const char *path, mode_t mode, int (*fn)(FILE *, void *), void *arg,
    char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ok = fn(f, arg) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		snprintf(err, errlen, "%s: cannot write it", path);
		return -1;
	}
	return 0;
}

static int
write_key(FILE *f, void *k)
{
	return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int
write_cert(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

int
tls_make_self_signed(const char *name, int days, const char *cert,
    const char *key, char fp[TLS_FP_SIZE], char *err, size_t errlen)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509_EXTENSION *ext = NULL;
	struct in6_addr a6;
	struct in_addr a4;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[300];
	int rc = -1, fd;

	if (k == NULL || x == NULL) {
		snprintf(err, errlen, "cannot make a key");
		goto out;
	}
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 ||
	    read(fd, serial, sizeof serial) != (ssize_t)sizeof serial) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "/dev/urandom: %s", strerror(errno));
		goto out;
	}
	close(fd);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	X509_set_version(x, 2);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -300);
	X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, n);
	if (inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1)
		snprintf(san, sizeof san, "IP:%s", name);
	else
		snprintf(san, sizeof san, "DNS:%s", name);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1 ||
	    X509_sign(x, k, EVP_sha256()) == 0) {
		snprintf(err, errlen, "cannot make a certificate for %s", name);
		goto out;
	}
	if (pem_out(key, 0600, write_key, k, err, errlen) != 0)
		goto out;
	if (pem_out(cert, 0644, write_cert, x, err, errlen) != 0) {
		unlink(key);
		goto out;
	}
	fingerprint(x, fp);
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}
