// Fixed clocks for a kit's build tool: wharf-fixed-run preloads this library
// (WHARF_FIXED_LIB) into the command it runs.
//
// wharf-fixed-run (fixed_run.c) fixes what the build tool learns through
// system calls; clocks need none (the vDSO answers them), so this library,
// preloaded into the tool, answers the libc clock calls instead: the wall
// and monotonic clocks start at WHARF_FIXED_TIME (seconds, default
// 1980-01-01) and advance 1 ms per call on each thread, so they never stand
// still and nothing that waits on them hangs. CPU-time clocks pass through.
//
// Wizer passes its environment on to the guest (--inherit-env), where the
// preload variable would end up in the snapshot: with WHARF_FIXED_HIDE set,
// the library removes LD_PRELOAD and the WHARF_FIXED_* variables from the environment
// at load (child processes then run without it).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int64_t fixed_time = 315532800;
static __thread uint64_t clock_calls;

__attribute__((constructor)) static void init(void) {
    const char *t = getenv("WHARF_FIXED_TIME");
    if (t && *t) fixed_time = strtoll(t, NULL, 10);
    if (!getenv("WHARF_FIXED_HIDE")) return;
    unsetenv("WHARF_FIXED_HIDE");
    unsetenv("LD_PRELOAD");
    unsetenv("WHARF_FIXED_LIB");
    unsetenv("WHARF_FIXED_SEED");
    unsetenv("WHARF_FIXED_TIME");
    unsetenv("WHARF_FIXED_ROOT");
}

static int fixed_clock(clockid_t id) {
    switch (id) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_BOOTTIME:
        return 1;
    default:
        return 0;
    }
}

static struct timespec next_time(void) {
    uint64_t ms = ++clock_calls;
    struct timespec ts = {.tv_sec = fixed_time + (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    return ts;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (fixed_clock(id)) {
        *ts = next_time();
        return 0;
    }
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(id, ts);
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts = next_time();
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    time_t t = next_time().tv_sec;
    if (out) *out = t;
    return t;
}
