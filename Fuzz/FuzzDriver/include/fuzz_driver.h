#ifndef LAB_FUZZ_DRIVER_H
#define LAB_FUZZ_DRIVER_H

/// Hands the process to libFuzzer, which calls the program's `LLVMFuzzerTestOneInput` per input.
///
/// SwiftPM links every executable with its Swift `main` (and renames libFuzzer's away), so each fuzz
/// target keeps a tiny `@main` that calls this instead of relying on libFuzzer's own `main`.
int lab_fuzz_driver_run(int argc, char **argv);

#endif
