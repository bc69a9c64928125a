/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - the `accord` command: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "commands.h"
#include "version.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} subcommands[] = {
    {"serve", cmd_serve, "run the HTTP server"},
    {"migrate", cmd_migrate, "apply database migrations"},
    {"user", cmd_user, "user add / invite / password (accord user for details)"},
    {"token", cmd_token, "token create / revoke (accord token for details)"},
    {"keys", cmd_keys, "keys rotate [--revoke-old] (a new badge signing key)"},
    {"irr", cmd_irr, "inter-rater reliability statistics of a unit,rater,score CSV"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: accord <command> [options]\n"
                 "       accord <command> --help\n"
                 "       accord --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
}

static void version(void)
{
    int pq = PQlibVersion();
    printf("accord %s\nlibevent %s, libpq %d.%d, jansson %s\n", ACCORD_VERSION, event_get_version(),
           pq / 10000, pq % 10000, jansson_version_str());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        version();
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "accord: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
