#include "lab_hardening.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

// At load time, before the Swift runtime starts: the window in which a freshly exec'd worker or
// controller is still dumpable (and its /proc/<pid>/environ readable by same-user agents) shrinks to the
// dynamic loader's work. Every process that links this library (the two executables, the test runners)
// is non-dumpable; the reaper thread's children are not affected (execve resets it for them).
__attribute__((constructor(101))) static void lab_nondumpable_at_load(void) {
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int lab_set_nondumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno;
}

int lab_is_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

long lab_take_env(const char *name, char *out, size_t cap) {
    char *value = getenv(name);
    if (value == NULL) return -1;
    size_t n = strlen(value);
    long result;
    if (cap == 0 || n > cap - 1) {
        result = -2;
    } else {
        memcpy(out, value, n);
        out[n] = '\0';
        result = (long)n;
    }
    // Overwrite in place: the initial environment block stays readable in /proc/<pid>/environ even after
    // unsetenv, which only drops the pointer.
    memset(value, 'x', n);
    unsetenv(name);
    return result;
}
