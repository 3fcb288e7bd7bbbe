/* steer_fixture.h: an SAE whose decoder rows are not unit vectors, so that tests can tell the
 * raw W_dec row (what steering uses) from the decoder-norm-folded one (what the engine cache
 * computes with). Defined in unit_steer.c. */
#ifndef SAED_TESTS_STEER_FIXTURE_H
#define SAED_TESTS_STEER_FIXTURE_H

/* Copies tests/data/sae/tiny-a-res-standard to dir (created) with W_dec row i scaled by
 * 1 + i % 5 and W_enc column i by the inverse (the same reconstruction). 0 or -1. */
int steer_fixture_scaled_sae(const char *dir);

#endif
