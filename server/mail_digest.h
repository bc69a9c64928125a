/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mail_digest.h - what one person's mail says: every notification waiting
 * for them, in one message (a digest, not a flood). The queue waiting for an
 * assessor is told as counts per credential ("3 reviews are waiting for
 * Morning Meeting for SEL"), counted when the mail is made.
 *
 * What a mail may say is limited on purpose: the person's own submissions,
 * results and badges, their own calibration standing, counts of work, and
 * routing news for leads. Never evidence, never anyone's scores, never who
 * an earner is to an assessor.
 */
#ifndef ACCORD_MAIL_DIGEST_H
#define ACCORD_MAIL_DIGEST_H

#include <jansson.h>

struct mail_digest {
    char *subject;
    char *text;
    char *html;
    int lines; /* things said; 0: nothing left to say (send nothing) */
};

/*
 * recipient: one element of outbox_take_mail() (db/migrations/013_outbox.sql).
 * unsubscribe_url may be NULL (mail to someone without an account).
 * Returns 0, or -1 when out of memory.
 */
int mail_digest_render(json_t *recipient, const char *public_url, const char *unsubscribe_url,
                       struct mail_digest *d);

void mail_digest_free(struct mail_digest *d);

#endif
