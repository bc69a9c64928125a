// SPDX-License-Identifier: Apache-2.0
// lib.mjs - the browser stories' small toolkit: a test list, pages that
// fail on console errors and CSP violations, axe-core checks, waiting.
import { AxeBuilder } from '@axe-core/playwright';

export const tests = [];
export function test(name, fn) {
  tests.push({ name, fn });
}

export class Failure extends Error {}

export function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// Polls fn until it returns a truthy value (bounded: no test waits forever).
export async function until(fn, what, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Failure(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A browser context for one person; console errors and CSP refusals fail the test.
export async function person(browser, fx, problems, opts = {}) {
  const ctx = await browser.newContext({ baseURL: fx.base, viewport: opts.viewport || { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(20000);
  const page = await ctx.newPage();
  page.on('console', (m) => {
    // a 4xx the app expects (GET /v1/me before signing in) is logged by the
    // browser as "Failed to load resource"; anything else (a CSP refusal, a
    // script error) fails the story
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()) &&
        !(opts.allow && opts.allow.test(m.text()))) problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception on ${page.url()}: ${e.message}`));
  return { ctx, page };
}

// axe-core: no serious or critical violation on the page as it is now.
export const timing = { axe: 0, axeRuns: 0, signIn: 0 };

export async function axe(page, what, seen) {
  const t0 = Date.now();
  // Legacy mode runs axe.run in the page itself; the default (runPartial)
  // opens a blank page per check to merge frame results, which the app (no
  // iframes) does not need and which was most of the suite's time.
  const r = await new AxeBuilder({ page }).setLegacyMode(true).options({ resultTypes: ['violations'] }).analyze();
  timing.axe += Date.now() - t0;
  timing.axeRuns += 1;
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (seen) seen.add(what);
  // a value the page forgot to format shows as text
  const stray = await page.evaluate(() => (document.body.innerText.match(/\b(null|undefined|NaN)\b|\[object \w+\]/) || [null])[0]);
  if (stray) throw new Failure(`${what}: the page shows "${stray}"`);
  if (bad.length)
    throw new Failure(`axe-core on ${what}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`).join(' | ')}`);
}

export async function signIn(page, email, password) {
  const t0 = Date.now();
  await page.goto('/');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  timing.signIn += Date.now() - t0;
}

// n short WebM clips recorded from a canvas by the browser itself (no video
// tool needed), each different (colour and text), `seconds` long.
export async function makeVideos(browser, n, seconds) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const clips = await page.evaluate(async ({ n, seconds }) => {
    const one = (i) => new Promise((resolve) => {
      const c = document.createElement('canvas');
      c.width = 160; c.height = 120;
      const g = c.getContext('2d');
      const stream = c.captureStream(15);
      const rec = new MediaRecorder(stream, { mimeType: 'video/webm' });
      const parts = [];
      rec.ondataavailable = (e) => parts.push(e.data);
      rec.onstop = async () => {
        const buf = new Uint8Array(await new Blob(parts).arrayBuffer());
        let s = '';
        for (let k = 0; k < buf.length; k += 0x8000) s += String.fromCharCode(...buf.subarray(k, k + 0x8000));
        resolve(btoa(s));
      };
      let frame = 0;
      const draw = setInterval(() => {
        g.fillStyle = `hsl(${(i * 97 + frame * 5) % 360} 70% 50%)`;
        g.fillRect(0, 0, 160, 120);
        g.fillStyle = '#fff';
        g.fillText(`clip ${i} frame ${frame++}`, 10, 60);
      }, 60);
      rec.start(250);
      setTimeout(() => { clearInterval(draw); rec.stop(); }, seconds * 1000);
    });
    return Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  }, { n, seconds });
  await ctx.close();
  return clips.map((b) => Buffer.from(b, 'base64'));
}
