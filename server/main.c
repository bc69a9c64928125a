/*
 * main.c - the `accord` command: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

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

static void usage(void)
{
    fprintf(stderr, "usage: accord <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(stderr, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "accord: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
}
