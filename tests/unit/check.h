/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.h - the smallest unit-test harness that does the job.
 *
 * Each test binary includes this once, writes `static void test_x(void)`
 * functions that use CHECK*, and calls them from main() through RUN().
 * main() ends with `return check_summary("name");`, which prints the closing
 * line "N passed, N failed" and returns the exit status.
 */
#ifndef ACCORD_TESTS_CHECK_H
#define ACCORD_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_current = "";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s (%s:%d): %s\n", check_current, __FILE__, __LINE__, #cond);    \
        }                                                                                          \
    } while (0)

/* |got - want| <= tol; prints both numbers on failure. */
#define CHECK_NEAR(got, want, tol)                                                                 \
    do {                                                                                           \
        double check_g_ = (got), check_w_ = (want);                                                \
        if (fabs(check_g_ - check_w_) <= (tol)) {                                                  \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s (%s:%d): %s = %.10g, want %.10g (tol %g)\n", check_current,   \
                    __FILE__, __LINE__, #got, check_g_, check_w_, (double)(tol));                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *check_g_ = (got), *check_w_ = (want);                                          \
        if (check_g_ && check_w_ && strcmp(check_g_, check_w_) == 0) {                             \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s (%s:%d): %s = \"%s\", want \"%s\"\n", check_current,          \
                    __FILE__, __LINE__, #got, check_g_ ? check_g_ : "(null)",                      \
                    check_w_ ? check_w_ : "(null)");                                               \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        check_current = #fn;                                                                       \
        fn();                                                                                      \
    } while (0)

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif
