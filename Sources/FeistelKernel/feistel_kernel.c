// Eight Feistel permutations side by side: one SipHash-2-4 state per lane of a vector of
// eight 64-bit words. One number's rounds are serial (each needs the one before), so a
// single permutation leaves most of the core idle; eight independent numbers fill it.
// The same source is compiled for three targets; the CPU picks one at run time.

#include "feistel_kernel.h"

// Eight 64-bit lanes are one vector on AVX-512 and two or four on the other targets; the
// helpers that take them are always inlined, so no vector crosses a call.
#pragma clang diagnostic ignored "-Wpsabi"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

typedef uint64_t lanes __attribute__((vector_size(64)));

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE lanes broadcast(uint64_t x) {
    lanes v = {0};
    return v + x;
}

ALWAYS_INLINE lanes rotl(lanes x, int n) { return (x << n) | (x >> (64 - n)); }

#define SIP_ROUND                                                              \
    do {                                                                       \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);              \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                 \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                 \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);              \
    } while (0)

/// SipHash-2-4 of the 16-byte message (a, b) in every lane: `SipHash.hash(k0:k1:_:_:)`.
ALWAYS_INLINE lanes siphash(lanes i0, lanes i1, lanes i2, lanes i3, lanes a, uint64_t b) {
    lanes v0 = i0, v1 = i1, v2 = i2, v3 = i3;
    v3 ^= a; SIP_ROUND; SIP_ROUND; v0 ^= a;
    v3 ^= b; SIP_ROUND; SIP_ROUND; v0 ^= b;
    const uint64_t last = (uint64_t)16 << 56;
    v3 ^= last; SIP_ROUND; SIP_ROUND; v0 ^= last;
    v2 ^= 0xFF;
    SIP_ROUND; SIP_ROUND; SIP_ROUND; SIP_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/// One pass of the network in every lane (`FeistelPermutation.encrypt`); lanes that land
/// at or above `size` walk on, the others take the next value.
ALWAYS_INLINE void kernel(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size, uint64_t *values, size_t count) {
    const uint64_t mask = ((uint64_t)1 << half_bits) - 1;
    const lanes i0 = broadcast(k0 ^ (uint64_t)0x736f6d6570736575ULL), i1 = broadcast(k1 ^ (uint64_t)0x646f72616e646f6dULL);
    const lanes i2 = broadcast(k0 ^ (uint64_t)0x6c7967656e657261ULL), i3 = broadcast(k1 ^ (uint64_t)0x7465646279746573ULL);
    lanes v = {0};
    size_t index[8];
    int active[8];
    int live = 0;
    size_t next = 0;
    for (int lane = 0; lane < 8; lane++) {
        active[lane] = next < count;
        index[lane] = next;
        if (active[lane]) { v[lane] = values[next++]; live++; }
    }
    while (live > 0) {
        lanes left = (v >> half_bits) & mask, right = v & mask;
        for (uint64_t round = 0; round < 8; round++) {
            lanes f = siphash(i0, i1, i2, i3, right, round) & mask;
            lanes t = right;
            right = left ^ f;
            left = t;
        }
        v = (left << half_bits) | right;
        for (int lane = 0; lane < 8; lane++) {
            if (!active[lane] || v[lane] >= size) continue;
            values[index[lane]] = v[lane];
            if (next < count) {
                index[lane] = next;
                v[lane] = values[next++];
            } else {
                active[lane] = 0;
                live--;
            }
        }
    }
}

static void permute_portable(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size, uint64_t *values, size_t count) {
    kernel(k0, k1, half_bits, size, values, count);
}

#if defined(__x86_64__)
__attribute__((target("avx2")))
static void permute_avx2(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size, uint64_t *values, size_t count) {
    kernel(k0, k1, half_bits, size, values, count);
}

__attribute__((target("avx512f")))
static void permute_avx512(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size, uint64_t *values, size_t count) {
    kernel(k0, k1, half_bits, size, values, count);
}

static dbq_feistel_level detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return DBQ_FEISTEL_PORTABLE;
    // The OS saves the vector registers (OSXSAVE), and the CPU has AVX.
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return DBQ_FEISTEL_PORTABLE;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return DBQ_FEISTEL_PORTABLE;
    // XMM, YMM, and (for AVX-512) the mask and upper ZMM registers enabled by the OS.
    if ((xcr0 & 0xE6) == 0xE6 && (b & (1u << 16))) return DBQ_FEISTEL_AVX512;
    if ((xcr0 & 0x06) == 0x06 && (b & (1u << 5))) return DBQ_FEISTEL_AVX2;
    return DBQ_FEISTEL_PORTABLE;
}
#else
static dbq_feistel_level detect(void) { return DBQ_FEISTEL_PORTABLE; }
#endif

dbq_feistel_level dbq_feistel_best_level(void) {
    // Every thread computes the same answer: a race writes one value twice.
    static int best = -1;
    int level = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (level < 0) {
        level = (int)detect();
        __atomic_store_n(&best, level, __ATOMIC_RELAXED);
    }
    return (dbq_feistel_level)level;
}

dbq_feistel_level dbq_feistel_permute(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size,
                                      uint64_t *values, size_t count, dbq_feistel_level level) {
    dbq_feistel_level best = dbq_feistel_best_level();
    if (level > best) level = best;
    switch (level) {
#if defined(__x86_64__)
    case DBQ_FEISTEL_AVX512: permute_avx512(k0, k1, half_bits, size, values, count); break;
    case DBQ_FEISTEL_AVX2: permute_avx2(k0, k1, half_bits, size, values, count); break;
#endif
    default: level = DBQ_FEISTEL_PORTABLE; permute_portable(k0, k1, half_bits, size, values, count); break;
    }
    return level;
}
