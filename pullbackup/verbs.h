/* The archive verbs of understudy-pullbackup.  They work on the archive
 * directly, whether the daemon runs or not: readers under the archive's
 * shared lock, prune under the exclusive one. */
#ifndef UNDERSTUDY_VERBS_H
#define UNDERSTUDY_VERBS_H

struct config;

int pb_list(struct config *, int argc, char **argv);
int pb_changed(struct config *, int argc, char **argv);
int pb_restore(struct config *, int argc, char **argv);
int pb_verify(struct config *, int argc, char **argv);
int pb_prune(struct config *, int argc, char **argv);
int pb_export(struct config *, int argc, char **argv);
int pb_vc_export(struct config *, int argc, char **argv);
int pb_catalog(struct config *, int argc, char **argv);


#endif
