// SPDX-License-Identifier: Apache-2.0
// tus.js - resumable uploads to /v1/uploads (tus 1.0 core + creation).
//
// Why not tus-js-client: the server speaks only the core protocol and the
// creation extension, which come to ~150 lines here; tus-js-client is a CommonJS
// package that would need a bundler in the build, and its ~60 KB would be
// most of the first load. What it gives that matters is kept: resuming
// after a dropped connection (ask HEAD for the offset, go on from there,
// with backoff) and after a reload (the upload URL is remembered in
// localStorage under the file's fingerprint, so choosing the same file again
// continues where it stopped).
import { csrf } from './api.js';

const CHUNK = 4 * 1024 * 1024; // under the server's --max-body, small enough for smooth progress
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const STORE = 'accord.tus.';

export function fingerprint(file, kind, userId) {
  return `${userId}:${kind}:${file.name}:${file.size}:${file.lastModified}`;
}

function b64(s) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}

function xhr(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    x.setRequestHeader('Tus-Resumable', '1.0.0');
    const token = csrf();
    if (token) x.setRequestHeader('X-CSRF-Token', token);
    for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
    if (onProgress) x.upload.onprogress = (ev) => onProgress(ev.loaded);
    x.onload = () => resolve(x);
    x.onerror = () => reject(Object.assign(new Error('network'), { network: true }));
    x.onabort = () => reject(Object.assign(new Error('aborted'), { aborted: true }));
    x.send(body === undefined ? null : body);
  });
}

function errorOf(x) {
  try {
    const e = JSON.parse(x.responseText).error;
    return Object.assign(new Error(e.message), { status: x.status, code: e.code });
  } catch (err) {
    return Object.assign(new Error(`The server answered ${x.status}.`), { status: x.status });
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Uploads `file`; calls onProgress(sent, total) and onState(text); resolves
// with the artifact id. cancel() stops it (the upload stays resumable).
export function upload(file, { kind, userId, onProgress, onState }) {
  const key = STORE + fingerprint(file, kind, userId);
  let stopped = false;
  let current = null;
  const promise = (async () => {
    let url = localStorage.getItem(key);
    let offset = 0;
    if (url) {
      const x = await xhr('HEAD', url).catch(() => null);
      if (x && x.status === 200) {
        offset = Number(x.getResponseHeader('Upload-Offset')) || 0;
        onState(offset ? 'Resuming' : 'Uploading');
      } else if (x && x.status === 409) {
        url = null;
      } else {
        url = null;
      }
    }
    if (!url) {
      const meta = `kind ${b64(kind)},filename ${b64(file.name)},filetype ${b64(file.type || 'application/octet-stream')}`;
      const x = await xhr('POST', '/v1/uploads', { 'Upload-Length': String(file.size), 'Upload-Metadata': meta });
      if (x.status !== 201) throw errorOf(x);
      url = x.getResponseHeader('Location');
      localStorage.setItem(key, url);
      onState('Uploading');
    }
    onProgress(offset, file.size);
    let failures = 0;
    for (;;) {
      if (stopped) throw Object.assign(new Error('Stopped'), { aborted: true });
      const end = Math.min(offset + CHUNK, file.size);
      let x;
      try {
        const start = offset;
        current = xhr('PATCH', url, { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset) },
                      file.slice(offset, end), (n) => onProgress(start + n, file.size));
        x = await current;
      } catch (e) {
        if (e.aborted && stopped) throw e;
        x = null;
      }
      if (x && x.status === 204) {
        failures = 0;
        offset = Number(x.getResponseHeader('Upload-Offset'));
        onProgress(offset, file.size);
        const artifact = x.getResponseHeader('X-Artifact-Id');
        if (artifact) {
          localStorage.removeItem(key);
          return artifact;
        }
        if (offset >= file.size) {
          // the bytes are all there but the artifact was not made: finish it
          continue;
        }
        continue;
      }
      if (x && x.status === 409) {
        const err = errorOf(x);
        if (err.code === 'upload_complete') {
          const g = await xhr('GET', url);
          const info = JSON.parse(g.responseText);
          localStorage.removeItem(key);
          return info.artifact_id;
        }
        if (err.code !== 'offset_mismatch') throw err;
      } else if (x && x.status !== 423 && x.status < 500 && x.status !== 0) {
        if (x.status === 404) localStorage.removeItem(key);
        throw errorOf(x);
      }
      // dropped connection, server busy, or a stale offset: wait, ask where we are, go on
      const delay = RETRY_DELAYS[Math.min(failures, RETRY_DELAYS.length - 1)];
      failures += 1;
      onState(x ? 'Waiting for the server' : 'Connection lost, retrying');
      await sleep(delay);
      const head = await xhr('HEAD', url).catch(() => null);
      if (head && head.status === 200) {
        offset = Number(head.getResponseHeader('Upload-Offset')) || 0;
        onState('Uploading');
      } else if (head && head.status === 404) {
        localStorage.removeItem(key);
        throw Object.assign(new Error('The upload expired on the server. Add the file again.'), { status: 404 });
      }
    }
  })();
  return {
    promise,
    cancel() {
      stopped = true;
    },
  };
}

// Whether an unfinished upload of this file is remembered (to say "resumes").
export function pending(file, kind, userId) {
  return localStorage.getItem(STORE + fingerprint(file, kind, userId)) !== null;
}
