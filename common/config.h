/* Configuration files (YAML): typed, validated, every error with
 * FILE:LINE:COL.  One struct for the three roles; each role reads its keys. */
#ifndef UNDERSTUDY_CONFIG_H
#define UNDERSTUDY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "timespec.h"
#include "wirez.h"

enum role {
	ROLE_EXPORTER,
	ROLE_PULLBACKUP,
	ROLE_IMPORTER
};

/* Who may read the HTML pages and /feed: anyone who reaches the port, only
 * with the secret (HTTP Basic authentication, any user name), or nobody. */
enum pages_mode {
	PAGES_PUBLIC,
	PAGES_SECRET,
	PAGES_OFF
};

struct source_conf {
	char *name;
	char *exporter;   /* pull-backup */
	char **importers; /* pull-backup */
	size_t nimporters;
	/* Retention: a version goes only when every rule set lets it go
	 * (keep_last is a floor).  older_than -1 and keep_last 0 are no
	 * rule: "older_than: 0s" means every version but the newest. */
	int64_t older_than;     /* seconds, or -1 */
	int64_t keep_last;      /* or 0 */
	char *pullbackup;       /* importer */
	char **import_command;  /* importer */
	char **promote_command; /* importer */
	int64_t hook_timeout;
	int64_t verify_every; /* importer: re-read the copy; 0: never */
	/* importer: keep setuid, setgid and sticky bits on disk */
	int special_bits;
	/* bytes per second each way on this source's transfers (the pull
	 * from its exporter; the import from its pull-backup), or 0 */
	int64_t bandwidth_limit;
	/* zstd on those transfers: auto (not to a loopback peer), zstd,
	 * off */
	enum wirez_mode compress;
	/* pull-backup: increments compressed with zstd, else gzip */
	int zstd_increments;
};

/* tls: this host's certificate and key, and how it knows its peers: the
 * CA that signs theirs (their name checked against the URL), pinned
 * certificate fingerprints, or both (common/tls.c). */
struct tls_conf {
	char *certificate;
	char *key;
	char *ca;    /* or NULL */
	char **pins; /* "sha256:<64 hex>", NULL-terminated, or NULL */
	/* pin_peers[i]: the peer pins[i] is for ("https://host:port" or a
	 * lower-case host), or NULL: any peer */
	char **pin_peers;
	size_t npins;
};

#define CONFIG_MIN_RATE 4096
/* "20Mbit", "2.5MB", "512KiB" (per second): bytes per second. */
int config_rate_parse(const char *, int64_t *bytes_per_sec);

struct config {
	enum role role;
	char *path;
	char *listen_host;
	int listen_port;
	char *state_dir;   /* exporter, importer */
	char *archive_dir; /* pull-backup */
	char *token_file;
	int64_t max_age; /* /health: newest data no older */
	enum pages_mode pages;
	char *token;
	size_t token_len;
	/* read_token_file: a second secret that may read /metrics, /v1/status
	 * and the pages, and nothing else; or NULL */
	char *read_token_file;
	char *read_token;
	size_t read_token_len;
	/* importer: promote_token_file, the secret promotion needs (without
	 * it, only this host's CLI promotes); or NULL */
	char *promote_token_file;
	char *promote_token;
	size_t promote_token_len;
	char *warning;        /* one line on something risky, or NULL */
	struct tls_conf *tls; /* or NULL: plain HTTP */
	int tls_off;          /* "tls: off": plain HTTP, said so */
	/* connections open at once, in all and from one address */
	int64_t max_conns, max_peer_conns;
	/* exporter: the newest export stays served after every pull-backup
	 * archived it, until a newer one (its hook can link to it) */
	int keep_last_export;
	/* exporter */
	char *source;
	char **export_command;
	char *schedule_text;
	struct schedule schedule;
	char **notify;
	size_t nnotify;
	int64_t hook_timeout;
	/* pull-backup, importer */
	struct source_conf *sources;
	size_t nsources;
};

const char *role_name(enum role);
int config_load(const char *path, enum role, struct config **out, char *err,
    size_t errlen);
void config_free(struct config *);
/* 1 (saying which key in what) when b differs from a in something a
 * running daemon cannot take on a reload: where it listens and keeps its
 * state, and which sources and importers it has. */
int config_needs_restart(const struct config *a, const struct config *b,
    char *what, size_t len);
const struct source_conf *config_source(const struct config *,
    const char *name);
int source_name_valid(const char *);
/* "http://host:port" or "https://host:port" -> host (an IPv6 literal
 * without its brackets) and port; 0 on success. */
int url_split(const char *url, char **host, int *port);
/* Whether a URL url_split() takes is https. */
int url_is_tls(const char *url);
/* The reverse: "http://host:port", "https://[v6]:port". */
char *url_make(const char *host, int port);
char *url_make_scheme(int tls, const char *host, int port);
/* A certificate fingerprint as written in a config or printed:
 * "sha256:" and 64 hex digits (colons between pairs allowed, any case),
 * into its canonical form (lower case, no colons); 0 on success. */
int tls_pin_canon(const char *s, char out[72]);

#endif
