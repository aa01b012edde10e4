#ifndef LAB_HARDENING_H
#define LAB_HARDENING_H
#include <stddef.h>

/// prctl(PR_SET_DUMPABLE, 0): same-uid processes (the agents) can then neither ptrace this process nor
/// read its /proc/<pid>/environ, mem or fds. Swift cannot call the variadic prctl itself.
/// Returns 0 or errno.
int lab_set_nondumpable(void);

/// 1 when the process is dumpable, 0 when not, -1 on error.
int lab_is_dumpable(void);

/// Moves the environment variable `name` out of the process: copies its value into `out` (at most
/// `cap - 1` bytes, NUL-terminated), overwrites the original bytes in place (they sit in the block that
/// /proc/<pid>/environ shows) and unsets it. Returns the value's length, -1 if unset, -2 if longer than
/// `cap - 1` (then nothing is copied, but it is still scrubbed and unset).
long lab_take_env(const char *name, char *out, size_t cap);
#endif
