/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_table.c - the long table of ratings: interning of unit and rater names,
 * the scale of levels, and the per-unit layout every metric reads.
 *
 * Adding a rating is O(1) amortised (two hash lookups, one of which usually
 * hits the "same unit as last time" cache, since long-format files list a
 * unit's ratings together). Preparing is O(ratings + levels log levels):
 * a counting sort by unit, a duplicate check with a per-rater stamp, and
 * per-unit level counts. Nothing here is quadratic in units or raters.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "irr_impl.h"

#define IRR_MAX_COUNT (UINT32_MAX - 1u)

/* ---- growth helpers ---- */

static int grow(void **ptr, size_t elem, size_t need, size_t *cap)
{
    if (need <= *cap)
        return 0;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need)
        new_cap *= 2;
    void *p = realloc(*ptr, new_cap * elem);
    if (!p)
        return -1;
    *ptr = p;
    *cap = new_cap;
    return 0;
}

static int grow32(void **ptr, size_t elem, uint32_t need, uint32_t *cap)
{
    size_t c = *cap;
    if (grow(ptr, elem, need, &c) != 0)
        return -1;
    *cap = (uint32_t)(c > UINT32_MAX ? UINT32_MAX : c);
    return 0;
}

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ mix64(w)) * 0x100000001b3ULL;
        s += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, s, len);
    return mix64(h ^ tail);
}

/* ---- interning ---- */

const char *irr_intern_name(const irr_intern *in, uint32_t id, size_t *len)
{
    if (len)
        *len = in->len[id];
    return in->bytes + in->offset[id];
}

static int intern_equal(const irr_intern *in, uint32_t id, const char *s, size_t len, uint64_t h)
{
    return in->hash[id] == h && in->len[id] == len &&
           memcmp(in->bytes + in->offset[id], s, len) == 0;
}

uint32_t irr_intern_find(const irr_intern *in, const char *name, size_t len)
{
    if (in->n_slots == 0)
        return UINT32_MAX;
    uint64_t h = hash_bytes(name, len);
    size_t mask = in->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t slot = in->slots[i];
        if (slot == 0)
            return UINT32_MAX;
        if (intern_equal(in, slot - 1, name, len, h))
            return slot - 1;
    }
}

static int intern_rehash(irr_intern *in, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    size_t mask = n_slots - 1;
    for (uint32_t id = 0; id < in->count; id++) {
        size_t i = in->hash[id] & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = id + 1;
    }
    free(in->slots);
    in->slots = slots;
    in->n_slots = n_slots;
    return 0;
}

/* The id of name, adding it when new. Returns -1 on allocation failure or
 * when the id space is exhausted (*too_many set). */
static int intern_get(irr_intern *in, const char *s, size_t len, uint32_t *id, int *too_many)
{
    if (in->count > 0 && in->last < in->count && in->len[in->last] == len &&
        memcmp(in->bytes + in->offset[in->last], s, len) == 0) {
        *id = in->last;
        return 0;
    }
    uint64_t h = hash_bytes(s, len);
    if (in->n_slots == 0 || (size_t)(in->count + 1) * 2 > in->n_slots) {
        if (intern_rehash(in, in->n_slots ? in->n_slots * 2 : 64) != 0)
            return -1;
    }
    size_t mask = in->n_slots - 1;
    size_t i = h & mask;
    for (; in->slots[i]; i = (i + 1) & mask) {
        if (intern_equal(in, in->slots[i] - 1, s, len, h)) {
            *id = in->last = in->slots[i] - 1;
            return 0;
        }
    }
    if (in->count >= IRR_MAX_COUNT || len > UINT32_MAX) {
        *too_many = 1;
        return -1;
    }
    uint32_t new_id = in->count;
    /* Three parallel arrays grow together; cap is committed only when all did. */
    uint32_t cap = in->cap;
    if (grow32((void **)&in->offset, sizeof *in->offset, new_id + 1, &cap) != 0)
        return -1;
    cap = in->cap;
    if (grow32((void **)&in->len, sizeof *in->len, new_id + 1, &cap) != 0)
        return -1;
    cap = in->cap;
    if (grow32((void **)&in->hash, sizeof *in->hash, new_id + 1, &cap) != 0)
        return -1;
    in->cap = cap;
    if (grow((void **)&in->bytes, 1, in->bytes_len + len + 1, &in->bytes_cap) != 0)
        return -1;
    memcpy(in->bytes + in->bytes_len, s, len);
    in->bytes[in->bytes_len + len] = '\0';
    in->offset[new_id] = in->bytes_len;
    in->len[new_id] = (uint32_t)len;
    in->hash[new_id] = h;
    in->bytes_len += len + 1;
    in->slots[i] = new_id + 1;
    in->count++;
    *id = in->last = new_id;
    return 0;
}

static void intern_release(irr_intern *in)
{
    free(in->bytes);
    free(in->offset);
    free(in->len);
    free(in->hash);
    free(in->slots);
    memset(in, 0, sizeof *in);
}

/* ---- distinct scores ---- */

static uint64_t score_bits(double v)
{
    uint64_t b;
    if (v == 0)
        v = 0; /* -0.0 and 0.0 are one score */
    memcpy(&b, &v, sizeof b);
    return b;
}

static int values_rehash(irr_table *t, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    size_t mask = n_slots - 1;
    for (uint32_t id = 0; id < t->n_values; id++) {
        size_t i = mix64(score_bits(t->values[id])) & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = id + 1;
    }
    free(t->value_slots);
    t->value_slots = slots;
    t->n_value_slots = n_slots;
    return 0;
}

/* The id of a score; adds it when new and allowed. Returns IRR_OK,
 * IRR_ERR_SCORE (not on a declared scale) or IRR_ERR_NOMEM. */
static irr_status value_get(irr_table *t, double v, uint32_t *id)
{
    if (t->n_value_slots == 0 || (size_t)(t->n_values + 1) * 2 > t->n_value_slots) {
        if (values_rehash(t, t->n_value_slots ? t->n_value_slots * 2 : 16) != 0)
            return IRR_ERR_NOMEM;
    }
    uint64_t bits = score_bits(v);
    size_t mask = t->n_value_slots - 1;
    size_t i = mix64(bits) & mask;
    for (; t->value_slots[i]; i = (i + 1) & mask) {
        if (score_bits(t->values[t->value_slots[i] - 1]) == bits) {
            *id = t->value_slots[i] - 1;
            return IRR_OK;
        }
    }
    if (t->levels_declared)
        return IRR_ERR_SCORE;
    if (t->n_values >= IRR_MAX_COUNT)
        return IRR_ERR_TOO_MANY;
    if (grow32((void **)&t->values, sizeof *t->values, t->n_values + 1, &t->values_cap) != 0)
        return IRR_ERR_NOMEM;
    t->values[t->n_values] = v == 0 ? 0 : v;
    t->value_slots[i] = t->n_values + 1;
    *id = t->n_values++;
    return IRR_OK;
}

/* ---- public table API ---- */

const char *irr_status_str(irr_status status)
{
    switch (status) {
    case IRR_OK:
        return "ok";
    case IRR_ERR_NOMEM:
        return "out of memory";
    case IRR_ERR_SCORE:
        return "score is not a finite number on the scale";
    case IRR_ERR_LEVELS:
        return "levels must be finite, distinct and increasing";
    case IRR_ERR_STATE:
        return "levels must be declared before any rating";
    case IRR_ERR_DUPLICATE:
        return "the same rater rated the same unit twice";
    case IRR_ERR_TOO_MANY:
        return "too many ratings, units, raters or levels";
    case IRR_ERR_ARG:
        return "bad argument";
    case IRR_ERR_INPUT:
        return "malformed input";
    }
    return "unknown status";
}

irr_table *irr_table_new(void)
{
    return calloc(1, sizeof(irr_table));
}

static void unprepare(irr_table *t)
{
    free(t->levels);
    free(t->value_level);
    free(t->u_start);
    free(t->e_rater);
    free(t->e_level);
    free(t->ul_start);
    free(t->ul_level);
    free(t->ul_count);
    free(t->rater_count);
    t->levels = NULL;
    t->value_level = t->u_start = t->e_rater = t->e_level = NULL;
    t->ul_start = t->ul_level = t->ul_count = t->rater_count = NULL;
    t->n_levels = t->n_ul = 0;
    t->max_per_unit = 0;
    t->prepared = 0;
    t->has_duplicate = 0;
}

void irr_table_free(irr_table *t)
{
    if (!t)
        return;
    unprepare(t);
    intern_release(&t->units);
    intern_release(&t->raters);
    free(t->values);
    free(t->value_slots);
    free(t->r_unit);
    free(t->r_rater);
    free(t->r_value);
    free(t);
}

irr_status irr_table_set_levels(irr_table *t, const double *levels, size_t n_levels)
{
    if (!t || (!levels && n_levels))
        return IRR_ERR_ARG;
    if (t->n_ratings > 0 || t->levels_declared)
        return IRR_ERR_STATE;
    if (n_levels == 0)
        return IRR_ERR_LEVELS;
    if (n_levels > IRR_MAX_COUNT)
        return IRR_ERR_TOO_MANY;
    for (size_t i = 0; i < n_levels; i++) {
        if (!isfinite(levels[i]) || (i > 0 && !(levels[i] > levels[i - 1])))
            return IRR_ERR_LEVELS;
    }
    t->n_values = 0;
    for (size_t i = 0; i < n_levels; i++) {
        uint32_t id;
        irr_status st = value_get(t, levels[i], &id);
        if (st != IRR_OK) {
            t->n_values = 0;
            return st;
        }
    }
    t->levels_declared = 1;
    unprepare(t);
    return IRR_OK;
}

irr_status irr_table_reserve(irr_table *t, size_t n)
{
    if (!t)
        return IRR_ERR_ARG;
    if (n > IRR_MAX_COUNT - t->n_ratings)
        return IRR_ERR_TOO_MANY;
    size_t need = t->n_ratings + n;
    if (need <= t->ratings_cap)
        return IRR_OK;
    uint32_t **arrays[3] = {&t->r_unit, &t->r_rater, &t->r_value};
    for (int i = 0; i < 3; i++) {
        uint32_t *p = realloc(*arrays[i], need * sizeof **arrays[i]);
        if (!p)
            return IRR_ERR_NOMEM; /* the arrays already grown are merely larger */
        *arrays[i] = p;
    }
    t->ratings_cap = need;
    return IRR_OK;
}

irr_status irr_table_addn(irr_table *t, const char *unit, size_t unit_len, const char *rater,
                          size_t rater_len, double score)
{
    if (!t || (!unit && unit_len) || (!rater && rater_len))
        return IRR_ERR_ARG;
    if (!isfinite(score))
        return IRR_ERR_SCORE;
    if (t->n_ratings >= IRR_MAX_COUNT)
        return IRR_ERR_TOO_MANY;
    if (t->n_ratings + 1 > t->ratings_cap) {
        size_t cap = t->ratings_cap;
        if (grow((void **)&t->r_unit, sizeof(uint32_t), t->n_ratings + 1, &cap) != 0)
            return IRR_ERR_NOMEM;
        cap = t->ratings_cap;
        if (grow((void **)&t->r_rater, sizeof(uint32_t), t->n_ratings + 1, &cap) != 0)
            return IRR_ERR_NOMEM;
        cap = t->ratings_cap;
        if (grow((void **)&t->r_value, sizeof(uint32_t), t->n_ratings + 1, &cap) != 0)
            return IRR_ERR_NOMEM;
        t->ratings_cap = cap;
    }
    uint32_t value_id, unit_id, rater_id;
    irr_status st = value_get(t, score, &value_id);
    if (st != IRR_OK)
        return st;
    int too_many = 0;
    if (intern_get(&t->units, unit ? unit : "", unit_len, &unit_id, &too_many) != 0)
        return too_many ? IRR_ERR_TOO_MANY : IRR_ERR_NOMEM;
    if (intern_get(&t->raters, rater ? rater : "", rater_len, &rater_id, &too_many) != 0)
        return too_many ? IRR_ERR_TOO_MANY : IRR_ERR_NOMEM;
    t->r_unit[t->n_ratings] = unit_id;
    t->r_rater[t->n_ratings] = rater_id;
    t->r_value[t->n_ratings] = value_id;
    t->n_ratings++;
    if (t->prepared)
        unprepare(t);
    return IRR_OK;
}

irr_status irr_table_add(irr_table *t, const char *unit, const char *rater, double score)
{
    if (!unit || !rater)
        return IRR_ERR_ARG;
    return irr_table_addn(t, unit, strlen(unit), rater, strlen(rater), score);
}

irr_status irr_table_add_many(irr_table *t, const char *const *units, const char *const *raters,
                              const double *scores, size_t n)
{
    if (n && (!units || !raters || !scores))
        return IRR_ERR_ARG;
    for (size_t i = 0; i < n; i++) {
        irr_status st = irr_table_add(t, units[i], raters[i], scores[i]);
        if (st != IRR_OK)
            return st;
    }
    return IRR_OK;
}

size_t irr_table_n_ratings(const irr_table *t)
{
    return t ? t->n_ratings : 0;
}

size_t irr_table_n_units(const irr_table *t)
{
    return t ? t->units.count : 0;
}

size_t irr_table_n_raters(const irr_table *t)
{
    return t ? t->raters.count : 0;
}

int irr_table_has_rater(const irr_table *t, const char *name)
{
    return t && name && irr_intern_find(&t->raters, name, strlen(name)) != UINT32_MAX;
}

int irr_table_duplicate(const irr_table *t, size_t *index, size_t *first_index)
{
    if (!t || !t->has_duplicate)
        return 0;
    if (index)
        *index = t->dup_index;
    if (first_index)
        *first_index = t->dup_first;
    return 1;
}

const double *irr_table_levels(const irr_table *t, size_t *n_levels)
{
    if (!t || !t->prepared) {
        if (n_levels)
            *n_levels = 0;
        return NULL;
    }
    if (n_levels)
        *n_levels = t->n_levels;
    return t->levels;
}

/* ---- prepare ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The scale: declared levels are already sorted; observed ones are sorted here. */
static irr_status build_levels(irr_table *t)
{
    size_t q = t->n_values;
    t->levels = malloc((q ? q : 1) * sizeof *t->levels);
    t->value_level = malloc((q ? q : 1) * sizeof *t->value_level);
    if (!t->levels || !t->value_level)
        return IRR_ERR_NOMEM;
    if (q)
        memcpy(t->levels, t->values, q * sizeof *t->levels);
    if (!t->levels_declared)
        qsort(t->levels, q, sizeof *t->levels, cmp_double);
    /* Value ids map to positions by binary search: q log q, not per rating. */
    for (size_t id = 0; id < q; id++) {
        size_t lo = 0, hi = q;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (t->levels[mid] <= t->values[id])
                lo = mid;
            else
                hi = mid;
        }
        t->value_level[id] = (uint32_t)lo;
    }
    t->n_levels = q;
    return IRR_OK;
}

irr_status irr_table_prepare(irr_table *t)
{
    if (!t)
        return IRR_ERR_ARG;
    if (t->prepared)
        return t->has_duplicate ? IRR_ERR_DUPLICATE : IRR_OK;
    unprepare(t);
    irr_status st = IRR_ERR_NOMEM;
    size_t n = t->n_ratings, n_units = t->units.count, n_raters = t->raters.count;
    uint32_t *e_index = NULL, *stamp = NULL, *stamp_entry = NULL, *count = NULL;

    if ((st = build_levels(t)) != IRR_OK)
        goto cleanup;
    st = IRR_ERR_NOMEM;
    t->u_start = calloc(n_units + 1, sizeof *t->u_start);
    t->ul_start = calloc(n_units + 1, sizeof *t->ul_start);
    t->e_rater = malloc((n ? n : 1) * sizeof *t->e_rater);
    t->e_level = malloc((n ? n : 1) * sizeof *t->e_level);
    t->rater_count = calloc(n_raters ? n_raters : 1, sizeof *t->rater_count);
    e_index = malloc((n ? n : 1) * sizeof *e_index);
    if (!t->u_start || !t->ul_start || !t->e_rater || !t->e_level || !t->rater_count || !e_index)
        goto cleanup;

    /* Counting sort by unit; stable, so a unit's ratings keep their order. */
    for (size_t i = 0; i < n; i++) {
        t->u_start[t->r_unit[i] + 1]++;
        t->rater_count[t->r_rater[i]]++;
    }
    for (size_t u = 0; u < n_units; u++) {
        uint32_t m = t->u_start[u + 1];
        if (m > t->max_per_unit)
            t->max_per_unit = m;
        t->u_start[u + 1] += t->u_start[u];
    }
    {
        uint32_t *fill = malloc((n_units ? n_units : 1) * sizeof *fill);
        if (!fill)
            goto cleanup;
        if (n_units)
            memcpy(fill, t->u_start, n_units * sizeof *fill);
        for (size_t i = 0; i < n; i++) {
            uint32_t pos = fill[t->r_unit[i]]++;
            t->e_rater[pos] = t->r_rater[i];
            t->e_level[pos] = t->value_level[t->r_value[i]];
            e_index[pos] = (uint32_t)i;
        }
        free(fill);
    }

    /* Duplicates: a rater stamped with the current unit was seen in it. */
    stamp = malloc((n_raters ? n_raters : 1) * sizeof *stamp);
    stamp_entry = malloc((n_raters ? n_raters : 1) * sizeof *stamp_entry);
    if (!stamp || !stamp_entry)
        goto cleanup;
    for (size_t r = 0; r < n_raters; r++)
        stamp[r] = UINT32_MAX;
    for (size_t u = 0; u < n_units; u++) {
        for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++) {
            uint32_t r = t->e_rater[e];
            if (stamp[r] == u) {
                if (!t->has_duplicate || e_index[e] < t->dup_index) {
                    t->has_duplicate = 1;
                    t->dup_index = e_index[e];
                    t->dup_first = e_index[stamp_entry[r]];
                }
            } else {
                stamp[r] = (uint32_t)u;
                stamp_entry[r] = e;
            }
        }
    }
    if (t->has_duplicate) {
        /* Keep the finding; the layout is unusable. */
        size_t dup = t->dup_index, first = t->dup_first;
        unprepare(t);
        t->has_duplicate = 1;
        t->dup_index = dup;
        t->dup_first = first;
        t->prepared = 1;
        st = IRR_ERR_DUPLICATE;
        goto cleanup;
    }

    /* Per-unit distinct levels with counts, sorted by level. A scratch count
     * per level plus the list of levels touched keeps this O(ratings). */
    count = calloc(t->n_levels ? t->n_levels : 1, sizeof *count);
    t->ul_level = malloc((n ? n : 1) * sizeof *t->ul_level);
    t->ul_count = malloc((n ? n : 1) * sizeof *t->ul_count);
    if (!count || !t->ul_level || !t->ul_count)
        goto cleanup;
    size_t n_ul = 0;
    for (size_t u = 0; u < n_units; u++) {
        size_t first = n_ul;
        for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++) {
            uint32_t c = t->e_level[e];
            if (count[c]++ == 0)
                t->ul_level[n_ul++] = c;
        }
        size_t d = n_ul - first;
        uint32_t *lv = t->ul_level + first;
        if (d > 16) {
            qsort(lv, d, sizeof *lv, cmp_u32);
        } else {
            for (size_t i = 1; i < d; i++) {
                uint32_t x = lv[i];
                size_t j = i;
                for (; j > 0 && lv[j - 1] > x; j--)
                    lv[j] = lv[j - 1];
                lv[j] = x;
            }
        }
        for (size_t i = first; i < n_ul; i++) {
            t->ul_count[i] = count[t->ul_level[i]];
            count[t->ul_level[i]] = 0;
        }
        t->ul_start[u + 1] = (uint32_t)n_ul;
    }
    t->n_ul = n_ul;
    t->prepared = 1;
    st = IRR_OK;

cleanup:
    free(e_index);
    free(stamp);
    free(stamp_entry);
    free(count);
    if (st != IRR_OK && st != IRR_ERR_DUPLICATE)
        unprepare(t);
    return st;
}
