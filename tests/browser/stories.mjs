// SPDX-License-Identifier: Apache-2.0
// stories.mjs - the browser stories (issue 11 "Done means"), run by run.py:
//   node stories.mjs FIXTURES.json   (writes results.json next to it)
// Controls are found by role and accessible name only, as a screen reader
// user would find them; every page visited is checked with axe-core.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { tests, test, check, until, person, axe, signIn, makeVideos, timing } from './lib.mjs';

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
  await P.getByText(/Time left: (1 h 59|2 h 0) min/).waitFor();
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
  await P.getByRole('textbox', { name: 'Feedback', exact: true }).fill('A warm, well-paced meeting. Next: more peer-to-peer talk in the share.');
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
  await P.getByRole('textbox', { name: 'Feedback', exact: true }).fill('Peer talk is there now. Well done.');
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


// An upload survives a dropped connection and a reload; a draft survives a
// reload; another earner cannot open the submission.
test('uploads_drafts_and_privacy', async (browser, problems) => {
  const e = fx.edges;
  const big = Buffer.alloc(10 * 1024 * 1024 + 12345);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i); // deterministic, not all zero
  const { createHash } = await import('node:crypto');
  const bigSha = createHash('sha256').update(big).digest('hex');
  // on disk, so that choosing it again after the reload is the same file
  // (name, size and modification time: the upload's fingerprint)
  const bigPath = join(fx.workdir, 'circle.webm');
  writeFileSync(bigPath, big);
  const earner = await person(browser, fx, problems, { allow: /net::ERR_CONNECTION_RESET/ }); // the cut below
  const E = earner.page;
  await signIn(E, e.earner.email, e.earner.password);
  await E.goto(`/#/apply/${e.credential.id}`);
  await E.getByRole('heading', { name: `Apply: ${e.credential.title}` }).waitFor();
  // the second chunk's connection is cut mid-way: the upload asks the server
  // where it stands and goes on
  // (4 MiB chunks, web/js/tus.js: the last chunk (8-10 MiB) is held back
  // until the reload, so the upload is always unfinished when the page goes)
  let patches = 0;
  let cut = false;
  let release;
  const held = new Promise((r) => { release = r; });
  await E.route('**/v1/uploads/*', async (route) => {
    const req = route.request();
    if (req.method() === 'PATCH' && ++patches === 2 && !cut) {
      cut = true;
      return route.abort('connectionreset');
    }
    if (req.method() === 'PATCH' && cut && Number(req.headers()['upload-offset']) >= 8 * 1024 * 1024) {
      await held;
      return route.abort('connectionreset').catch(() => {}); // the page has gone meanwhile
    }
    return route.continue();
  });
  await E.getByLabel('Add video').setInputFiles(bigPath);
  const bar = E.getByRole('progressbar', { name: 'Upload of circle.webm' });
  await until(async () => cut && (await bar.evaluate((p) => p.value >= 8 * 1024 * 1024)), 'the upload to go on after the dropped connection');
  // a reload in the middle: the file is remembered; choosing it again resumes
  await E.unroute('**/v1/uploads/*');
  release();
  await E.reload();
  await E.getByText('Paused: choose this file again to resume').waitFor();
  const offsets = [];
  E.on('request', (r) => { if (r.method() === 'PATCH') offsets.push(Number(r.headers()['upload-offset'])); });
  await E.getByLabel('Add video').setInputFiles(bigPath);
  await until(() => bar.evaluate((p) => p.value === p.max), 'the resumed upload to finish');
  check(offsets.length >= 1 && offsets[0] > 0, `after the reload the upload started again from byte ${offsets[0]}, not where it stopped`);
  // the same bytes twice: a warning by SHA-256
  const plan = Buffer.from('Circle plan: talking piece, check-in, one question.\n');
  await E.getByLabel('Add plan').setInputFiles({ name: 'plan.txt', mimeType: 'text/plain', buffer: plan });
  await E.getByLabel('Add other file').setInputFiles({ name: 'plan-copy.txt', mimeType: 'text/plain', buffer: plan });
  await E.getByText('“plan-copy.txt” has the same content as “plan.txt” (same SHA-256)', { exact: false }).waitFor();
  await E.getByRole('button', { name: 'Remove plan-copy.txt' }).click();
  await E.getByLabel('Add reflection').setInputFiles({ name: 'reflection.txt', mimeType: 'text/plain', buffer: Buffer.from('It went well.\n') });
  const submit = E.getByRole('button', { name: 'Submit for review' });
  await until(() => submit.isEnabled(), '"Submit for review" to be enabled');
  await submit.click();
  await E.getByText('Queued').first().waitFor();
  const subId = E.url().split('/').pop();
  const sub = await E.evaluate(async (id) => (await fetch(`/v1/submissions/${id}`)).json(), subId);
  const video = sub.artifacts.find((a) => a.kind === 'video');
  check(video && video.sha256 === bigSha && video.bytes === big.length, `the stored video is not the file: ${JSON.stringify(video)}`);

  // a draft survives a reload
  const peer = await person(browser, fx, problems);
  const P = peer.page;
  await signIn(P, e.peer.email, e.peer.password);
  await P.getByRole('button', { name: 'Claim next review' }).click();
  const crit = await P.getByRole('radiogroup').first().getAttribute('aria-labelledby').then((id) => P.locator(`#${id}`).innerText());
  // keyboard only: Space takes the first level, the arrows move along the scale
  await P.getByRole('radiogroup', { name: crit }).getByRole('radio', { name: 'Not yet' }).focus();
  await P.keyboard.press('Space');
  for (let i = 0; i < 3; i++) await P.keyboard.press('ArrowDown');
  check(await P.getByRole('radiogroup', { name: crit }).getByRole('radio', { name: 'Exceeds' }).isChecked(), 'the arrow keys did not move the choice to "Exceeds"');
  await P.keyboard.press('Tab');
  check(await P.getByLabel(`Comment on ${crit}`).evaluate((el) => el === document.activeElement), 'Tab from the levels does not reach the comment');
  await P.keyboard.type('Every student spoke.');
  await P.getByRole('textbox', { name: 'Feedback', exact: true }).fill('Half-written feedback');
  await P.getByText(/Draft saved/).waitFor();
  await P.reload();
  await P.getByText('Draft restored').waitFor();
  check(await P.getByRole('radiogroup', { name: crit }).getByRole('radio', { name: 'Exceeds' }).isChecked(), 'the chosen level was lost in the reload');
  check((await P.getByLabel(`Comment on ${crit}`).inputValue()) === 'Every student spoke.', 'the comment was lost in the reload');
  check((await P.getByRole('textbox', { name: 'Feedback', exact: true }).inputValue()) === 'Half-written feedback', 'the feedback was lost in the reload');
  await P.getByRole('button', { name: 'Release' }).click();
  await P.getByRole('button', { name: 'Claim next review' }).waitFor();

  // another earner cannot open it
  const other = await person(browser, fx, problems);
  const O = other.page;
  await signIn(O, e.other.email, e.other.password);
  await O.goto(`/#/submissions/${subId}`);
  await O.getByRole('heading', { name: 'Submission not available' }).waitFor();
  check(!(await O.content()).includes('circle.webm'), "another earner's page shows the evidence's name");
  await axe(O, 'not available', pages);
});


// A lead sets up a rubric, anchors and a credential; an assessor takes a
// calibration session; the lead's agreement and routing charts have data.
test('lead_calibration_story', async (browser, problems) => {
  const f = fx.lead_story;
  const lead = await person(browser, fx, problems);
  const L = lead.page;
  await signIn(L, f.lead.email, f.lead.password);
  await L.getByRole('heading', { name: 'Rubrics and credentials' }).waitFor();
  await axe(L, 'lead home', pages);
  await shot(L, 'lead-home');
  await L.getByRole('link', { name: 'New rubric' }).click();
  await L.getByLabel('Rubric title').fill('Circle Time');
  await L.getByLabel('Criterion 1 title').fill('Listening');
  await L.getByRole('button', { name: 'Add a criterion' }).click();
  await L.getByLabel('Criterion 2 title').fill('Turn taking');
  await L.getByLabel('Criterion 2, level 3 description').fill('Most students wait for the talking piece.');
  await axe(L, 'new rubric', pages);
  await L.getByRole('button', { name: 'Create rubric' }).click();
  await L.getByRole('heading', { name: 'Rubric: Circle Time' }).waitFor();
  await L.getByText('Most students wait for the talking piece.').first().waitFor();
  await L.getByLabel('Anchors per session').fill('2');
  await L.getByRole('button', { name: 'Save calibration settings' }).click();
  await L.getByText('Calibration settings saved.').waitFor();
  for (const [i, [a, b]] of [['Meets', 'Approaching'], ['Exceeds', 'Meets']].entries()) {
    await L.getByLabel('Anchor evidence files').setInputFiles({ name: `anchor-${i}.webm`, mimeType: 'video/webm', buffer: videos[i] });
    await L.getByRole('radiogroup', { name: 'Listening' }).getByRole('radio', { name: a }).check();
    await L.getByRole('radiogroup', { name: 'Turn taking' }).getByRole('radio', { name: b }).check();
    await L.getByLabel('Rationale on Listening').fill(`Anchor ${i}: students paraphrase each other.`);
    await L.getByLabel('Rationale on Turn taking').fill(`Anchor ${i}: two interruptions.`);
    await L.getByRole('button', { name: 'Create anchor' }).click();
    await L.getByText(`${i + 1} anchor(s)`).waitFor();
  }
  await axe(L, 'rubric', pages);
  await L.getByRole('link', { name: 'Rubrics and credentials' }).click();
  await L.getByRole('link', { name: 'New credential' }).click();
  await L.getByLabel('Credential title').fill('Circle Time Basics');
  await L.getByLabel('Rubric', { exact: true }).selectOption({ label: 'Circle Time' });
  await L.getByLabel('Number of plans required').fill('0');
  await L.getByLabel('Number of reflections required').fill('0');
  await axe(L, 'new credential', pages);
  await L.getByRole('button', { name: 'Create credential' }).click();
  await L.getByRole('heading', { name: 'Credential: Circle Time Basics' }).waitFor();
  const grant = L.getByRole('form', { name: 'Grant' });
  await grant.getByLabel("Assessor's email").fill(f.assessor.email);
  await grant.getByLabel('They need not hold this credential themselves').check();
  await grant.getByRole('button', { name: 'Grant' }).click();
  await L.getByText(`${f.assessor.name} may now review this credential`).waitFor();
  // the lead promises answers within two days and asks for more second scores
  const policy = L.getByRole('region', { name: 'Review policy' });
  await policy.getByText('Change the review policy').click();
  await policy.getByLabel('Turnaround target (hours)').fill('48');
  await policy.getByLabel('Second scoring (% of submissions)').fill('30');
  await axe(L, 'credential (lead)', pages);
  await policy.getByRole('button', { name: 'Save review policy' }).click();
  await policy.getByText('The review policy is saved.', { exact: false }).waitFor();
  await policy.getByText('Answers promised within 48 hours', { exact: false }).waitFor();
  await policy.getByText('Second scoring: 30%', { exact: false }).waitFor();
  await policy.getByRole('button', { name: 'Save review policy' }).click();
  await policy.getByText('Nothing was changed.').waitFor();

  // the assessor calibrates
  const as = await person(browser, fx, problems);
  const A = as.page;
  await signIn(A, f.assessor.email, f.assessor.password);
  await A.getByRole('link', { name: 'Calibration' }).click();
  await A.getByLabel('Rubric').selectOption({ label: 'Circle Time' });
  await axe(A, 'calibration', pages);
  await A.getByRole('button', { name: 'Start a calibration session' }).click();
  for (let i = 0; i < 2; i++) {
    await A.getByText(`recording ${i + 1} of 2`).waitFor();
    // score as the masters did: the anchors' files tell which is which
    const first = (await A.getByRole('figure').first().innerText()).includes('anchor-0');
    await A.getByRole('radiogroup', { name: 'Listening' }).getByRole('radio', { name: first ? 'Meets' : 'Exceeds' }).check();
    await A.getByRole('radiogroup', { name: 'Turn taking' }).getByRole('radio', { name: first ? 'Approaching' : 'Meets' }).check();
    if (i === 0) await axe(A, 'calibration item', pages);
    await A.getByRole('button', { name: 'Submit scores' }).click();
  }
  await A.getByText('You qualified.').waitFor();
  await A.getByText('Anchor 0: students paraphrase each other.').waitFor();
  await A.getByRole('table', { name: 'Agreement with the experts' }).waitFor();
  await axe(A, 'calibration result', pages);
  await shot(A, 'assessor-calibration-result');
  await A.getByRole('link', { name: 'My qualifications' }).click();
  const q = A.getByRole('row', { name: /Circle Time/ });
  await q.getByText('Qualified', { exact: true }).waitFor();
  await axe(A, 'qualifications', pages);

  // the lead's reports
  await L.getByRole('link', { name: 'Reports' }).click();
  await L.getByLabel('Credential').selectOption({ label: f.seeded.title });
  const exact = L.getByRole('figure', { name: `Exact agreement on ${f.seeded.title} by criterion, with 95% intervals` });
  await exact.waitFor();
  const marks = await exact.locator('circle').count();
  check(marks === 4, `the agreement chart shows ${marks} estimates, expected one per criterion (4)`);
  const rel = L.getByRole('figure', { name: `on ${f.seeded.title} by criterion`, exact: false }).nth(1);
  check((await rel.locator('circle').count()) >= 1, 'the reliability chart has no estimate');
  const routing = L.getByRole('region', { name: `Routing of ${f.seeded.title}` });
  await routing.getByText('6 peer/expert pairs', { exact: false }).waitFor();
  check((await routing.locator('svg circle').count()) >= 1, 'the routing chart has no kappa estimate');
  // Bo failed calibration as often as allowed: the lead lets him try again
  const bo = L.getByRole('row', { name: new RegExp(f.seeded.blocked) });
  await bo.getByText('1 of 1 failed sessions').waitFor();
  await axe(L, 'reports', pages);
  await shot(L, 'lead-reports');
  await bo.getByLabel(`Why may ${f.seeded.blocked} try again?`).fill('We went through the anchors together');
  await bo.getByRole('button', { name: `Allow ${f.seeded.blocked} another attempt` }).click();
  await L.getByText(`${f.seeded.blocked} may start another calibration session.`).waitFor();
  await L.getByRole('row', { name: new RegExp(f.seeded.blocked) }).getByText('0 of 1 failed sessions').waitFor();
  const [download] = await Promise.all([L.waitForEvent('download'), L.getByRole('link', { name: 'Download ratings.csv' }).click()]);
  const path = await download.path();
  const text = readFileSync(path, 'utf8');
  check(text.startsWith('unit,rater,score'), `ratings.csv starts ${JSON.stringify(text.slice(0, 40))}`);
  check(text.trim().split('\n').length === 1 + 6 * 4 * 2, `ratings.csv has ${text.trim().split('\n').length - 1} ratings, expected 48`);
});

// A person's own notification settings, and the "stop these emails" link of
// a mail opened in a browser that is not signed in.
test('settings_and_unsubscribe', async (browser, problems) => {
  const e = fx.edges;
  const erin = await person(browser, fx, problems);
  const E = erin.page;
  await signIn(E, e.earner.email, e.earner.password);
  await E.getByRole('link', { name: 'Settings' }).click();
  await E.getByRole('heading', { name: 'Settings', exact: true }).waitFor();
  check(!(await E.getByLabel('Reviews are waiting for me', { exact: false }).count()), 'an earner is offered assessors’ mails');
  await E.getByLabel('My result is ready').uncheck();
  await E.getByRole('button', { name: 'Save notification settings' }).click();
  await E.getByText('Saved. You get the emails ticked above.').waitFor();
  await axe(E, 'settings', pages);
  await E.reload();
  await E.getByLabel('An assessor started reviewing my submission').waitFor();
  check(!(await E.getByLabel('My result is ready').isChecked()), 'the muted mail came back after a reload');
  check(await E.getByLabel('Send me email from accord').isChecked(), 'email is off before the unsubscribe');

  // the link in a mail, opened on a phone that is not signed in
  const phone = await person(browser, fx, problems, { viewport: { width: 390, height: 844 } });
  const P = phone.page;
  await P.goto(`/v1/unsubscribe?token=${e.unsubscribe_token}`);
  await P.getByRole('heading', { name: 'Stop emails from accord' }).waitFor();
  check(!P.url().includes(e.unsubscribe_token), `the token stayed in the address bar: ${P.url()}`);
  await axe(P, 'unsubscribe', pages);
  await P.getByRole('button', { name: 'Stop all emails' }).click();
  await P.getByText('Done: accord sends you no more email.', { exact: false }).waitFor();
  await E.reload();
  await E.getByRole('heading', { name: 'Settings', exact: true }).waitFor();
  await until(async () => !(await E.getByLabel('Send me email from accord').isChecked()), 'email to be off in Settings');
  // a made-up link says so, in words
  await P.goto('/unsubscribe#' + '0'.repeat(64));
  await P.getByText('This link is not valid.', { exact: false }).waitFor();
});

// A lead invites an assessor and hands over the link; withdraws a mistaken
// invitation; finds people and makes a new-password link. An admin disables
// an account (the person is signed out at once) and adds an organisation.
test('people_and_invitations', async (browser, problems) => {
  const f = fx.people;
  const lead = await person(browser, fx, problems);
  const L = lead.page;
  await signIn(L, f.lead.email, f.lead.password);
  await L.getByRole('link', { name: 'People' }).click();
  await L.getByRole('heading', { name: 'People', exact: true }).waitFor();
  const invite = L.getByRole('region', { name: 'Invite someone' });
  // a lead may give earner and assessor roles only
  check(!(await invite.getByLabel('Program lead').count()), 'a lead is offered the lead role');
  await invite.getByLabel('Name').fill('Nora Newpeer');
  await invite.getByLabel('Email').fill('nora.newpeer@example.org');
  await invite.getByLabel('Earner').uncheck();
  await invite.getByLabel('Peer assessor').check();
  await invite.getByLabel('Organisation').selectOption({ label: f.org });
  await invite.getByRole('button', { name: 'Create invitation' }).click();
  const link = invite.getByRole('textbox', { name: 'Link for Nora Newpeer' });
  await link.waitFor();
  const url = await link.inputValue();
  check(/\/invite#[0-9a-f]{64}$/.test(url), `the invitation link is ${url}`);
  await invite.getByText('this server does not send email', { exact: false }).waitFor();
  await axe(L, 'people (lead)', pages);
  await shot(L, 'lead-people');
  const waiting = L.getByRole('region', { name: 'Invitations waiting' });
  await waiting.getByRole('cell', { name: 'Nora Newpeer', exact: true }).waitFor();
  // a mistake, withdrawn
  await invite.getByLabel('Name').fill('Walt Wrongmail');
  await invite.getByLabel('Email').fill('walt@wrong.example.org');
  await invite.getByRole('button', { name: 'Create invitation' }).click();
  await invite.getByRole('textbox', { name: 'Link for Walt Wrongmail' }).waitFor();
  const wrongUrl = await invite.getByRole('textbox', { name: 'Link for Walt Wrongmail' }).inputValue();
  await waiting.getByRole('button', { name: 'Withdraw the invitation for Walt Wrongmail' }).click();
  await L.getByText('The invitation for Walt Wrongmail was withdrawn', { exact: false }).waitFor();
  await until(async () => !(await waiting.getByRole('cell', { name: 'Walt Wrongmail', exact: true }).count()), 'the withdrawn invitation to leave the list');

  // Nora takes her invitation and lands on her reviews; Walt's link is dead
  const nora = await person(browser, fx, problems);
  const N = nora.page;
  await N.goto(url);
  await N.getByLabel('New password').fill('a heron in the reeds at dawn');
  await N.getByRole('button', { name: 'Set password' }).click();
  await N.getByRole('heading', { name: 'Review', exact: true }).waitFor();
  const walt = await person(browser, fx, problems);
  await walt.page.goto(wrongUrl);
  await walt.page.getByText('This invitation was withdrawn. Ask for a new one.').waitFor();

  // the lead finds her, and makes her a new password link
  const everyone = L.getByRole('region', { name: 'Earners and assessors' });
  await everyone.getByLabel('Name or email').fill('newpeer');
  await everyone.getByRole('button', { name: 'Search' }).click();
  const row = everyone.getByRole('row', { name: /Nora Newpeer/ });
  await row.getByRole('cell', { name: 'Active', exact: true }).waitFor();
  check(!(await L.getByRole('button', { name: /^Save roles/ }).count()), 'a lead may change roles');
  await row.getByRole('button', { name: 'New password link for Nora Newpeer' }).click();
  await everyone.getByRole('textbox', { name: 'Link for Nora Newpeer' }).waitFor();

  // the admin, on a phone: disables Nora (signed out at once), adds an organisation
  const admin = await person(browser, fx, problems, { viewport: { width: 390, height: 844 } });
  const A = admin.page;
  await signIn(A, f.admin.email, f.admin.password);
  await A.getByRole('heading', { name: 'People', exact: true }).waitFor(); // an admin's start page
  const all = A.getByRole('region', { name: 'Everyone' });
  await all.getByLabel('Name or email').fill('nora.newpeer@');
  await all.getByRole('button', { name: 'Search' }).click();
  // Nora teaches too: she becomes an earner as well
  await all.getByText('Nora Newpeer: change roles').click();
  await all.getByRole('group', { name: 'Roles of Nora Newpeer' }).getByLabel('Earner').check();
  await all.getByRole('button', { name: 'Save roles of Nora Newpeer' }).click();
  await A.getByText('Nora Newpeer now has the roles: Earner, Peer assessor', { exact: false }).waitFor();
  A.once('dialog', (d) => d.accept());
  await all.getByRole('button', { name: 'Disable Nora Newpeer' }).click();
  await A.getByText('Nora Newpeer is disabled and signed out everywhere.').waitFor();
  await all.getByRole('row', { name: /Nora Newpeer/ }).getByRole('cell', { name: 'Disabled', exact: true }).waitFor();
  await N.getByRole('link', { name: 'My reviews' }).click();
  await N.getByText('Your session has ended. Sign in again to go on.').waitFor();
  const orgs = A.getByRole('region', { name: 'Organisations' });
  await orgs.getByLabel('New organisation').fill('Pine Hill School');
  await orgs.getByRole('button', { name: 'Add organisation' }).click();
  await orgs.getByText('Pine Hill School was added', { exact: false }).waitFor();
  await axe(A, 'people (admin, phone)', pages);
});

// A lead on a phone finds the notices accord gave up on (a bounced result
// mail, an invitation to a mistyped address), sends one again, then the rest.
test('undelivered_notices', async (browser, problems) => {
  const f = fx.people;
  const lead = await person(browser, fx, problems, { viewport: { width: 390, height: 844 } });
  const L = lead.page;
  await signIn(L, f.lead.email, f.lead.password);
  await L.getByRole('link', { name: 'Notices' }).click();
  await L.getByRole('heading', { name: 'Notices that could not be delivered' }).waitFor();
  const table = L.getByRole('region', { name: 'Undelivered notices, newest first' });
  const erin = table.getByRole('row', { name: new RegExp(`Result ready.*${fx.notices.earner}`) });
  await erin.getByRole('cell', { name: 'answer 550: 5.1.1 mailbox unavailable' }).waitFor();
  await table.getByRole('row', { name: /Invitation.*An invited person/ }).waitFor();
  await axe(L, 'undelivered notices (phone)', pages);
  await shot(L, 'lead-notices-phone');
  await L.getByRole('button', { name: `Send again: Result ready to ${fx.notices.earner}` }).click();
  await L.getByText(`“Result ready to ${fx.notices.earner}” goes out again.`).waitFor();
  await until(async () => !(await erin.count()), "Erin's notice to leave the list");
  await L.getByRole('button', { name: 'Send all again' }).click();
  await L.getByText('1 notice goes out again.').waitFor();
  await L.getByText('Every notice was delivered.').waitFor();
});

// Signing in with the district's account (the real npm oidc-provider): from
// the sign-in page, from an invitation, after following a deep link; and a
// person accord does not know is told what to do, in words, on the sign-in page.
async function nextLogin(who) {
  const r = await fetch(fx.sso.next_login, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sub: who.sub, email: who.email, email_verified: true, name: who.name }) });
  check(r.status === 204, `the test provider's next-login answered ${r.status}`);
}

test('district_sign_in', async (browser, problems) => {
  const f = fx.sso;
  const button = `Sign in with ${f.provider.name}`;
  const dana = await person(browser, fx, problems);
  const D = dana.page;
  await D.goto('/');
  await D.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
  const sso = D.getByRole('link', { name: button });
  await sso.waitFor();
  await D.getByLabel('Email').waitFor(); // the password form is still there
  await axe(D, 'sign-in with a district provider', pages);
  await shot(D, 'sign-in-district');
  // Dana was invited by the email the district vouches for
  await nextLogin(f.dana);
  await sso.click();
  await D.getByRole('heading', { name: 'Credentials' }).waitFor();
  await D.getByText(f.dana.name, { exact: true }).waitFor();
  check(!D.url().includes('sso_error'), `signed in, but the address is ${D.url()}`);
  await D.getByRole('button', { name: 'Sign out' }).click();
  // a deep link survives the trip to the provider and back
  await D.goto('/#/badges');
  await D.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
  await nextLogin(f.dana);
  await D.getByRole('link', { name: button }).click();
  await D.getByRole('heading', { name: 'My badges' }).waitFor();
  await D.getByRole('button', { name: 'Sign out' }).click();

  // someone the district knows but accord does not
  const zed = await person(browser, fx, problems);
  const Z = zed.page;
  await Z.goto('/');
  await nextLogin(f.stranger);
  await Z.getByRole('link', { name: button }).click();
  const alert = Z.getByRole('alert');
  await alert.getByText('Ask your program lead for an invitation', { exact: false }).waitFor();
  check(/sso_error=not_invited/.test(Z.url()), `the refusal came back as ${Z.url()}`);
  check(await Z.getByLabel('Email').isVisible(), 'the password form is gone after a refused sign-in');
  check(!(await Z.getByRole('button', { name: 'Sign out' }).count()), 'a refused person is signed in');
  await axe(Z, 'sign-in after a refused district sign-in', pages);
  // words in a crafted link are never shown: only known codes are explained
  await Z.goto('/#/sign-in?sso_error=call_555_to_reset');
  await Z.getByRole('alert').getByText('did not work', { exact: false }).waitFor();
  check(!(await Z.getByText('call_555', { exact: false }).count()), 'the page repeated text from its link');

  // Ivy's invitation went to her home address; she takes it with her school account
  const ivy = await person(browser, fx, problems);
  const I = ivy.page;
  await I.goto(f.ivy.invite_url);
  await I.getByRole('heading', { name: 'Your invitation' }).waitFor();
  const region = I.getByRole('region', { name: 'Use your school or district account' });
  await nextLogin(f.ivy);
  await axe(I, 'invitation with a district provider', pages);
  await region.getByRole('link', { name: button }).click();
  await I.getByRole('heading', { name: 'Credentials' }).waitFor();
  await I.getByText(f.ivy.name, { exact: true }).waitFor();
});

// Live updates (issue 14 item 3): an assessor's open "Review" page shows a new
// submission's count, and the earner's open submission page its new status,
// without a reload (GET /v1/events through EventSource, on the session cookie).
test('live_updates_story', async (browser, problems) => {
  const f = fx.live;
  const api = async (token, method, path, body) => {
    const r = await fetch(fx.base + path, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    check(r.ok, `${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : null;
  };
  const peer = await person(browser, fx, problems);
  const P = peer.page;
  await signIn(P, f.peer.email, f.peer.password);
  await P.getByRole('heading', { name: 'Review', exact: true }).waitFor();
  const table = P.getByRole('table', { name: 'Reviews waiting for you' });
  const row = table.getByRole('row', { name: new RegExp(f.credential.title) });
  await until(async () => (await row.getByRole('cell').first().innerText()).trim() === '0', 'the open queue page to show 0 waiting');
  await axe(P, 'review (live queue)', pages);
  const earner = await person(browser, fx, problems);
  const E = earner.page;
  await signIn(E, f.earner.email, f.earner.password);
  const sub = await api(f.earner.token, 'POST', '/v1/submissions', { credential_id: f.credential.id, artifact_ids: f.artifact_ids });
  // no reload: the count comes over the stream
  await until(async () => (await row.getByRole('cell').first().innerText()).trim() === '1', 'the open queue page to show the new submission (1 waiting) without a reload');
  await until(async () => /1 review is waiting for Live: Circle Time/.test(await P.locator('#live-announcer').innerText()), 'the count to be announced politely', 10000);
  await E.goto(`/#/submissions/${sub.id}`);
  await E.getByText('Your evidence is waiting for an assessor.').waitFor();
  await api(f.peer.token, 'POST', '/v1/reviews/claim', { credential_id: f.credential.id });
  await E.getByText('An assessor is reviewing your evidence.', { exact: false }).waitFor();
  await until(async () => /now in review/.test(await E.locator('#live-announcer').innerText()), 'the new status to be announced politely', 10000);
  await axe(E, 'submission (live status)', pages);
  await until(async () => (await row.getByRole('cell').first().innerText()).trim() === '0', 'the queue page to show the claim (0 waiting)');
});

const only = fx.filter;
const browser = await chromium.launch({ executablePath: fx.chromium, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
let passed = 0;
let failed = 0;
try {
  const tv = Date.now();
  videos = await makeVideos(browser, 3, 3);
  timing.videos = Date.now() - tv;
  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    const t0 = Date.now();
    const problems = [];
    let err = null;
    try {
      await t.fn(browser, problems);
    } catch (e) {
      err = e.stack || String(e);
      let n = 0;
      for (const c of browser.contexts())
        for (const p of c.pages()) await p.screenshot({ path: join(fx.workdir, `fail-${t.name}-${n++}.png`), fullPage: true }).catch(() => {});
    }
    for (const c of browser.contexts()) await c.close().catch(() => {});
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
  console.log(`browser: time in axe-core ${(timing.axe / 1000).toFixed(1)} s (${timing.axeRuns} runs), signing in ${(timing.signIn / 1000).toFixed(1)} s, making videos ${(timing.videos / 1000).toFixed(1)} s`);
} finally {
  await browser.close();
  writeFileSync(join(dirname(process.argv[2]), 'results.json'), JSON.stringify({ passed, failed }));
}
process.exit(failed ? 1 : 0);
