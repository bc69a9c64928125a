/* SPDX-License-Identifier: Apache-2.0 */
/*
 * version.h - the release this source tree is (`accord --version`, the
 * accord_build_info metric). Bumped by hand at a release.
 */
#ifndef ACCORD_VERSION_H
#define ACCORD_VERSION_H

#define ACCORD_VERSION "0.1.0"

#endif
