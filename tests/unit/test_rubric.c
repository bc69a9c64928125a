/* SPDX-License-Identifier: Apache-2.0 */
/* test_rubric.c - rubric validation and the verdict rule. */
#include <string.h>

#include "check.h"
#include "rubric.h"

static struct rubric_level four_levels[4][4];
static struct rubric_criterion criteria[4];
static const char *const keys[4] = {"structure", "sel", "voice", "reflection"};

/* The story's rubric: "Morning Meeting for SEL", 4 criteria, levels 1..4. */
static struct rubric morning_meeting(void)
{
    static const char *const labels[4] = {"Not yet", "Approaching", "Meets", "Exceeds"};
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 4; k++)
            four_levels[i][k] = (struct rubric_level){k + 1, labels[k], NULL};
        criteria[i] = (struct rubric_criterion){keys[i], "A criterion", NULL, four_levels[i], 4};
    }
    return (struct rubric){"Morning Meeting for SEL", NULL, criteria, 4};
}

static void test_valid_rubric(void)
{
    char err[200] = "";
    struct rubric r = morning_meeting();
    CHECK(rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "");
}

static void test_invalid_rubrics(void)
{
    char err[200];
    struct rubric r = morning_meeting();

    r.title = "";
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "title must be 1 to 200 characters");

    r = morning_meeting();
    r.n_criteria = 0;
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "a rubric needs 1 to 32 criteria, got 0");

    r = morning_meeting();
    criteria[2].key = "sel";
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion key 'sel' appears twice");

    r = morning_meeting();
    criteria[0].key = "Bad Key";
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK(strstr(err, "criterion 1: key must be") == err);

    r = morning_meeting();
    four_levels[1][3].value = 2;
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion 'sel': level value 2 appears twice");

    r = morning_meeting();
    criteria[3].n_levels = 1;
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion 'reflection': needs 2 to 10 levels, got 1");

    r = morning_meeting();
    four_levels[0][0].value = 101;
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion 'structure': level value 101 is outside 0..100");

    r = morning_meeting();
    four_levels[0][1].label = "";
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion 'structure': level 2 needs a label of 1 to 100 characters");

    /* level descriptions (issue 11): optional, bounded */
    static char long_text[RUBRIC_MAX_LEVEL_DESCRIPTION + 2];
    memset(long_text, 'x', sizeof long_text - 1);
    r = morning_meeting();
    four_levels[2][1].description = "Students speak, but mostly to the teacher.";
    CHECK(rubric_validate(&r, err, sizeof err));
    long_text[RUBRIC_MAX_LEVEL_DESCRIPTION] = '\0';
    four_levels[2][1].description = long_text;
    CHECK(rubric_validate(&r, err, sizeof err));
    long_text[RUBRIC_MAX_LEVEL_DESCRIPTION] = 'x';
    CHECK(!rubric_validate(&r, err, sizeof err));
    CHECK_STR(err, "criterion 'voice': level 2: description must be at most 2000 characters");
}

static void test_sort_levels(void)
{
    struct rubric r = morning_meeting();
    four_levels[0][0].value = 4;
    four_levels[0][3].value = 1;
    rubric_sort_levels(&r);
    CHECK(four_levels[0][0].value == 1);
    CHECK(four_levels[0][3].value == 4);
    CHECK_STR(four_levels[0][0].label, "Exceeds"); /* labels travel with their values */
}

static void test_pass_rule(void)
{
    char err[200];
    struct rubric r = morning_meeting();
    struct pass_rule ok = {3}, bad = {7};
    CHECK(pass_rule_validate(&r, &ok, err, sizeof err));
    CHECK(!pass_rule_validate(&r, &bad, err, sizeof err));
    CHECK_STR(err, "min_level_each 7 is not a level of criterion 'structure'");
}

static void test_verdicts(void)
{
    char err[200];
    struct rubric r = morning_meeting();
    struct pass_rule rule = {3};
    /* The story, attempt 1: three at Meets, student voice at Approaching. */
    struct criterion_score first[4] = {
        {"structure", 3}, {"sel", 3}, {"voice", 2}, {"reflection", 3}};
    struct criterion_score second[4] = {
        {"reflection", 4}, {"voice", 3}, {"sel", 3}, {"structure", 3}};
    struct criterion_score dup[4] = {{"structure", 3}, {"sel", 3}, {"sel", 3}, {"reflection", 3}};
    struct criterion_score unknown[4] = {
        {"structure", 3}, {"sel", 3}, {"nope", 3}, {"reflection", 3}};
    struct criterion_score out_of_range[4] = {
        {"structure", 5}, {"sel", 3}, {"voice", 3}, {"reflection", 3}};

    CHECK(rubric_verdict(&r, &rule, first, 4, err, sizeof err) == VERDICT_RESUBMIT);
    CHECK(rubric_verdict(&r, &rule, second, 4, err, sizeof err) == VERDICT_PASS);
    CHECK(rubric_verdict(&r, &rule, first, 3, err, sizeof err) == VERDICT_INVALID);
    CHECK_STR(err, "criterion 'reflection' is not scored");
    CHECK(rubric_verdict(&r, &rule, dup, 4, err, sizeof err) == VERDICT_INVALID);
    CHECK_STR(err, "criterion 'sel' is scored twice");
    CHECK(rubric_verdict(&r, &rule, unknown, 4, err, sizeof err) == VERDICT_INVALID);
    CHECK_STR(err, "unknown criterion 'nope'");
    CHECK(rubric_verdict(&r, &rule, out_of_range, 4, err, sizeof err) == VERDICT_INVALID);
    CHECK_STR(err, "criterion 'structure' has no level 5");
    /* The cut itself passes: "at 3 or above". */
    struct criterion_score at_cut[4] = {
        {"structure", 3}, {"sel", 3}, {"voice", 3}, {"reflection", 3}};
    CHECK(rubric_verdict(&r, &rule, at_cut, 4, err, sizeof err) == VERDICT_PASS);
}

int main(void)
{
    RUN(test_valid_rubric);
    RUN(test_invalid_rubrics);
    RUN(test_sort_levels);
    RUN(test_pass_rule);
    RUN(test_verdicts);
    return check_summary("rubric");
}
