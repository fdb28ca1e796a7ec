#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

/* Typed accessors so Swift never touches the fixed-size char array or the
   variadic redisCommand. */
static inline int CHiredis_err(const redisContext *c) { return c->err; }
static inline const char *CHiredis_errstr(const redisContext *c) { return c->errstr; }

static inline struct timeval CHiredis_timeval(long long milliseconds) {
    struct timeval tv;
    tv.tv_sec = (time_t)(milliseconds / 1000);
    tv.tv_usec = (suseconds_t)((milliseconds % 1000) * 1000);
    return tv;
}

#endif
