/*
 * rng.h - the only source of randomness: a seeded xoshiro256** generator.
 * Its whole state is four words, so jobs can checkpoint and restore it.
 */
#ifndef CTNAS_RNG_H
#define CTNAS_RNG_H

#include <stdint.h>

struct ctnas_rng {
    uint64_t s[4];
};

/* Seed deterministically (splitmix64 expansion of seed). */
void ctnas_rng_seed(struct ctnas_rng *rng, uint64_t seed);
uint64_t ctnas_rng_next(struct ctnas_rng *rng);
/* Uniform in [0, n), unbiased; n > 0. */
uint32_t ctnas_rng_below(struct ctnas_rng *rng, uint32_t n);
/* Uniform double in [0, 1). */
double ctnas_rng_uniform(struct ctnas_rng *rng);
/* Standard normal (Box-Muller, no cached second value: state is s only). */
double ctnas_rng_normal(struct ctnas_rng *rng);
/* Fisher-Yates shuffle of n ints. */
void ctnas_rng_shuffle(struct ctnas_rng *rng, int *a, int n);

#endif
