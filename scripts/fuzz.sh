#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/) and runs each one, bounded, from the committed seed corpus.
# Fails on any crash-/leak-/timeout-/oom- file or a non-zero exit.
#   LAB_FUZZ_SECS      seconds per target (default 45)
#   LAB_FUZZ_TARGETS   space-separated subset (default: all)
#   LAB_FUZZ_BUILD=0   skip the build (reuse the fuzz executables already built)
# The build shares `.build` with the normal debug build: Package.swift (LAB_FUZZ=1) instruments only
# this package's modules, so the dependencies' objects are reused; our modules are recompiled with
# -sanitize=fuzzer,address (and recompiled back by the next normal build).
# A finding is kept in .build/fuzz-findings/<target>/ for reproduction:
#   .build/debug/<target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

all="FuzzJSON FuzzHandshake FuzzClientMessage FuzzFrameInspector FuzzTokensFile FuzzCredentials"
targets=${LAB_FUZZ_TARGETS:-$all}
secs=${LAB_FUZZ_SECS:-45}
scratch=.build
export LAB_FUZZ=1              # Package.swift adds the fuzz targets only then
export SWIFT_BACKTRACE=enable=no  # the backtracer outlives a crashing fuzzer and holds its pipe open

if [ "${LAB_FUZZ_BUILD:-1}" != 0 ]; then
    for t in $targets; do
        echo "== fuzz: building $t"
        mkdir -p "$scratch"
        # (ld.gold warns "Cannot export local symbol '__asan_…'" many times: harmless, filtered.)
        if ! swift build --scratch-path "$scratch" -c debug --product "$t" \
            >"$scratch/fuzz-build-$t.log" 2>&1; then
            grep -v "Cannot export local symbol" "$scratch/fuzz-build-$t.log" | tail -30 >&2
            echo "fuzz: build of $t failed" >&2
            exit 1
        fi
        grep -v "Cannot export local symbol" "$scratch/fuzz-build-$t.log" | tail -1
    done
fi

bin="$scratch/debug"
status=0
summary=""
for t in $targets; do
    work=$(mktemp -d /tmp/lab-fuzz.XXXXXX)
    mkdir -p "$work/corpus" "$work/artifacts"
    cp Fuzz/corpus/"$t"/* "$work/corpus/"
    echo "== fuzz: $t for ${secs}s"
    rc=0
    # -rss_limit_mb also bounds a single malloc; ASan's own leak check runs at exit.
    (cd "$work" && timeout $((secs + 60)) "$OLDPWD/$bin/$t" corpus \
        -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" >"$work/log" 2>&1) || rc=$?
    findings=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    line="$t: exit $rc, ${runs:-?} runs, ${speed:-?} exec/s, $findings finding(s)"
    summary+="$line"$'\n'
    if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
        status=1
        mkdir -p "$scratch/fuzz-findings/$t"
        cp "$work"/artifacts/* "$scratch/fuzz-findings/$t/" 2>/dev/null || true
        echo "fuzz: $t FAILED (inputs kept in $scratch/fuzz-findings/$t); last lines of its log:" >&2
        grep -v "^#[0-9]" "$work/log" | tail -40 >&2
    fi
    rm -rf "$work"
done
echo "== fuzz summary"
printf '%s' "$summary"
exit $status
