/* The importer's state of one source (isrc.h). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fsutil.h"
#include <event2/event.h>

#include "check.h"
#include "isrc.h"
#include "log.h"
#include "manifest.h"
#include "xmalloc.h"

/* The manifest of the last good copy, verified when it was made. */
static void
load_current(struct isrc *s, const char *name)
{
	char *p = xasprintf("%s/manifest", s->current), err[512];

	if (fs_exists(p) && manifest_load(p, &s->cur_m, err, sizeof err) != 0)
		log_warnx("source \"%s\": %s", name, err);
	free(p);
}

char *
isrc_last_file(const struct isrc *s)
{
	return xasprintf("%s/last-import.json", s->dir);
}

int
isrc_open(struct isrc *s, struct node *n, const struct config *cf,
    const struct source_conf *sc)
{
	char *gpath, err[1024];
	int rc;

	memset(s, 0, sizeof *s);
	s->node = n;
	s->dir = xasprintf("%s/sources/%s", cf->state_dir, sc->name);
	s->current = xasprintf("%s/current", s->dir);
	s->next = xasprintf("%s/next", s->dir);
	s->hints = xasprintf("%s/delta-hints", s->dir);
	s->promo_file = xasprintf("%s/promoted.json", s->dir);
	if (n != NULL && fs_mkdir_p(s->dir, 0700) != 0) {
		log_warn("state_dir: %s", s->dir);
		return -1;
	}
	load_current(s, sc->name);
	gpath = xasprintf("%s/generation.json", s->dir);
	if (n != NULL)
		rc = gen_add(n, sc->name, gpath, err, sizeof err);
	else
		rc = gen_load(&s->own_gen, sc->name, gpath, err, sizeof err);
	free(gpath);
	s->gen = n != NULL ? gen_find(n, sc->name) : &s->own_gen;
	if (rc != 0) {
		/* The caller stops: a standby that does not know its
		 * generation could take the old primary's data. */
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

void
isrc_close(struct isrc *s)
{
	free(s->dir);
	free(s->current);
	free(s->next);
	free(s->hints);
	free(s->promo_file);
	free(s->promo_at);
	free(s->promo_version);
	free(s->promo_output);
	gen_start_clear(&s->promo_gen);
	check_result_clear(&s->damage);
	if (s->check_ev != NULL)
		event_free(s->check_ev);
	if (s->gen == &s->own_gen)
		gen_clear(&s->own_gen);
	manifest_free(s->cur_m);
	/* A job whose end the stopped loop never took. */
	manifest_free(s->new_m);
	runner_result_clear(&s->res);
	runner_free(&s->run);
}

void
isrc_remove_replaced(struct isrc *s)
{
	struct dirent *de;
	char *p;
	DIR *d;

	if ((d = opendir(s->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ISRC_REPLACED_PREFIX,
			strlen(ISRC_REPLACED_PREFIX)) != 0)
			continue;
		p = xasprintf("%s/%s", s->dir, de->d_name);
		log_info(
		    "source \"%s\": removing %s, a copy an import replaced",
		    s->run.sc->name, p);
		fs_rm_rf(p);
		free(p);
	}
	closedir(d);
}
