/* SPDX-License-Identifier: Apache-2.0 */
/* authlisten.c - accord_auth empties the credential caches (see authlisten.h). */
#include "authgate.h"
#include "authlisten.h"
#include "pglisten.h"
#include "read_grant.h"

static void on_auth(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload;
    (void)arg;
    authgate_invalidate_all();
    read_grant_invalidate_all(); /* a revoked credential reads no evidence either */
}

static void on_state(bool up, void *arg)
{
    (void)arg;
    /* whatever was revoked while nobody listened: forget it all */
    if (up)
        authgate_invalidate_all();
    authgate_set_listening(up);
}

int authlisten_register(struct pglisten *l)
{
    return pglisten_channel(l, "accord_auth", on_auth, on_state, NULL);
}
