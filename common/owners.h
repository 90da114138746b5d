/* Owners in a manifest: each entry's user and group ids, and tables of
 * the names of those ids, so that a standby maps them by name (an id
 * without a name, or whose name the standby lacks, stays as it is), as
 * tar and rsync do.  See docs/protocol.md, "The manifest". */
#ifndef UNDERSTUDY_OWNERS_H
#define UNDERSTUDY_OWNERS_H

#include <stddef.h>
#include <stdint.h>

#define OWNER_ID_MAX 4294967294u /* (uid_t)-1 means "unchanged" */
#define OWNER_NAME_MAX 32
#define OWNER_TABLE_MAX 65536

struct mowner {
	uint32_t id;
	char *name;
};

struct manifest;

/* A user or group name as a manifest carries it: 1 to 32 bytes of
 * letters, digits, '.', '_' and '-', not starting with '-'. */
int owner_name_valid(const char *s, size_t len);
/* Fill m's user and group tables with the names this host gives the ids
 * its entries and top directory use (ids without a valid name are left
 * out). */
void owners_name(struct manifest *m);
/* The ids this host has for the ids of a table (by name; the id itself
 * when the name is unknown here): an array parallel to the table. */
uint32_t *owners_local(const struct mowner *t, size_t n, int group);
/* The local id of id in a table mapped by owners_local(). */
uint32_t owners_map(const struct mowner *t, const uint32_t *local, size_t n,
    uint32_t id);
/* A copy of a table, names and all. */
struct mowner *owners_copy(const struct mowner *t, size_t n);
void owners_free(struct mowner *t, size_t n);

#endif
