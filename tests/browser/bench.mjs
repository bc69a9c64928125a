// SPDX-License-Identifier: Apache-2.0
// bench.mjs - the web app's page times (make bench; not part of make test):
//   node bench.mjs FIXTURES.json
// For each main page: from starting the navigation until the page is
// interactive (its heading has focus and the network has been idle for
// 100 ms), the median of 5 loads, printed with its ratio to the anchor: the
// same browser loading the server's plain JSON /healthz, measured in the
// same run. Then: opening a review of three 50 MB videos (claim to an
// interactive workspace with every video's metadata read by byte range).
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { signIn } from './lib.mjs';

const fx = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const RUNS = 5;
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function idle(page, ms = 100) {
  let inflight = 0;
  let last = Date.now();
  const on = () => { inflight++; };
  const off = () => { inflight--; last = Date.now(); };
  page.on('request', on);
  page.on('requestfinished', off);
  page.on('requestfailed', off);
  try {
    for (;;) {
      if (inflight <= 0 && Date.now() - last >= ms) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    page.off('request', on);
    page.off('requestfinished', off);
    page.off('requestfailed', off);
  }
}

async function timeLoad(page, url, heading) {
  await page.goto('about:blank');
  const t0 = performance.now();
  await page.goto(fx.base + url);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await idle(page);
  return performance.now() - t0 - 100;
}

const browser = await chromium.launch({ executablePath: fx.chromium, args: ['--no-sandbox'] });
const out = [];
try {
  const ctx = await browser.newContext({ baseURL: fx.base });
  const page = await ctx.newPage();
  const anchor = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto('about:blank');
    const t0 = performance.now();
    await page.goto(fx.base + '/healthz');
    anchor.push(performance.now() - t0);
  }
  const a = median(anchor);
  out.push(['anchor: GET /healthz in the browser', a]);
  const b = fx.bench;
  await signIn(page, b.earner.email, b.earner.password);
  // the evidence: three real WebM videos of at least 50 MB each, recorded by
  // the browser from canvas noise (noise does not compress), uploaded and
  // submitted from the earner's page
  const t1 = performance.now();
  b.submission_id = await page.evaluate(async ({ credId, size }) => {
    const me = await (await fetch('/v1/me')).json();
    const record = (i) => new Promise((resolve) => {
      const c = document.createElement('canvas');
      c.width = 640; c.height = 360;
      const g = c.getContext('2d');
      const img = g.createImageData(640, 360);
      const rec = new MediaRecorder(c.captureStream(30), { mimeType: 'video/webm;codecs=vp8', videoBitsPerSecond: 40000000 });
      const parts = [];
      let have = 0;
      rec.ondataavailable = (e) => { parts.push(e.data); have += e.data.size; if (have >= size && rec.state === 'recording') rec.stop(); };
      rec.onstop = () => { clearInterval(t); resolve(new Blob(parts, { type: 'video/webm' })); };
      const t = setInterval(() => {
        for (let k = 0; k < img.data.length; k += 65536) crypto.getRandomValues(img.data.subarray(k, k + 65536));
        g.putImageData(img, 0, 0);
      }, 33);
      rec.start(1000);
      setTimeout(() => rec.state === 'recording' && rec.stop(), 120000);
    });
    const post = async (body, type, kind, name) => {
      const r = await fetch('/v1/artifacts', { method: 'POST', body, headers: { 'Content-Type': type, 'X-Artifact-Kind': kind, 'X-Filename': name, 'X-CSRF-Token': me.csrf_token } });
      if (!r.ok) throw new Error(`upload ${name}: ${r.status} ${await r.text()}`);
      return (await r.json()).id;
    };
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await post(await record(i), 'video/webm', 'video', `noise-${i}.webm`));
    ids.push(await post(new Blob(['plan\n']), 'text/plain', 'plan', 'plan.txt'));
    ids.push(await post(new Blob(['reflection\n']), 'text/plain', 'reflection', 'reflection.txt'));
    const r = await fetch('/v1/submissions', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token }, body: JSON.stringify({ credential_id: credId, artifact_ids: ids }) });
    if (!r.ok) throw new Error(`submit: ${r.status} ${await r.text()}`);
    return (await r.json()).id;
  }, { credId: b.credential.id, size: 50 * 1024 * 1024 });
  console.log(`web: (setup: three 50 MB videos recorded, uploaded and submitted in ${((performance.now() - t1) / 1000).toFixed(0)} s)`);
  for (const [name, url, heading] of [
    ['earner: catalogue', '/#/catalogue', 'Credentials'],
    ['earner: credential with rubric', `/#/credentials/${b.credential.id}`, b.credential.title],
    ['earner: apply', `/#/apply/${b.credential.id}`, `Apply: ${b.credential.title}`],
    ['earner: submissions', '/#/submissions', 'My submissions'],
    ['earner: submission', `/#/submissions/${b.submission_id}`, /attempt 1/],
  ]) {
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await timeLoad(page, url, heading));
    out.push([name, median(xs)]);
  }
  const lctx = await browser.newContext({ baseURL: fx.base });
  const lp = await lctx.newPage();
  await signIn(lp, b.lead.email, b.lead.password);
  for (const [name, url, heading] of [
    ['lead: rubrics and credentials', '/#/lead', 'Rubrics and credentials'],
    ['lead: reports', '/#/reports', 'Reports'],
  ]) {
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await timeLoad(lp, url, heading));
    out.push([name, median(xs)]);
  }
  // a review of three 50 MB videos: claim -> interactive workspace
  const actx = await browser.newContext({ baseURL: fx.base });
  const ap = await actx.newPage();
  await signIn(ap, b.peer.email, b.peer.password);
  const ranges = new Set();
  ap.on('response', async (r) => {
    if (/\/v1\/artifacts\/[^/]+\/content/.test(r.url())) ranges.add(r.url());
  });
  await ap.goto(fx.base + '/#/assess');
  await ap.getByRole('button', { name: 'Claim next review' }).waitFor();
  const t0 = performance.now();
  await ap.getByRole('button', { name: 'Claim next review' }).click();
  await ap.getByRole('button', { name: 'Submit scores' }).waitFor();
  await ap.waitForFunction(() => [...document.querySelectorAll('video')].every((v) => v.readyState >= 1 || v.error), null, { timeout: 60000 });
  const open = performance.now() - t0;
  out.push(['assessor: open a review of three 50 MB videos', open]);
  for (const [name, ms] of out) console.log(`web: ${name.padEnd(48)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / a).toFixed(1).padStart(6)} x anchor`);
  console.log(`web: evidence files the workspace read to get there: ${ranges.size} (three videos by byte range for their metadata, the plan and reflection as text)`);
} finally {
  await browser.close();
}
