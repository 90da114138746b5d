/* TLS on every link (docs/operations.md, "TLS"): the daemon's listener and
 * every call to an https:// peer go through libevent's OpenSSL
 * bufferevents, TLS 1.2 or later, both ends showing a certificate.  A
 * peer's certificate is taken when its SHA-256 fingerprint is pinned
 * (tls: pins) or when the CA of tls: ca signs it for the name in the URL;
 * an expired one never.  The contexts are made from the configuration at
 * start and again at each reload; a connection keeps the one it began
 * with. */
#ifndef UNDERSTUDY_TLS_H
#define UNDERSTUDY_TLS_H

#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

struct config;
struct bufferevent;
struct event_base;

#define TLS_FP_SIZE 72 /* "sha256:" + 64 hex + NUL */

/* Load cf's certificate, key and trust (cf->tls NULL: TLS off).  On
 * failure the contexts in use stay as they were. */
int tls_setup(const struct config *cf, char *err, size_t errlen);
/* Whether tls_setup() loaded a certificate. */
int tls_on(void);
/* A bufferevent for an accepted connection, or for one to host:port. */
struct bufferevent *tls_server_bev(struct event_base *);
struct bufferevent *tls_client_bev(struct event_base *, const char *host);
/* Why a TLS connection failed, when it was TLS's doing (a certificate
 * refused, a handshake error): 1 with the reason in buf. */
int tls_describe(struct bufferevent *, char *buf, size_t len);
/* Who the certificate shown on an accepted connection's TLS bufferevent
 * proves the peer is: this host itself (the verbs), a peer pinned with no
 * name (any peer: the pins list), or the peer of url (a pin for that URL
 * or its host, or the CA's signature for its host).  And its
 * fingerprint, or NULL. */
int tls_peer_self(struct bufferevent *);
int tls_peer_unnamed(struct bufferevent *);
int tls_peer_is(struct bufferevent *, const char *url);
const char *tls_peer_fp(struct bufferevent *);
/* This host's certificate: its fingerprint and when it expires. */
int tls_own(char fp[TLS_FP_SIZE], time_t *not_after);
/* A certificate file's fingerprint and expiry. */
int tls_file_info(const char *path, char fp[TLS_FP_SIZE], time_t *not_after,
    char *err, size_t errlen);
/* A new key (EC P-256) and a certificate it signs for name (a host name
 * or an IP address), valid from now for days: the key file is written
 * 0600, neither file replaces one that exists. */
int tls_make_self_signed(const char *name, int days, const char *cert,
    const char *key, char fp[TLS_FP_SIZE], char *err, size_t errlen);

#endif
