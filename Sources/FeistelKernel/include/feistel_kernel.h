#ifndef DBQ_FEISTEL_KERNEL_H
#define DBQ_FEISTEL_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/// The vector units dbq_feistel_permute can run on: what this CPU supports, best first.
typedef enum {
    DBQ_FEISTEL_PORTABLE = 0, ///< Eight lanes in whatever vectors the baseline target has.
    DBQ_FEISTEL_AVX2 = 1,     ///< Eight lanes in two 256-bit vectors.
    DBQ_FEISTEL_AVX512 = 2,   ///< Eight lanes in one 512-bit vector, rotations in one instruction.
} dbq_feistel_level;

/// The best level this CPU (and its operating system) supports.
dbq_feistel_level dbq_feistel_best_level(void);

/// Replaces each of `values[0..<count]` (each below `size`) by its image under the keyed
/// Feistel permutation of `0..<size` that Anonymization's `FeistelPermutation` computes:
/// eight rounds of SipHash-2-4 under (k0, k1) on halves of `half_bits` bits (1…32),
/// walking cycles until the value falls below `size`. Eight values are permuted side by
/// side, at `level` or the best level below it that the CPU supports; returns the level
/// used.
dbq_feistel_level dbq_feistel_permute(uint64_t k0, uint64_t k1, unsigned half_bits, uint64_t size,
                                      uint64_t *values, size_t count, dbq_feistel_level level);

#endif
