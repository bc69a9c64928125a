/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rubric.c - rubric validation and the verdict rule.
 *
 * Everything here is bounded by the RUBRIC_MAX_* limits, so the small
 * quadratic checks (duplicate keys, duplicate level values) cost at most a
 * few thousand comparisons and need no allocation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rubric.h"

static bool fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (err && err_len) {
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool valid_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > RUBRIC_MAX_KEY)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool text_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= max;
}

bool rubric_validate(const struct rubric *r, char *err, size_t err_len)
{
    if (!text_ok(r->title, RUBRIC_MAX_TITLE))
        return fail(err, err_len, "title must be 1 to %d characters", RUBRIC_MAX_TITLE);
    if (r->description && strlen(r->description) > RUBRIC_MAX_DESCRIPTION)
        return fail(err, err_len, "description must be at most %d characters",
                    RUBRIC_MAX_DESCRIPTION);
    if (r->n_criteria < 1 || r->n_criteria > RUBRIC_MAX_CRITERIA)
        return fail(err, err_len, "a rubric needs 1 to %d criteria, got %zu", RUBRIC_MAX_CRITERIA,
                    r->n_criteria);
    for (size_t i = 0; i < r->n_criteria; i++) {
        const struct rubric_criterion *c = &r->criteria[i];
        if (!valid_key(c->key))
            return fail(err, err_len,
                        "criterion %zu: key must be 1 to %d characters of a-z, 0-9, '_' or '-'",
                        i + 1, RUBRIC_MAX_KEY);
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->criteria[j].key, c->key) == 0)
                return fail(err, err_len, "criterion key '%s' appears twice", c->key);
        if (!text_ok(c->title, RUBRIC_MAX_TITLE))
            return fail(err, err_len, "criterion '%s': title must be 1 to %d characters", c->key,
                        RUBRIC_MAX_TITLE);
        if (c->description && strlen(c->description) > RUBRIC_MAX_DESCRIPTION)
            return fail(err, err_len, "criterion '%s': description must be at most %d characters",
                        c->key, RUBRIC_MAX_DESCRIPTION);
        if (c->n_levels < 2 || c->n_levels > RUBRIC_MAX_LEVELS)
            return fail(err, err_len, "criterion '%s': needs 2 to %d levels, got %zu", c->key,
                        RUBRIC_MAX_LEVELS, c->n_levels);
        for (size_t k = 0; k < c->n_levels; k++) {
            const struct rubric_level *l = &c->levels[k];
            if (l->value < RUBRIC_LEVEL_MIN || l->value > RUBRIC_LEVEL_MAX)
                return fail(err, err_len, "criterion '%s': level value %d is outside %d..%d",
                            c->key, l->value, RUBRIC_LEVEL_MIN, RUBRIC_LEVEL_MAX);
            if (!text_ok(l->label, RUBRIC_MAX_LABEL))
                return fail(err, err_len,
                            "criterion '%s': level %d needs a label of 1 to %d characters", c->key,
                            l->value, RUBRIC_MAX_LABEL);
            if (l->description && strlen(l->description) > RUBRIC_MAX_LEVEL_DESCRIPTION)
                return fail(err, err_len,
                            "criterion '%s': level %d: description must be at most %d characters",
                            c->key, l->value, RUBRIC_MAX_LEVEL_DESCRIPTION);
            for (size_t m = 0; m < k; m++)
                if (c->levels[m].value == l->value)
                    return fail(err, err_len, "criterion '%s': level value %d appears twice",
                                c->key, l->value);
        }
    }
    return true;
}

static int compare_levels(const void *a, const void *b)
{
    const struct rubric_level *x = a, *y = b;
    return (x->value > y->value) - (x->value < y->value);
}

void rubric_sort_levels(struct rubric *r)
{
    for (size_t i = 0; i < r->n_criteria; i++)
        qsort(r->criteria[i].levels, r->criteria[i].n_levels, sizeof(struct rubric_level),
              compare_levels);
}

int rubric_find_criterion(const struct rubric *r, const char *key)
{
    for (size_t i = 0; i < r->n_criteria; i++)
        if (key && strcmp(r->criteria[i].key, key) == 0)
            return (int)i;
    return -1;
}

bool rubric_level_exists(const struct rubric_criterion *c, int value)
{
    for (size_t k = 0; k < c->n_levels; k++)
        if (c->levels[k].value == value)
            return true;
    return false;
}

bool pass_rule_validate(const struct rubric *r, const struct pass_rule *rule, char *err,
                        size_t err_len)
{
    for (size_t i = 0; i < r->n_criteria; i++)
        if (!rubric_level_exists(&r->criteria[i], rule->min_level_each))
            return fail(err, err_len, "min_level_each %d is not a level of criterion '%s'",
                        rule->min_level_each, r->criteria[i].key);
    return true;
}

enum verdict rubric_verdict(const struct rubric *r, const struct pass_rule *rule,
                            const struct criterion_score *scores, size_t n_scores, char *err,
                            size_t err_len)
{
    bool seen[RUBRIC_MAX_CRITERIA] = {false};
    bool pass = true;

    if (r->n_criteria > RUBRIC_MAX_CRITERIA) {
        fail(err, err_len, "the rubric has too many criteria");
        return VERDICT_INVALID;
    }
    for (size_t i = 0; i < n_scores; i++) {
        int idx = rubric_find_criterion(r, scores[i].criterion);
        if (idx < 0) {
            fail(err, err_len, "unknown criterion '%s'",
                 scores[i].criterion ? scores[i].criterion : "(none)");
            return VERDICT_INVALID;
        }
        if (seen[idx]) {
            fail(err, err_len, "criterion '%s' is scored twice", scores[i].criterion);
            return VERDICT_INVALID;
        }
        seen[idx] = true;
        if (!rubric_level_exists(&r->criteria[idx], scores[i].level)) {
            fail(err, err_len, "criterion '%s' has no level %d", scores[i].criterion,
                 scores[i].level);
            return VERDICT_INVALID;
        }
        if (scores[i].level < rule->min_level_each)
            pass = false;
    }
    for (size_t i = 0; i < r->n_criteria; i++)
        if (!seen[i]) {
            fail(err, err_len, "criterion '%s' is not scored", r->criteria[i].key);
            return VERDICT_INVALID;
        }
    return pass ? VERDICT_PASS : VERDICT_RESUBMIT;
}
