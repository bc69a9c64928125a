// SPDX-License-Identifier: Apache-2.0
// lead.js - the lead's pages (rubrics, credentials, grants, anchors,
// reports, submissions, overrides).
import { h } from './dom.js';
import { page } from './app.js';

async function leadHome() {
  page('Rubrics and credentials', h('p', {}, 'Coming next.'));
}

export function routes(route) {
  route('/lead', ['lead'], leadHome);
}
