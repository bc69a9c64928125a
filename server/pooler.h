/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pooler.h - running behind a transaction-pooling PgBouncer.
 *
 * PgBouncer 1.18 (Debian 12's) in pool_mode = transaction gives each
 * transaction whichever server connection is free, so nothing may live in a
 * database session between two statements:
 *  - no protocol-level prepared statements: with --db-prepared 0 the pools
 *    send each statement's text with its parameters (pgpool.h);
 *  - no session settings: statement_timeout, idle_in_transaction_session_
 *    timeout and the settings the SQL functions read (accord.max_releases,
 *    accord.random_seed), which otherwise travel as SET and PGOPTIONS, become
 *    defaults of accord's role in its database (ALTER ROLE ... IN DATABASE);
 *  - no session-level advisory lock or LISTEN: migrations, the settings
 *    above and the credential-revocation listener use --direct-database-url
 *    (PostgreSQL itself, or a session-mode pool).
 * Every SQL function is one transaction and takes only transaction-level
 * advisory locks, so the rest needs nothing else.
 */
#ifndef ACCORD_POOLER_H
#define ACCORD_POOLER_H

#include "config.h"

/*
 * With --db-prepared 0: writes the session settings as defaults of the
 * current role in the current database, through the direct URL. Blocking
 * (start-up only). Logs why and returns -1 on failure.
 */
int pooler_apply_settings(const struct config *cfg) __attribute__((warn_unused_result));

#endif
