#ifndef CSYSTEM_SHIM_H
#define CSYSTEM_SHIM_H

/* glibc's malloc tuning (mallopt), which Swift's Glibc module does not export. */
#include <malloc.h>

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <unistd.h>

/* pipe2(O_CLOEXEC): both ends close-on-exec from birth, so a child spawned by another
   thread in between never inherits them. Glibc's Swift module does not export pipe2. */
static inline int CSystem_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

static inline void CSystem_tune_malloc(int mmap_threshold, int arena_max) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_ARENA_MAX, arena_max);
}

#endif
