#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

// Both come from the fuzz target: libFuzzer's runtime (-sanitize=fuzzer) and the Swift entry point.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int lab_fuzz_driver_run(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
