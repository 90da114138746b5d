#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hash.h"
#include "log.h"

void
hash_init(struct hash *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("hash_init: OpenSSL cannot start a SHA-256 digest");
	h->ctx = ctx;
}

void
hash_update(struct hash *h, const void *p, size_t n)
{
	if (n > 0 && EVP_DigestUpdate(h->ctx, p, n) != 1)
		fatalx("hash_update: OpenSSL digest failed");
}

void
hash_final(struct hash *h, char hex[HASH_HEX_SIZE])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
		fatalx("hash_final: OpenSSL digest failed");
	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void
hash_abort(struct hash *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int64_t
hash_fd(int fd, char hex[HASH_HEX_SIZE])
{
	static __thread unsigned char buf[1 << 17];
	struct hash h;
	int64_t total = 0;
	ssize_t n;

	hash_init(&h);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			hash_abort(&h);
			return -1;
		}
		if (n == 0)
			break;
		hash_update(&h, buf, (size_t)n);
		total += n;
	}
	hash_final(&h, hex);
	return total;
}

int
hash_hex_valid(const char *s)
{
	size_t i;

	for (i = 0; i < HASH_HEX_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return s[HASH_HEX_LEN] == '\0';
}

int
hash_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char da[32], db[32];
	unsigned int n;

	/* Digest both so the comparison takes the same time whatever the
	 * lengths and contents. */
	if (EVP_Digest(a, alen, da, &n, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(b, blen, db, &n, EVP_sha256(), NULL) != 1)
		return 0;
	return CRYPTO_memcmp(da, db, sizeof da) == 0;
}
