#ifndef LAB_CSPAWN_H
#define LAB_CSPAWN_H
#include <sys/types.h>

/// File descriptors and pid of a freshly forked child. With a PTY, `stdin_fd == stdout_fd` (the
/// master side) and `stderr_fd == -1`. `report_fd` is the read end of the CLOEXEC exec-report pipe,
/// consumed by `lab_spawn_await_exec`.
typedef struct {
    pid_t pid;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    int report_fd;
} lab_child;

/// Forks `path` with `argv`/`envp` in `cwd`, as the leader of a new session (so the whole tree can be
/// signalled as one process group). When `pty_rows > 0` the child runs on a new PTY of that size and it
/// becomes its controlling terminal; otherwise stdin/stdout/stderr are pipes.
/// Returns 0 once forked (the exec outcome comes from `lab_spawn_await_exec`), or the errno of a
/// failing step before the fork. Never waits for the child: the caller's reaper owns every wait.
int lab_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
              unsigned short pty_rows, unsigned short pty_cols, lab_child *out);

/// Blocks until the child has exec'd (returns 0) or failed before exec (returns its errno; the child
/// then exits with 127 and must still be reaped). Closes `report_fd`.
int lab_spawn_await_exec(int report_fd);

/// Closes the parent's ends of a child's pipes / PTY (after a failed exec).
void lab_child_close(const lab_child *child);

/// Waits (blocking, EINTR retried) until some child has exited and returns its pid WITHOUT reaping
/// it (`waitid(P_ALL, WEXITED | WNOWAIT)`): the zombie keeps the pid and process group from being
/// reused until `lab_reap`. Returns -1 with errno (ECHILD: no children at all).
pid_t lab_wait_any_exited(void);

/// Reaps an exited child (`waitpid(pid, WNOHANG)`): returns 1 and the decoded status in `*code`
/// (exit code, or -signal), 0 if it has not exited, -1 with errno.
int lab_reap(pid_t pid, int *code);

/// Whether orphans are re-parented to this process: it is PID 1 of its namespace (a container
/// without an init) or a child subreaper.
int lab_adopts_orphans(void);

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`). Returns 0 or errno.
int lab_become_subreaper(void);

/// Resizes a PTY (master fd).
int lab_pty_resize(int master_fd, unsigned short rows, unsigned short cols);

/// Decodes a waitpid status: returns the exit code, or -signal when the child was killed by a signal.
int lab_wait_status_code(int status);
#endif
