/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrations.h - the schema migrations compiled into the binary
 * (build/gen/migrations.c, generated from the SQL files in db/migrations by db/embed.awk).
 */
#ifndef ACCORD_MIGRATIONS_H
#define ACCORD_MIGRATIONS_H

struct migration {
    const char *version; /* file name without .sql, e.g. "001_schema" */
    const char *sql;
};

extern const struct migration migrations[];
extern const int migration_count;

#endif
