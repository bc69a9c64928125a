/* SPDX-License-Identifier: Apache-2.0 */
/*
 * static.h - the web app (web/), compiled into the binary and served at "/".
 *
 * The files are embedded at build time (web/embed.sh -> build/gen/web_assets.c),
 * so `accord serve` alone serves the app: no source tree, no CDN, nothing
 * fetched at run time. Paths:
 *   GET /, /invite       the app's single page (index.html); the app routes by
 *                        the URL fragment, so the invitation secret in
 *                        /invite#<secret> never reaches the server
 *   GET /static/<file>   the app's scripts and styles
 * Every answer carries the app's Content-Security-Policy (scripts and styles
 * from this origin only, no inline script), nosniff, no framing, and an ETag
 * (the file's SHA-256 prefix) with `Cache-Control: no-cache`: a browser keeps
 * the files and asks with If-None-Match, so a new binary is picked up at once
 * and an unchanged file costs a 304.
 */
#ifndef ACCORD_STATIC_H
#define ACCORD_STATIC_H

#include <stdbool.h>

#include "request.h"

/*
 * Answers a GET or HEAD of one of the app's paths and returns true; returns
 * false (and answers nothing) for any other path, which the caller then
 * answers as usual (404).
 */
bool static_serve(struct request *r, const char *path);

#endif
