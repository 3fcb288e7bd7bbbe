/* t.h: the in-house test runner. Tests register themselves with TEST(name); CHECK macros
 * report file:line and the values involved and let the test go on; the runner prints
 * "N passed, N failed, N skipped" and exits 1 when anything failed. Tests named final_* run
 * after all others. */
#ifndef SAED_T_H
#define SAED_T_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*t_fn)(void);
void t_register(const char *name, t_fn fn);
void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int t_failed_now(void); /* failures so far in the running test */

#define TEST(name)                                                              \
    static void name(void);                                                     \
    __attribute__((constructor)) static void t_reg_##name(void) { t_register(#name, name); } \
    static void name(void)

#define CHECK(c) do { if (!(c)) t_fail(__FILE__, __LINE__, "CHECK(%s)", #c); } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) t_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_)) t_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
    if (!h_ || !strstr(h_, n_)) t_fail(__FILE__, __LINE__, "%s contains \"%s\": got \"%.400s\"", #hay, n_, h_ ? h_ : "(null)"); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (tol))) t_fail(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); } while (0)

#endif
