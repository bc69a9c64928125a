/* SPDX-License-Identifier: Apache-2.0 */
/*
 * commands.h - the subcommands of the `accord` binary.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand
 * name, as getopt expects) and returns the process exit status:
 * 0 success, 1 runtime failure, 2 usage or input error.
 */
#ifndef ACCORD_COMMANDS_H
#define ACCORD_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_irr(int argc, char **argv);
int cmd_keys(int argc, char **argv);

#endif
