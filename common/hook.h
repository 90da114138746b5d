/* Hooks: the operator's programs, run without a shell in their own process
 * group, stdin from /dev/null, stdout and stderr captured line by line into
 * the log and kept (the tail) for the status, with a timeout.  hook_run()
 * blocks: call it from a worker thread. */
#ifndef UNDERSTUDY_HOOK_H
#define UNDERSTUDY_HOOK_H

#define HOOK_OUTPUT_MAX 8192

struct hook_result {
	int ok;        /* exited 0 */
	int exit_code; /* or -1 */
	int signal;    /* killing signal, or 0 */
	int timed_out;
	double seconds;
	char *output;    /* the tail of stdout+stderr */
	char error[512]; /* a one-line reason when !ok */
};

/* Where hooks under way are recorded (the daemon's state directory's
 * hooks/): what a daemon killed outright left running is ended now, before
 * anything else runs. */
int hook_init(const char *dir);
/* The hook dies with the daemon (a parent-death signal); what it started
 * in its process group does at the daemon's next start (hook_init()). */
int hook_run(char *const argv[], char *const env[], int timeout_secs,
    const char *what, struct hook_result *);
void hook_result_clear(struct hook_result *);

#endif
