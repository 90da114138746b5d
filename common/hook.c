#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "hook.h"
#include "log.h"
#include "timespec.h"
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
	return (double)time_mono_ms() / 1000;
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

/* Where the hooks under way are recorded, one file per hook named by its
 * pid holding "PID STARTTIME": a daemon killed outright leaves them, and
 * its next start ends what they name before anything else runs. */
static char *record_dir;

/* A process's start time (clock ticks after boot), from /proc: 0 when it
 * is not there. */
static unsigned long long
proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* After the command's closing parenthesis: field 3 on; the start
	 * time is field 22. */
	if ((p = strrchr(buf, ')')) != NULL) {
		for (i = 3; i <= 22 && p != NULL; i++)
			p = strchr(p + 1, ' ');
		if (p != NULL)
			v = strtoull(p + 1, NULL, 10);
	}
	return v;
}

static char *
record_add(pid_t pid)
{
	char *path, line[64];
	int n;

	if (record_dir == NULL)
		return NULL;
	path = xasprintf("%s/%d", record_dir, (int)pid);
	n = snprintf(line, sizeof line, "%d %llu\n", (int)pid, proc_start(pid));
	if (fs_write_atomic(path, line, (size_t)n) != 0)
		log_warn("%s: cannot record the hook under way", path);
	return path;
}

static void
record_remove(char *path)
{
	if (path == NULL)
		return;
	unlink(path);
	free(path);
}

/* End the process group a record names, if it is still the one started
 * then: its leader has the start time recorded, or is gone while others
 * of its group live on (a group's id is not reused while it has
 * members). */
static void
record_end(const char *path)
{
	char *data;
	size_t len;
	int pid, i;
	unsigned long long start, now;

	if (fs_read_file(path, 128, &data, &len) != 0)
		return;
	if (sscanf(data, "%d %llu", &pid, &start) != 2 || pid <= 1) {
		free(data);
		return;
	}
	free(data);
	if (kill(-pid, 0) != 0)
		return;
	now = proc_start(pid);
	if (now != 0 && now != start)
		return;
	log_warnx("a hook the last run of this daemon started (process group "
		  "%d) is still running: ending it before anything else runs",
	    pid);
	kill(-pid, SIGTERM);
	for (i = 0; i < 50 && kill(-pid, 0) == 0; i++)
		usleep(100000);
	kill(-pid, SIGKILL);
	for (i = 0; i < 50 && kill(-pid, 0) == 0; i++)
		usleep(100000);
}

int
hook_init(const char *dir)
{
	struct dirent *de;
	char *path;
	DIR *d;

	free(record_dir);
	record_dir = xstrdup(dir);
	if (fs_mkdir_p(dir, 0700) != 0 || (d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		record_end(path);
		unlink(path);
		free(path);
	}
	closedir(d);
	return 0;
}

/* Start argv in a process group of its own, output to out: its pid, or -1
 * with errno.  The child asks to be killed when the thread that started
 * it ends (the daemon killed outright); between fork and exec only
 * async-signal-safe calls. */
static pid_t
hook_spawn(char *const argv[], char *const envp[], int out)
{
	pid_t parent = getpid(), pid;
	int errpipe[2], err = 0, fd;
	struct sigaction sa;
	sigset_t none;
	ssize_t n;

	if (pipe2(errpipe, O_CLOEXEC) != 0)
		return -1;
	if ((pid = fork()) < 0) {
		err = errno;
		close(errpipe[0]);
		close(errpipe[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		for (fd = 1; fd < NSIG; fd++)
			if (fd != SIGKILL && fd != SIGSTOP)
				sigaction(fd, &sa, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if ((fd = open("/dev/null", O_RDONLY)) < 0 || dup2(fd, 0) < 0 ||
		    dup2(out, 1) < 0 || dup2(out, 2) < 0)
			goto fail;
		execve(argv[0], argv, envp);
	fail:
		err = errno;
		(void)!write(errpipe[1], &err, sizeof err);
		_exit(127);
	}
	close(errpipe[1]);
	/* Closed by the exec, or an errno from the child. */
	while ((n = read(errpipe[0], &err, sizeof err)) < 0 && errno == EINTR)
		;
	close(errpipe[0]);
	if (n == sizeof err) {
		waitpid(pid, NULL, 0);
		errno = err;
		return -1;
	}
	/* Its group, from here too: no window where a kill of the group
	 * misses it. */
	setpgid(pid, pid);
	return pid;
}

/* Append the last line the hook printed to its error, if any. */
static void
last_words(struct hook_result *r)
{
	const char *end, *start;
	size_t n = strlen(r->error);

	if (r->output == NULL)
		return;
	end = r->output + strlen(r->output);
	while (end > r->output && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (start = end; start > r->output && start[-1] != '\n'; start--)
		;
	if (end > start && n + 3 < sizeof r->error)
		snprintf(r->error + n, sizeof r->error - n, ": %.*s",
		    (int)(end - start > 300 ? 300 : end - start), start);
}

int
hook_run(char *const argv[], char *const env[], int timeout_secs,
    const char *what, struct hook_result *r)
{
	struct tail *t = xcalloc(1, sizeof *t);
	struct pollfd pfd;
	char **envp, buf[4096], *record;
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
	envp = hook_env(env);
	pid = hook_spawn(argv, envp, pipefd[1]);
	rc = errno;
	free(envp);
	close(pipefd[1]);
	if (pid < 0) {
		snprintf(r->error, sizeof r->error, "%s: cannot run %s: %s",
		    what, argv[0], strerror(rc));
		close(pipefd[0]);
		free(t);
		return -1;
	}
	record = record_add(pid);
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
	record_remove(record);
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
	/* Its last words often say why (a full disk, a refused login). */
	if (!r->ok)
		last_words(r);
	log_info("%s: %s after %.1fs", what, r->ok ? "succeeded" : r->error,
	    r->seconds);
	return r->ok ? 0 : -1;
}
