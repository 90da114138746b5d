#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"
#include "log.h"
#include "worker.h"
#include "xmalloc.h"

extern char **environ;

void
hook_result_clear(struct hook_result *r)
{
	free(r->output);
	memset(r, 0, sizeof *r);
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The environment: ours, with env's NAME=VALUE entries replacing any of the
 * same name. */
static char **
hook_env(char *const env[])
{
	size_t n = 0, m = 0, i, j, k = 0;
	char **out;
	const char *eq;

	while (environ[n] != NULL)
		n++;
	while (env[m] != NULL)
		m++;
	out = xcalloc(n + m + 1, sizeof *out);
	for (i = 0; i < n; i++) {
		for (j = 0; j < m; j++) {
			eq = strchr(env[j], '=');
			if (eq != NULL &&
			    strncmp(environ[i], env[j],
				(size_t)(eq - env[j]) + 1) == 0)
				break;
		}
		if (j == m)
			out[k++] = environ[i];
	}
	for (j = 0; j < m; j++)
		out[k++] = env[j];
	return out;
}

struct tail {
	char buf[HOOK_OUTPUT_MAX];
	size_t len;
	char line[1024];
	size_t linelen;
	const char *what;
};

static void
tail_add(struct tail *t, const char *p, size_t n)
{
	size_t i;

	if (n >= sizeof t->buf) {
		memcpy(t->buf, p + n - sizeof t->buf, sizeof t->buf);
		t->len = sizeof t->buf;
	} else {
		if (t->len + n > sizeof t->buf) {
			size_t drop = t->len + n - sizeof t->buf;
			memmove(t->buf, t->buf + drop, t->len - drop);
			t->len -= drop;
		}
		memcpy(t->buf + t->len, p, n);
		t->len += n;
	}
	for (i = 0; i < n; i++) {
		if (p[i] == '\n' || t->linelen == sizeof t->line - 1) {
			t->line[t->linelen] = '\0';
			log_info("%s: %s", t->what, t->line);
			t->linelen = 0;
			if (p[i] == '\n')
				continue;
		}
		t->line[t->linelen++] = p[i];
	}
}

int
hook_run(char *const argv[], char *const env[], int timeout_secs,
    const char *what, struct hook_result *r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct tail *t = xcalloc(1, sizeof *t);
	struct pollfd pfd;
	char **envp, buf[4096];
	int pipefd[2], status = 0, killed = 0, open_out = 1, rc;
	pid_t pid, w;
	double start = now_mono(), deadline, kill_at = 0;
	ssize_t n;

	memset(r, 0, sizeof *r);
	r->exit_code = -1;
	t->what = what;
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		snprintf(r->error, sizeof r->error, "%s: pipe: %s", what,
		    strerror(errno));
		free(t);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	{
		sigset_t none, all;
		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_setsigmask(&attr, &none);
		sigdelset(&all, SIGKILL);
		sigdelset(&all, SIGSTOP);
		posix_spawnattr_setsigdefault(&attr, &all);
	}
	posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
		POSIX_SPAWN_SETSIGDEF);
	envp = hook_env(env);
	rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
	free(envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pipefd[1]);
	if (rc != 0) {
		snprintf(r->error, sizeof r->error, "%s: cannot run %s: %s",
		    what, argv[0], strerror(rc));
		close(pipefd[0]);
		free(t);
		return -1;
	}
	log_info("%s: started %s (pid %d)", what, argv[0], (int)pid);
	deadline = start + timeout_secs;
	for (;;) {
		if (open_out) {
			pfd.fd = pipefd[0];
			pfd.events = POLLIN;
			rc = poll(&pfd, 1, 200);
			if (rc > 0) {
				n = read(pipefd[0], buf, sizeof buf);
				if (n > 0)
					tail_add(t, buf, (size_t)n);
				else if (n == 0 || errno != EINTR)
					open_out = 0;
			}
		} else
			usleep(50000);
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid && !open_out)
			break;
		if (w == pid) {
			/* Exited; drain what is left without waiting on
			 * grandchildren that keep the pipe open. */
			while (poll(&pfd, 1, 0) > 0 &&
			    (n = read(pipefd[0], buf, sizeof buf)) > 0)
				tail_add(t, buf, (size_t)n);
			break;
		}
		if (!killed && (now_mono() > deadline || worker_stopping())) {
			r->timed_out = now_mono() > deadline;
			kill(-pid, SIGTERM);
			killed = 1;
			kill_at = now_mono() + 5;
		} else if (killed == 1 && now_mono() > kill_at) {
			kill(-pid, SIGKILL);
			killed = 2;
		}
	}
	close(pipefd[0]);
	if (t->linelen > 0)
		tail_add(t, "\n", 1);
	r->seconds = now_mono() - start;
	r->output = xstrndup(t->buf, t->len);
	free(t);
	if (WIFEXITED(status)) {
		r->exit_code = WEXITSTATUS(status);
		r->ok = r->exit_code == 0 && !killed;
	} else if (WIFSIGNALED(status))
		r->signal = WTERMSIG(status);
	if (r->timed_out)
		snprintf(r->error, sizeof r->error,
		    "%s timed out after %ds and was killed", what,
		    timeout_secs);
	else if (killed)
		snprintf(r->error, sizeof r->error,
		    "%s was stopped: the daemon is shutting down", what);
	else if (r->signal)
		snprintf(r->error, sizeof r->error,
		    "%s was killed by signal %d", what, r->signal);
	else if (!r->ok)
		snprintf(r->error, sizeof r->error, "%s exited with status %d",
		    what, r->exit_code);
	log_info("%s: %s after %.1fs", what, r->ok ? "succeeded" : r->error,
	    r->seconds);
	return r->ok ? 0 : -1;
}
