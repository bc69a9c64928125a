/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_irr.c - `accord irr [options] FILE.csv|-`: reliability statistics of a
 * long-format ratings file, as one JSON object on standard output.
 *
 * A thin shell over rubric/irr.h: read the bytes, hand them to irr_load_csv,
 * compute, and shape the result with jansson. Exit 0 ok, 2 usage or input
 * error (the message names the line), 1 runtime failure.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "irr_json.h"
#include "irr.h"

static const char irr_usage[] =
    "usage: accord irr [options] FILE.csv   (or - for standard input)\n"
    "  input: CSV with the header unit,rater,score, one rating per row\n"
    "  --levels 1,2,3,4   the full ordered scale (default: the observed scores)\n"
    "  --ci               standard errors and 95% confidence intervals\n"
    "  --bootstrap N      bootstrap replicates for --ci, 200 to 1000000 (default 1000)\n"
    "  --seed S           bootstrap seed (default 1): same seed, same intervals\n"
    "  --threads N        bootstrap threads, 1 to 64 (default: the cores, at most 8);\n"
    "                     the results do not depend on it\n"
    "  --by-rater         one row per rater: mean, severity, agreement\n"
    "  --reference R      per-rater severity and agreement against rater R\n";

/* The whole file (or stdin) in a malloc'd buffer; NULL with errno on failure. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (cap - n < 65536) {
            size_t new_cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, new_cap);
            if (!p) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                goto done;
            }
            buf = p;
            cap = new_cap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                int saved = errno ? errno : EIO;
                free(buf);
                buf = NULL;
                errno = saved;
            }
            break;
        }
    }
done:
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
}

/* "1,2,3,4" into a malloc'd array; -1 when malformed. */
static int parse_levels(const char *text, double **levels, size_t *n)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    double *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || (*end != ',' && *end != '\0')) {
            free(v);
            return -1;
        }
        v[k++] = x;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *levels = v;
    *n = k;
    return 0;
}

static int parse_count(const char *text, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*text == '-' || *text == '\0')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Long options only: values outside the char range, so that no message can
 * name an internal short option ("option -c"). */
enum {
    OPT_LEVELS = 256,
    OPT_CI,
    OPT_BOOTSTRAP,
    OPT_SEED,
    OPT_THREADS,
    OPT_BY_RATER,
    OPT_REFERENCE
};

static const struct option long_options[] = {
    {"levels", required_argument, NULL, OPT_LEVELS},
    {"ci", no_argument, NULL, OPT_CI},
    {"bootstrap", required_argument, NULL, OPT_BOOTSTRAP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"by-rater", no_argument, NULL, OPT_BY_RATER},
    {"reference", required_argument, NULL, OPT_REFERENCE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int val)
{
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == val)
            return o->name;
    return NULL;
}

/* What getopt_long refused, in the user's words. */
static void option_error(int c, char *const *argv)
{
    const char *given = optind > 0 ? argv[optind - 1] : "";
    const char *name = option_name(optopt);
    if (c == ':' && name)
        fprintf(stderr, "accord irr: --%s needs a value\n", name);
    else if (name)
        fprintf(stderr, "accord irr: --%s takes no value (got \"%s\")\n", name, given);
    else if (optopt > 0 && optopt < 256)
        fprintf(stderr, "accord irr: unknown option \"-%c\"\n", optopt);
    else
        fprintf(stderr, "accord irr: unknown option \"%s\"\n", given);
}

/* Bootstrap threads when not told: the cores, at most 8. */
static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

int cmd_irr(int argc, char **argv)
{
    int status = 1;
    irr_options o;
    irr_table *table = NULL;
    irr_result result;
    int have_result = 0;
    double *levels = NULL;
    size_t n_levels = 0;
    char *buf = NULL;
    json_t *root = NULL;

    irr_options_init(&o);
    o.threads = default_threads();
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        unsigned long long v;
        switch (c) {
        case OPT_LEVELS:
            free(levels);
            levels = NULL;
            if (parse_levels(optarg, &levels, &n_levels) != 0) {
                fprintf(stderr, "accord irr: --levels wants numbers like 1,2,3,4, got \"%s\"\n",
                        optarg);
                status = 2;
                goto cleanup;
            }
            break;
        case OPT_CI:
            o.ci = 1;
            break;
        case OPT_BOOTSTRAP:
            if (parse_count(optarg, IRR_BOOTSTRAP_MAX, &v) != 0 || v < IRR_BOOTSTRAP_MIN) {
                fprintf(stderr, "accord irr: --bootstrap wants a count from %u to %u, got \"%s\"\n",
                        IRR_BOOTSTRAP_MIN, IRR_BOOTSTRAP_MAX, optarg);
                status = 2;
                goto cleanup;
            }
            o.bootstrap = (unsigned)v;
            break;
        case OPT_THREADS:
            if (parse_count(optarg, 64, &v) != 0 || v < 1) {
                fprintf(stderr, "accord irr: --threads wants a count from 1 to 64, got \"%s\"\n",
                        optarg);
                status = 2;
                goto cleanup;
            }
            o.threads = (unsigned)v;
            break;
        case OPT_SEED:
            if (parse_count(optarg, UINT64_MAX, &v) != 0) {
                fprintf(stderr, "accord irr: --seed wants a non-negative integer\n");
                status = 2;
                goto cleanup;
            }
            o.seed = v;
            break;
        case OPT_BY_RATER:
            o.by_rater = 1;
            break;
        case OPT_REFERENCE:
            o.reference = optarg;
            break;
        case 'h':
            fputs(irr_usage, stdout);
            status = 0;
            goto cleanup;
        default:
            option_error(c, argv);
            fputs(irr_usage, stderr);
            status = 2;
            goto cleanup;
        }
    }
    if (argc - optind != 1) {
        fputs(irr_usage, stderr);
        status = 2;
        goto cleanup;
    }
    const char *path = argv[optind];
    const char *shown = strcmp(path, "-") == 0 ? "<stdin>" : path;

    size_t len = 0;
    buf = read_all(path, &len);
    if (!buf) {
        fprintf(stderr, "accord irr: %s: %s\n", shown, strerror(errno));
        status = errno == ENOMEM ? 1 : 2;
        goto cleanup;
    }
    table = irr_table_new();
    if (!table) {
        fprintf(stderr, "accord irr: out of memory\n");
        goto cleanup;
    }
    if (levels) {
        irr_status st = irr_table_set_levels(table, levels, n_levels);
        if (st != IRR_OK) {
            fprintf(stderr, "accord irr: --levels: %s\n", irr_status_str(st));
            status = 2;
            goto cleanup;
        }
    }
    irr_load_error err;
    irr_status st = irr_load_csv(table, buf, len, &err);
    free(buf);
    buf = NULL;
    if (st != IRR_OK) {
        if (err.line)
            fprintf(stderr, "accord irr: %s:%zu: %s\n", shown, err.line, err.message);
        else
            fprintf(stderr, "accord irr: %s: %s\n", shown, err.message);
        status = st == IRR_ERR_NOMEM ? 1 : 2;
        goto cleanup;
    }
    if (o.reference && !irr_table_has_rater(table, o.reference)) {
        fprintf(stderr, "accord irr: --reference: no rater \"%s\" in %s\n", o.reference, shown);
        status = 2;
        goto cleanup;
    }
    double work = 0;
    irr_bootstrap_work(table, &o, &work);
    if (work > IRR_BOOTSTRAP_WORK_MAX) {
        fprintf(stderr,
                "accord irr: --bootstrap %u on %zu units means about %.3g random draws, over the "
                "limit of %.3g (about a minute); ask for fewer replicates\n",
                o.bootstrap, irr_table_n_units(table), work, IRR_BOOTSTRAP_WORK_MAX);
        status = 2;
        goto cleanup;
    }
    if (work > IRR_BOOTSTRAP_WORK_MAX / 20)
        fprintf(stderr,
                "accord irr: note: the bootstrap takes about %.3g random draws; "
                "this takes a while\n",
                work);
    st = irr_compute(table, &o, &result);
    if (st != IRR_OK) {
        fprintf(stderr, "accord irr: %s\n", irr_status_str(st));
        goto cleanup;
    }
    have_result = 1;
    int bad_name = 0;
    root = irr_result_json(&result, &o, &bad_name);
    if (!root) {
        fprintf(stderr, "accord irr: %s\n",
                bad_name ? "a rater name is not valid UTF-8" : "out of memory building JSON");
        status = bad_name ? 2 : 1;
        goto cleanup;
    }
    if (json_dumpf(root, stdout, JSON_REAL_PRECISION(15)) != 0 || fputc('\n', stdout) == EOF ||
        fflush(stdout) != 0) {
        fprintf(stderr, "accord irr: writing the result: %s\n", strerror(errno));
        goto cleanup;
    }
    status = 0;
cleanup:
    json_decref(root);
    if (have_result)
        irr_result_release(&result);
    irr_table_free(table);
    free(levels);
    free(buf);
    return status;
}
