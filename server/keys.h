/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keys.h - accord's badge signing keys.
 *
 * The private keys are PEM files <key dir>/<key id>.pem, mode 0600 in a 0700
 * directory, never logged and never in the database; the database holds the
 * public keys (published as the JWKS) and which key is active. The server
 * reads the active key's file when it signs (on an offload thread), so a
 * rotation takes effect at the next signature without a restart.
 */
#ifndef ACCORD_KEYS_H
#define ACCORD_KEYS_H

#include <stddef.h>

#include "config.h"

/*
 * At `accord serve` start: creates the key directory and the first key when
 * there is none; checks that the active key's file is there. Logs why and
 * returns -1 when the server cannot sign (it serves on: badges already signed
 * stay available, new ones answer 503).
 */
int keys_ensure(const struct config *cfg);

/* The file of key kid (a UUID) in dir. Returns -1 when it does not fit. */
int keys_path(const char *dir, const char *kid, char *out, size_t cap);

#endif
