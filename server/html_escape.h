/* SPDX-License-Identifier: Apache-2.0 */
/*
 * html_escape.h - text into HTML: the five characters HTML gives meaning to
 * (& < > " ') as entities, so user text in a page or a mail is only text.
 */
#ifndef ACCORD_HTML_ESCAPE_H
#define ACCORD_HTML_ESCAPE_H

#include <stdio.h>

/* Writes s to f escaped; NULL writes nothing. */
void html_escape(FILE *f, const char *s);

#endif
