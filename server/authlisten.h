/* SPDX-License-Identifier: Apache-2.0 */
/*
 * authlisten.h - the auth gate's use of the process's LISTEN connection
 * (pglisten.h): a notification on channel accord_auth (a credential revoked,
 * a user disabled: 009_limits.sql) empties every loop's credential cache
 * (authgate.h).
 *
 * While the connection is down the gates cache nothing, and every
 * (re)connection empties the caches, so a notification lost in an outage
 * cannot matter.
 */
#ifndef ACCORD_AUTHLISTEN_H
#define ACCORD_AUTHLISTEN_H

struct pglisten;

/* Before pglisten_start. Returns -1 when the listener has no room. */
int authlisten_register(struct pglisten *l);

#endif
