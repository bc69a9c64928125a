/* SPDX-License-Identifier: Apache-2.0 */
/* mail_digest.c - the words of a notification mail (see mail_digest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html_escape.h"
#include "mail_digest.h"

struct out {
    FILE *text, *html;
    char *text_buf, *html_buf;
    size_t text_len, html_len;
    char first[400]; /* the first line: the subject when it is the only one */
    int lines;
};

/* One thing said; link (optional) is where to act on it. */
static void say(struct out *o, const char *line, const char *link, const char *link_text)
{
    if (o->lines++ == 0)
        snprintf(o->first, sizeof o->first, "%s", line);
    fprintf(o->text, "* %s\r\n", line);
    fputs("<li>", o->html);
    html_escape(o->html, line);
    if (link) {
        fprintf(o->text, "  %s: %s\r\n", link_text, link);
        fputs(" <a href=\"", o->html);
        html_escape(o->html, link);
        fputs("\">", o->html);
        html_escape(o->html, link_text);
        fputs("</a>", o->html);
    }
    fputs("</li>\r\n", o->html);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static long num(json_t *obj, const char *key)
{
    return (long)json_integer_value(json_object_get(obj, key));
}

static void say_item(struct out *o, json_t *item, const char *base)
{
    const char *type = str(item, "type"), *reason = str(item, "reason");
    json_t *p = json_object_get(item, "payload");
    char line[1200], link[1200];
    const char *title = str(p, "credential_title");

    snprintf(link, sizeof link, "%s/", base);
    if (strcmp(type, "submission.queued") == 0 && strcmp(reason, "earner") == 0) {
        snprintf(line, sizeof line,
                 "We received your submission for \"%s\" (attempt %ld). You will hear from us when "
                 "its review is done.",
                 title, num(p, "attempt"));
        say(o, line, NULL, NULL);
    } else if (strcmp(type, "submission.result") == 0) {
        long left = num(p, "max_attempts") - num(p, "attempt");
        if (strcmp(str(p, "verdict"), "pass") == 0)
            snprintf(line, sizeof line, "You passed \"%s\". Congratulations!", title);
        else if (left > 0)
            snprintf(line, sizeof line,
                     "Feedback on your submission for \"%s\" is ready. You may revise and resubmit "
                     "(attempt %ld of %ld).",
                     title, num(p, "attempt") + 1, num(p, "max_attempts"));
        else
            snprintf(
                line, sizeof line,
                "Feedback on your submission for \"%s\" is ready. That was the last of its %ld "
                "attempts.",
                title, num(p, "max_attempts"));
        say(o, line, link, "Read it in accord");
    } else if (strcmp(type, "award.issued") == 0) {
        snprintf(line, sizeof line, "Your badge for \"%s\" has been issued.", title);
        say(o, line, link, "See your badges");
    } else if (strcmp(type, "award.revoked") == 0) {
        snprintf(line, sizeof line, "Your badge for \"%s\" was revoked.", title);
        say(o, line, link, "See your badges");
    } else if (strcmp(type, "assessor.recalibration_needed") == 0) {
        snprintf(
            line, sizeof line,
            "Your recent scores on \"%s\" drifted from the master scores: live reviews with it "
            "are paused until you complete a fresh calibration set.",
            str(p, "rubric_title"));
        say(o, line, link, "Calibrate in accord");
    } else if (strcmp(type, "assessor.qualification_regained") == 0) {
        snprintf(line, sizeof line,
                 "You are qualified again on \"%s\": live reviews are open to you.",
                 str(p, "rubric_title"));
        say(o, line, NULL, NULL);
    } else if (strcmp(type, "routing.peer_paused") == 0) {
        snprintf(line, sizeof line, "Peer review of \"%s\" is paused (%s).", title,
                 str(p, "reason"));
        say(o, line, link, "See routing");
    } else if (strcmp(type, "routing.peer_resumed") == 0) {
        snprintf(line, sizeof line, "Peer review of \"%s\" has resumed (%s).", title,
                 str(p, "reason"));
        say(o, line, NULL, NULL);
    } else if (strcmp(type, "adjudication.waiting") == 0) {
        snprintf(line, sizeof line, "A submission for \"%s\" is waiting for adjudication.", title);
        say(o, line, link, "Adjudicate in accord");
    } else if (strcmp(type, "submission.overdue") == 0) {
        snprintf(line, sizeof line,
                 "A submission for \"%s\" has waited more than %ld hours for a decision.", title,
                 num(p, "turnaround_hours"));
        say(o, line, link, "See the queue");
    } else if (strcmp(type, "review.lease_expiring") == 0) {
        snprintf(line, sizeof line,
                 "Your review for \"%s\" goes back to the queue at %s unless you submit it.", title,
                 str(p, "lease_expires_at"));
        say(o, line, link, "Finish it in accord");
    } else if (strcmp(type, "invitation.created") == 0) {
        snprintf(line, sizeof line, "%s invited you to accord%s%s.", str(p, "invited_by"),
                 *str(p, "organisation") ? " for " : "", str(p, "organisation"));
        say(o, line, *str(p, "url") ? str(p, "url") : NULL, "Accept the invitation");
    }
    /* submission.queued for an assessor: told as counts below; other types: nothing */
}

int mail_digest_render(json_t *recipient, const char *public_url, const char *unsubscribe_url,
                       struct mail_digest *d)
{
    struct out o = {0};
    json_t *items = json_object_get(recipient, "items");
    json_t *waiting = json_object_get(recipient, "waiting");
    json_t *w;
    size_t i;
    char line[600], link[600];
    int rc = -1;

    memset(d, 0, sizeof *d);
    o.text = open_memstream(&o.text_buf, &o.text_len);
    o.html = open_memstream(&o.html_buf, &o.html_len);
    if (!o.text || !o.html)
        goto cleanup;
    fputs("<!DOCTYPE html>\r\n<html><body style=\"font-family: sans-serif\">\r\n<ul>\r\n", o.html);
    snprintf(link, sizeof link, "%s/", public_url);
    json_array_foreach(waiting, i, w)
    {
        long n = num(w, "count");
        if (n <= 0)
            continue;
        snprintf(line, sizeof line, "%ld review%s %s waiting for %s", n, n == 1 ? "" : "s",
                 n == 1 ? "is" : "are", str(w, "title"));
        say(&o, line, link, "Claim one in accord");
    }
    json_array_foreach(items, i, w) say_item(&o, w, public_url);
    fputs("</ul>\r\n", o.html);
    fprintf(o.text, "\r\nOpen accord: %s/\r\n", public_url);
    fputs("<p><a href=\"", o.html);
    html_escape(o.html, link);
    fputs("\">Open accord</a></p>\r\n", o.html);
    if (unsubscribe_url) {
        fprintf(o.text,
                "\r\nYou can choose which notifications you get in accord (Settings), or stop "
                "these emails: %s\r\n",
                unsubscribe_url);
        fputs("<p style=\"color: #555; font-size: small\">You can choose which notifications you "
              "get in accord (Settings), or <a href=\"",
              o.html);
        html_escape(o.html, unsubscribe_url);
        fputs("\">stop these emails</a>.</p>\r\n", o.html);
    }
    fputs("</body></html>\r\n", o.html);
    if (fclose(o.text) != 0 || fclose(o.html) != 0) {
        o.text = o.html = NULL;
        goto cleanup;
    }
    o.text = o.html = NULL;
    if (o.lines > 1) {
        char subject[600];
        snprintf(subject, sizeof subject, "%.200s (and %d more)", o.first, o.lines - 1);
        d->subject = strdup(subject);
    } else {
        d->subject = strdup(o.first);
    }
    if (!d->subject)
        goto cleanup;
    d->text = o.text_buf;
    d->html = o.html_buf;
    o.text_buf = o.html_buf = NULL;
    d->lines = o.lines;
    rc = 0;
cleanup:
    if (o.text)
        fclose(o.text);
    if (o.html)
        fclose(o.html);
    free(o.text_buf);
    free(o.html_buf);
    if (rc < 0)
        mail_digest_free(d);
    return rc;
}

void mail_digest_free(struct mail_digest *d)
{
    free(d->subject);
    free(d->text);
    free(d->html);
    memset(d, 0, sizeof *d);
}
