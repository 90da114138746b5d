#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "hook.h"
#include "log.h"
#include "unit.h"

/* The pid recorded in dir, or 0. */
static int
recorded(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int pid = 0;

	while (d != NULL && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			pid = atoi(de->d_name);
	if (d != NULL)
		closedir(d);
	return pid;
}

/* A daemon killed outright while its hook runs: the hook dies with it
 * (parent-death signal), and what the hook started in its group is ended
 * by the next start's hook_init(), which empties the records. */
static void
records(void)
{
	const char *dir = unit_tmpdir();
	char *rec = NULL;
	char *noenv[] = { NULL };
	char *argv[] = { "/bin/sh", "-c", "sleep 60 & sleep 60", NULL };
	struct hook_result r;
	pid_t daemon;
	int pgid = 0, i;

	if (asprintf(&rec, "%s/hooks", dir) < 0)
		return;
	if ((daemon = fork()) == 0) {
		hook_init(rec);
		hook_run(argv, noenv, 100, "hook", &r);
		_exit(0);
	}
	for (i = 0; i < 100 && (pgid = recorded(rec)) == 0; i++)
		usleep(50000);
	CHECK(pgid > 0);
	usleep(200000); /* the shell has started its background sleep */
	kill(daemon, SIGKILL);
	waitpid(daemon, NULL, 0);
	/* The hook (the group's leader) died with the daemon... */
	for (i = 0; i < 100 && kill(pgid, 0) == 0; i++)
		usleep(50000);
	CHECK(kill(pgid, 0) != 0);
	/* ...what it started in the background is still there... */
	CHECK(kill(-pgid, 0) == 0);
	/* ...until the next start. */
	CHECK(hook_init(rec) == 0);
	CHECK(kill(-pgid, 0) != 0);
	CHECK(recorded(rec) == 0);
	free(rec);
	/* A record of a process group that is gone, or damaged, is only
	 * dropped. */
	if (asprintf(&rec, "%s/hooks/4000000", dir) >= 0)
		unit_write(rec, "4000000 1\n");
	free(rec);
	if (asprintf(&rec, "%s/hooks/x", dir) >= 0)
		unit_write(rec, "garbage");
	free(rec);
	if (asprintf(&rec, "%s/hooks", dir) >= 0) {
		CHECK(hook_init(rec) == 0);
		CHECK(recorded(rec) == 0);
	}
	free(rec);
	fs_rm_rf(dir);
}

int
main(void)
{
	struct hook_result r;
	char *env[] = { "UNDERSTUDY_VERSION=20261121T000000.000Z",
		"UNDERSTUDY_SOURCE=db", NULL };
	char *noenv[] = { NULL };
	time_t start;

	log_init("test", LOG_LEVEL_WARN);

	char *ok[] = { "/bin/sh", "-c",
		"echo \"v=$UNDERSTUDY_VERSION s=$UNDERSTUDY_SOURCE\"; echo "
		"to-stderr >&2; test -n \"$PATH\"",
		NULL };
	CHECK(hook_run(ok, env, 10, "hook", &r) == 0);
	CHECK(r.ok && r.exit_code == 0);
	CHECK_CONTAINS(r.output, "v=20261121T000000.000Z s=db");
	CHECK_CONTAINS(r.output, "to-stderr");
	hook_result_clear(&r);

	char *fail[] = { "/bin/sh", "-c", "echo why; exit 3", NULL };
	CHECK(hook_run(fail, noenv, 10, "export hook", &r) != 0);
	CHECK(!r.ok && r.exit_code == 3);
	CHECK_CONTAINS(r.error, "export hook exited with status 3");
	/* with its last words */
	CHECK_CONTAINS(r.error, "status 3: why");
	CHECK_CONTAINS(r.output, "why");
	hook_result_clear(&r);

	/* No shell: arguments arrive as given. */
	char *args[] = { "/bin/echo", "$HOME", "a b", ";", "rm", NULL };
	CHECK(hook_run(args, noenv, 10, "hook", &r) == 0);
	CHECK_CONTAINS(r.output, "$HOME a b ; rm");
	hook_result_clear(&r);

	char *missing[] = { "/nonexistent/hook", NULL };
	CHECK(hook_run(missing, noenv, 10, "import hook", &r) != 0);
	CHECK_CONTAINS(r.error, "import hook: cannot run /nonexistent/hook");
	hook_result_clear(&r);

	/* A timeout kills the hook's whole process group. */
	char *slow[] = { "/bin/sh", "-c", "sleep 60 & sleep 60", NULL };
	start = time(NULL);
	CHECK(hook_run(slow, noenv, 1, "hook", &r) != 0);
	CHECK(r.timed_out);
	CHECK_CONTAINS(r.error, "timed out after 1s");
	CHECK(time(NULL) - start < 10);
	hook_result_clear(&r);

	char *killed[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
	CHECK(hook_run(killed, noenv, 10, "hook", &r) != 0);
	CHECK(r.signal == 9);
	CHECK_CONTAINS(r.error, "killed by signal 9");
	hook_result_clear(&r);

	/* A child left in the background holding the output open does not
	 * keep the hook "running". */
	char *bg[] = { "/bin/sh", "-c", "sleep 30 & echo done", NULL };
	start = time(NULL);
	CHECK(hook_run(bg, noenv, 60, "hook", &r) == 0);
	CHECK(time(NULL) - start < 10);
	CHECK_CONTAINS(r.output, "done");
	hook_result_clear(&r);

	/* Only the tail of a long output is kept. */
	char *loud[] = { "/bin/sh", "-c",
		"i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done",
		NULL };
	CHECK(hook_run(loud, noenv, 30, "hook", &r) == 0);
	CHECK(strlen(r.output) <= HOOK_OUTPUT_MAX);
	CHECK_CONTAINS(r.output, "line 2999\n");
	CHECK(strstr(r.output, "line 10\n") == NULL);
	hook_result_clear(&r);

	records();
	return unit_done();
}
