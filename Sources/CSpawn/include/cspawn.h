#ifndef LAB_CSPAWN_H
#define LAB_CSPAWN_H
#include <sys/types.h>

/// File descriptors and pid of a freshly spawned child. With a PTY, `stdin_fd == stdout_fd` (the
/// master side) and `stderr_fd == -1`.
typedef struct {
    pid_t pid;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
} lab_child;

/// Spawns `path` with `argv`/`envp` in `cwd`, as the leader of a new session (so the whole tree can be
/// signalled as one process group). When `pty_rows > 0` the child runs on a new PTY of that size and it
/// becomes its controlling terminal; otherwise stdin/stdout/stderr are pipes.
/// Returns 0, or the errno of the failing step (exec or chdir errors are reported from the child).
int lab_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
              unsigned short pty_rows, unsigned short pty_cols, lab_child *out);

/// Resizes a PTY (master fd).
int lab_pty_resize(int master_fd, unsigned short rows, unsigned short cols);

/// Decodes a waitpid status: returns the exit code, or -signal when the child was killed by a signal.
int lab_wait_status_code(int status);
#endif
