#ifndef CSYSTEM_SHIM_H
#define CSYSTEM_SHIM_H

/* glibc's malloc tuning (mallopt), which Swift's Glibc module does not export. */
#include <malloc.h>

static inline void CSystem_tune_malloc(int mmap_threshold, int arena_max) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_ARENA_MAX, arena_max);
}

#endif
