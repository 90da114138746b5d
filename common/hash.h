/* SHA-256 through OpenSSL's libcrypto, as lowercase hex. */
#ifndef UNDERSTUDY_HASH_H
#define UNDERSTUDY_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_HEX_LEN 64
#define HASH_HEX_SIZE (HASH_HEX_LEN + 1)

struct hash {
	void *ctx;
};

void hash_init(struct hash *);
void hash_update(struct hash *, const void *, size_t);
void hash_final(struct hash *, char hex[HASH_HEX_SIZE]);
void hash_abort(struct hash *);
/* Hash a whole file from its current offset; returns bytes or -1. */
int64_t hash_fd(int fd, char hex[HASH_HEX_SIZE]);
int hash_hex_valid(const char *);
/* Constant-time comparison of two secrets of any length. */
int hash_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
