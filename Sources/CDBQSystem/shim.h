#ifndef CSYSTEM_SHIM_H
#define CSYSTEM_SHIM_H

/* glibc's malloc tuning (mallopt), which Swift's Glibc module does not export. */
#include <malloc.h>

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
/* sync_file_range is GNU's, and defining _GNU_SOURCE before the first header would change
   fd_set against the definition Dispatch's module has: declared here instead (Linux). */
#ifndef SYNC_FILE_RANGE_WRITE
#define SYNC_FILE_RANGE_WRITE 2
extern int sync_file_range(int fd, __off64_t offset, __off64_t count, unsigned int flags);
#endif
#include <spawn.h>
#include <unistd.h>

/* pipe2(O_CLOEXEC): both ends close-on-exec from birth, so a child spawned by another
   thread in between never inherits them. Glibc's Swift module does not export pipe2. */
static inline int CSystem_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

/* Closes every descriptor from `low` up in the child (glibc 2.34+): a child never inherits
   what this process got from its own parent without close-on-exec (a supervisor's socket,
   a test harness's pipe), which would keep that descriptor open after dbq dies. */
static inline int CSystem_spawn_closefrom(posix_spawn_file_actions_t *actions, int low) {
    return posix_spawn_file_actions_addclosefrom_np(actions, low);
}

/* Starts writing a range of a file back to disk and returns without waiting (Linux
   sync_file_range, SYNC_FILE_RANGE_WRITE): the fsync that ends a put then has little left
   to write. Glibc's Swift module does not export it. */
static inline int CSystem_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

static inline void CSystem_tune_malloc(int mmap_threshold, int arena_max) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_ARENA_MAX, arena_max);
}

#endif
