#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"
#include "owners.h"
#include "xmalloc.h"

int
owner_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > OWNER_NAME_MAX || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '.' || c == '_' ||
			c == '-'))
			return 0;
	}
	return 1;
}

static int
id_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The name of a user or group id on this host, or NULL. */
static char *
id_name(uint32_t id, int group)
{
	char buf[16384];
	const char *name = NULL;
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;

	if (group) {
		if (getgrgid_r((gid_t)id, &gr, buf, sizeof buf, &grp) == 0 &&
		    grp != NULL)
			name = grp->gr_name;
	} else if (getpwuid_r((uid_t)id, &pw, buf, sizeof buf, &pwp) == 0 &&
	    pwp != NULL)
		name = pwp->pw_name;
	if (name == NULL || !owner_name_valid(name, strlen(name)))
		return NULL;
	return xstrdup(name);
}

static void
table(struct manifest *m, int group, struct mowner **out, size_t *nout)
{
	uint32_t *ids = xreallocarray(NULL, m->n + 1, sizeof *ids);
	struct mowner *t;
	size_t i, n = 0, k = 0;

	ids[n++] = group ? m->root_gid : m->root_uid;
	for (i = 0; i < m->n; i++)
		ids[n++] = group ? m->e[i].gid : m->e[i].uid;
	qsort(ids, n, sizeof *ids, id_cmp);
	t = xreallocarray(NULL, n, sizeof *t);
	for (i = 0; i < n && k < OWNER_TABLE_MAX; i++) {
		char *name;
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		if ((name = id_name(ids[i], group)) == NULL)
			continue;
		t[k].id = ids[i];
		t[k++].name = name;
	}
	free(ids);
	*out = t;
	*nout = k;
}

void
owners_name(struct manifest *m)
{
	table(m, 0, &m->users, &m->nusers);
	table(m, 1, &m->groups, &m->ngroups);
}

uint32_t *
owners_local(const struct mowner *t, size_t n, int group)
{
	uint32_t *local = xreallocarray(NULL, n ? n : 1, sizeof *local);
	char buf[16384];
	struct passwd pw, *pwp;
	struct group gr, *grp;
	size_t i;

	for (i = 0; i < n; i++) {
		local[i] = t[i].id;
		if (group) {
			grp = NULL;
			if (getgrnam_r(t[i].name, &gr, buf, sizeof buf, &grp) ==
				0 &&
			    grp != NULL)
				local[i] = (uint32_t)grp->gr_gid;
		} else {
			pwp = NULL;
			if (getpwnam_r(t[i].name, &pw, buf, sizeof buf, &pwp) ==
				0 &&
			    pwp != NULL)
				local[i] = (uint32_t)pwp->pw_uid;
		}
	}
	return local;
}

uint32_t
owners_map(const struct mowner *t, const uint32_t *local, size_t n, uint32_t id)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (t[mid].id == id)
			return local[mid];
		if (t[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return id;
}

struct mowner *
owners_copy(const struct mowner *t, size_t n)
{
	struct mowner *c = xreallocarray(NULL, n ? n : 1, sizeof *c);
	size_t i;

	for (i = 0; i < n; i++) {
		c[i].id = t[i].id;
		c[i].name = xstrdup(t[i].name);
	}
	return c;
}

void
owners_free(struct mowner *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(t[i].name);
	free(t);
}
