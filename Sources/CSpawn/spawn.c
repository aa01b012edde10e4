#define _GNU_SOURCE
#include "cspawn.h"
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void set_cloexec(int fd) { if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

static void close_pair(int p[2]) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
}

/* Only async-signal-safe calls between fork and exec: the parent may have many threads. */
static void child_exec(int err_fd, const char *path, char *const argv[], char *const envp[], const char *cwd,
                       int in_fd, int out_fd, int errout_fd, int is_pty) {
    int e;
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < 32; s++) {
        if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);   /* NIO ignores SIGPIPE; children must not inherit that */
    }
    if (setsid() < 0) goto fail;
    if (is_pty && ioctl(in_fd, TIOCSCTTY, 0) < 0) goto fail;
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(errout_fd, 2) < 0) goto fail;
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);   /* no fd of ours leaks into the agent */
    if (cwd && chdir(cwd) < 0) goto fail;
    execve(path, argv, envp);
fail:
    e = errno;
    (void)!write(err_fd, &e, sizeof e);
    _exit(127);
}

int lab_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
              unsigned short pty_rows, unsigned short pty_cols, lab_child *out) {
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, report[2] = {-1, -1};
    int master = -1, slave = -1;
    int is_pty = pty_rows > 0;
    if (pipe2(report, O_CLOEXEC) < 0) return errno;
    if (is_pty) {
        struct winsize ws = {0};
        ws.ws_row = pty_rows;
        ws.ws_col = pty_cols;
        if (openpty(&master, &slave, NULL, NULL, &ws) < 0) { int e = errno; close_pair(report); return e; }
        set_cloexec(master);
        set_cloexec(slave);
    } else if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
        int e = errno;
        close_pair(in_p); close_pair(out_p); close_pair(err_p); close_pair(report);
        return e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_pair(in_p); close_pair(out_p); close_pair(err_p); close_pair(report);
        if (master >= 0) close(master);
        if (slave >= 0) close(slave);
        return e;
    }
    if (pid == 0) {
        close(report[0]);
        if (is_pty) child_exec(report[1], path, argv, envp, cwd, slave, slave, slave, 1);
        else child_exec(report[1], path, argv, envp, cwd, in_p[0], out_p[1], err_p[1], 0);
    }
    close(report[1]);
    if (is_pty) {
        close(slave);
    } else {
        close(in_p[0]); close(out_p[1]); close(err_p[1]);
    }
    out->pid = pid;
    out->report_fd = report[0];
    if (is_pty) {
        out->stdin_fd = master;
        out->stdout_fd = master;
        out->stderr_fd = -1;
    } else {
        out->stdin_fd = in_p[1];
        out->stdout_fd = out_p[0];
        out->stderr_fd = err_p[0];
    }
    return 0;
}

int lab_spawn_await_exec(int report_fd) {
    int child_errno = 0;
    ssize_t n;
    do { n = read(report_fd, &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(report_fd);
    if (n == 0) return 0;                                  /* CLOEXEC closed the pipe: exec succeeded */
    if (n == (ssize_t)sizeof child_errno && child_errno) return child_errno;
    return ENOEXEC;
}

void lab_child_close(const lab_child *c) {
    if (c->stdin_fd >= 0) close(c->stdin_fd);
    if (c->stdout_fd >= 0 && c->stdout_fd != c->stdin_fd) close(c->stdout_fd);
    if (c->stderr_fd >= 0) close(c->stderr_fd);
}

pid_t lab_wait_any_exited(void) {
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) == 0) return info.si_pid;
        if (errno != EINTR) return -1;
    }
}

int lab_reap(pid_t pid, int *code) {
    int status = 0;
    pid_t r;
    do { r = waitpid(pid, &status, WNOHANG); } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (r == 0) return 0;
    *code = lab_wait_status_code(status);
    return 1;
}

int lab_adopts_orphans(void) {
    int subreaper = 0;
    if (getpid() == 1) return 1;
    return prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper;
}

int lab_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) == 0 ? 0 : errno;
}

int lab_pty_resize(int master_fd, unsigned short rows, unsigned short cols) {
    struct winsize ws = {0};
    ws.ws_row = rows;
    ws.ws_col = cols;
    return ioctl(master_fd, TIOCSWINSZ, &ws) < 0 ? errno : 0;
}

int lab_wait_status_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return -1;
}
