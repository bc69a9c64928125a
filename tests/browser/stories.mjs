// SPDX-License-Identifier: Apache-2.0
// stories.mjs - the browser stories (issue 11 "Done means"), run by run.py:
//   node stories.mjs FIXTURES.json   (writes results.json next to it)
// Controls are found by role and accessible name only, as a screen reader
// user would find them; every page visited is checked with axe-core.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { tests, test, check, until, person, axe, signIn, makeVideos } from './lib.mjs';

const fx = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const shots = fx.screenshots;
async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

let videos;
const pages = new Set();

// The whole Ms. Brown story, through the UI only.
test('ms_brown_story', async (browser, problems) => {
  const s = fx.story;
  const [v0, v1, v2] = videos;
  const brown = await person(browser, fx, problems);
  const B = brown.page;
  // her invitation: choose a password, land signed in
  await B.goto(s.invite_url);
  await B.getByText('Alice Brown', { exact: false }).first().waitFor();
  await axe(B, 'invitation', pages);
  await B.getByLabel('New password').fill(s.earner.password);
  await B.getByRole('button', { name: 'Set password' }).click();
  await B.getByRole('heading', { name: 'Credentials' }).waitFor();
  check(!B.url().includes('#') || !B.url().includes(fx.story.invite_url.split('#')[1]), 'the invitation secret stayed in the address bar');
  await axe(B, 'catalogue', pages);
  await shot(B, 'earner-catalogue');
  // the credential and its full rubric
  await B.getByRole('link', { name: s.credential.title }).click();
  await B.getByRole('heading', { name: s.credential.title }).waitFor();
  for (const t of s.criteria) await B.getByRole('heading', { name: t }).waitFor();
  await B.getByText('Approaching').first().waitFor();
  await axe(B, 'credential', pages);
  await B.getByRole('link', { name: 'Apply for this credential' }).click();
  // evidence: three videos, a plan and a reflection, with progress per file
  const submit = B.getByRole('button', { name: 'Submit for review' });
  await B.getByLabel('Add video').setInputFiles([
    { name: 'greeting.webm', mimeType: 'video/webm', buffer: v0 },
    { name: 'sharing.webm', mimeType: 'video/webm', buffer: v1 },
    { name: 'activity.webm', mimeType: 'video/webm', buffer: v2 },
  ]);
  await B.getByLabel('Add plan').setInputFiles({ name: 'plan.txt', mimeType: 'text/plain', buffer: Buffer.from('Lesson plan: greeting, sharing, activity, message.\n<script>alert(1)</script>\n') });
  check(await submit.isDisabled(), '"Submit for review" is enabled before the reflection is there');
  await B.getByLabel('Add reflection').setInputFiles({ name: 'reflection.txt', mimeType: 'text/plain', buffer: Buffer.from('Reflection: the share ran long; next time a timer.\n') });
  for (const name of ['greeting.webm', 'sharing.webm', 'activity.webm', 'plan.txt', 'reflection.txt'])
    await until(async () => B.getByRole('progressbar', { name: `Upload of ${name}` }).evaluate((p) => p.value === p.max && p.max > 0), `upload of ${name} to finish`);
  await B.getByText('3 videos: 3 uploaded').waitFor();
  await until(() => submit.isEnabled(), '"Submit for review" to be enabled');
  await axe(B, 'apply', pages);
  await shot(B, 'earner-apply');
  await submit.click();
  await B.getByText('Queued').first().waitFor();
  await axe(B, 'submission (queued)', pages);

  // the peer, on a phone: claim, play, cite, score
  const peer = await person(browser, fx, problems, { viewport: { width: 390, height: 844 } });
  const P = peer.page;
  await signIn(P, s.peer.email, s.peer.password);
  await P.getByRole('heading', { name: 'Review' }).waitFor();
  await axe(P, 'claim', pages);
  await P.getByRole('button', { name: 'Claim next review' }).click();
  await P.getByRole('heading', { name: `Review: ${s.credential.title}` }).waitFor();
  await P.getByText(/Time left: 1 h 59 min left|Time left: 2 h 0 min left/).waitFor();
  await P.getByText('<script>alert(1)</script>', { exact: false }).waitFor(); // the plan, as text
  const fig = P.getByRole('figure', { name: /greeting\.webm/ });
  const video = fig.locator('video');
  await video.evaluate((v) => new Promise((res, rej) => {
    v.muted = true;
    v.addEventListener('timeupdate', function t() { if (v.currentTime >= 1.2) { v.pause(); v.removeEventListener('timeupdate', t); res(); } });
    v.play().catch(rej);
  }));
  await fig.getByLabel('Criterion to cite for').selectOption({ label: s.criteria[2] });
  await fig.getByRole('button', { name: 'Cite this moment' }).click();
  await P.getByText(`Cited 0:01 for ${s.criteria[2]}`).waitFor();
  const levels = ['Meets', 'Meets', 'Approaching', 'Meets'];
  for (let i = 0; i < s.criteria.length; i++)
    await P.getByRole('radiogroup', { name: s.criteria[i] }).getByRole('radio', { name: levels[i] }).check();
  await P.getByLabel(`Comment on ${s.criteria[2]}`).fill('Students mostly answered you; invite them to answer each other.');
  await P.getByLabel('Feedback').fill('A warm, well-paced meeting. Next: more peer-to-peer talk in the share.');
  await P.getByText(/Draft saved/).waitFor();
  // no sideways scrolling on a phone
  check(await P.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the review workspace scrolls sideways at 390 px');
  await axe(P, 'review workspace', pages);
  await shot(P, 'assessor-workspace-phone');
  await P.getByRole('button', { name: 'Submit scores' }).click();
  await P.getByText('Verdict: Resubmit').waitFor();

  // Ms. Brown reads her result and resubmits
  await B.goto('/#/submissions');
  await B.getByRole('link', { name: s.credential.title }).first().click();
  await B.getByText('Returned for resubmission').first().waitFor();
  for (const t of s.criteria) await B.getByRole('heading', { name: t }).waitFor();
  await B.getByText('Approaching', { exact: true }).waitFor();
  await B.getByText('Students mostly answered you; invite them to answer each other.').waitFor();
  await B.getByText('A warm, well-paced meeting.', { exact: false }).waitFor();
  await axe(B, 'result', pages);
  await shot(B, 'earner-result');
  await B.getByRole('button', { name: 'Play greeting.webm from 0:01' }).click();
  const played = await until(() => B.getByRole('figure', { name: /greeting\.webm/ }).locator('video').evaluate((v) => (v.currentTime >= 1 ? v.currentTime : 0)), 'the cited moment to play');
  check(played >= 1 && played < 3, `the cited moment played from ${played}s, expected 1s`);
  await B.getByRole('button', { name: 'Resubmit' }).click();
  await B.getByRole('heading', { name: `Resubmit: ${s.credential.title}` }).waitFor();
  await B.getByText('3 videos: 3 uploaded').waitFor();
  await B.getByRole('button', { name: 'Remove reflection.txt' }).click();
  check(await B.getByRole('button', { name: 'Submit for review' }).isDisabled(), 'submit enabled without a reflection');
  await B.getByLabel('Add reflection').setInputFiles({ name: 'reflection-2.txt', mimeType: 'text/plain', buffer: Buffer.from('Second reflection: students now answer each other.\n') });
  await until(() => B.getByRole('button', { name: 'Submit for review' }).isEnabled(), 'resubmission to be ready');
  await B.getByRole('button', { name: 'Submit for review' }).click();
  await B.getByText('attempt 2', { exact: false }).first().waitFor();

  // the peer passes it, seeing the previous attempt's result
  await P.goto('/#/assess');
  await P.getByRole('button', { name: 'Claim next review' }).click();
  await P.getByText('Result of the previous attempt').waitFor();
  for (const t of s.criteria) await P.getByRole('radiogroup', { name: t }).getByRole('radio', { name: 'Meets' }).check();
  await P.getByLabel('Feedback').fill('Peer talk is there now. Well done.');
  await P.getByRole('button', { name: 'Submit scores' }).click();
  await P.getByText('Verdict: Pass').waitFor();

  // her badge and its public page
  await B.goto('/#/badges');
  const link = B.getByRole('link', { name: `Public page of ${s.credential.title}` });
  await link.waitFor();
  await axe(B, 'badges', pages);
  await link.click();
  await B.waitForURL(/\/v1\/awards\//);
  await B.getByText(s.credential.title).first().waitFor();
  await brown.ctx.close();
  await peer.ctx.close();
});

const only = fx.filter;
const browser = await chromium.launch({ executablePath: fx.chromium, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
let passed = 0;
let failed = 0;
try {
  videos = await makeVideos(browser, 3, 3);
  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    const t0 = Date.now();
    const problems = [];
    let err = null;
    try {
      await t.fn(browser, problems);
    } catch (e) {
      err = e.stack || String(e);
    }
    if (!err && problems.length) err = problems.join('\n');
    const dt = ((Date.now() - t0) / 1000).toFixed(1);
    if (err) {
      failed++;
      console.log(`FAIL ${t.name} (${dt}s)\n    ${err.replace(/\n/g, '\n    ')}`);
    } else {
      passed++;
      console.log(`PASS ${t.name} (${dt}s)`);
    }
  }
  console.log(`browser: pages checked with axe-core: ${[...pages].join(', ')}`);
} finally {
  await browser.close();
  writeFileSync(join(dirname(process.argv[2]), 'results.json'), JSON.stringify({ passed, failed }));
}
process.exit(failed ? 1 : 0);
