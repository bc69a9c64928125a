/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rubric.h - the rubric model, its validation, and the verdict rule.
 *
 * Pure C: no I/O, no globals, no allocation. Callers (the server, tests,
 * benchmarks) build the structs from whatever they parsed and keep ownership
 * of every string and array; these functions only read them.
 *
 * A rubric has 1..RUBRIC_MAX_CRITERIA criteria; each criterion has a key
 * (1..64 chars of [a-z0-9_-], unique in the rubric), a title, an optional
 * description and 2..RUBRIC_MAX_LEVELS levels with distinct integer values in
 * [RUBRIC_LEVEL_MIN, RUBRIC_LEVEL_MAX], non-empty labels and optional descriptions
 * (at most RUBRIC_MAX_LEVEL_DESCRIPTION characters).
 */
#ifndef ACCORD_RUBRIC_H
#define ACCORD_RUBRIC_H

#include <stdbool.h>
#include <stddef.h>

#define RUBRIC_MAX_CRITERIA          32
#define RUBRIC_MAX_LEVELS            10
#define RUBRIC_LEVEL_MIN             0
#define RUBRIC_LEVEL_MAX             100
#define RUBRIC_MAX_KEY               64
#define RUBRIC_MAX_TITLE             200
#define RUBRIC_MAX_LABEL             100
#define RUBRIC_MAX_DESCRIPTION       5000
#define RUBRIC_MAX_LEVEL_DESCRIPTION 2000

struct rubric_level {
    int value;
    const char *label;
    const char *description; /* may be NULL: what work at this level looks like */
};

struct rubric_criterion {
    const char *key;
    const char *title;
    const char *description; /* may be NULL */
    struct rubric_level *levels;
    size_t n_levels;
};

struct rubric {
    const char *title;
    const char *description; /* may be NULL */
    struct rubric_criterion *criteria;
    size_t n_criteria;
};

/*
 * Checks every rule above. Returns true when valid; otherwise false with a
 * sentence a person can act on in err (always NUL-terminated, truncated to
 * err_len), e.g. "criterion 'voice': level value 3 appears twice".
 */
bool rubric_validate(const struct rubric *rubric, char *err, size_t err_len);

/* Sorts each criterion's levels by ascending value (in place). */
void rubric_sort_levels(struct rubric *rubric);

/* The index of the criterion with this key, or -1. */
int rubric_find_criterion(const struct rubric *rubric, const char *key);

/* True when value is one of criterion's level values. */
bool rubric_level_exists(const struct rubric_criterion *criterion, int value);

/* A credential's decision rule: pass when every criterion is at min_level_each or above. */
struct pass_rule {
    int min_level_each;
};

/* One criterion's score, by criterion key. */
struct criterion_score {
    const char *criterion;
    int level;
};

enum verdict { VERDICT_INVALID = -1, VERDICT_RESUBMIT = 0, VERDICT_PASS = 1 };

/*
 * The rule's level must be on the scale of every criterion (otherwise a
 * criterion could pass or fail by a value it can never take). Returns true
 * when usable, else false with the reason in err.
 */
bool pass_rule_validate(const struct rubric *rubric, const struct pass_rule *rule, char *err,
                        size_t err_len);

/*
 * Checks a score set (every criterion exactly once, at one of its levels) and
 * applies the rule. Returns VERDICT_INVALID with the reason in err when the
 * scores are not a complete, valid set.
 */
enum verdict rubric_verdict(const struct rubric *rubric, const struct pass_rule *rule,
                            const struct criterion_score *scores, size_t n_scores, char *err,
                            size_t err_len);

#endif
