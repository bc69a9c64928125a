/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrate.h - applying the embedded migrations, and the blocking database
 * connection the command-line tools use (never used on an event loop).
 */
#ifndef ACCORD_MIGRATE_H
#define ACCORD_MIGRATE_H

#include <stdbool.h>

/*
 * Applies every migration not yet recorded in schema_migrations, each in its
 * own transaction, under an advisory lock so that several servers starting
 * at once apply each migration exactly once. Returns the number applied, or
 * -1 after logging why.
 */
int migrate_apply(const char *conninfo, bool verbose);

#endif
