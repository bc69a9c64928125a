// SPDX-License-Identifier: Apache-2.0
// api.js - the JSON API with the browser's session cookie (server/API.md,
// "Signing in and sessions"). State-changing calls carry X-CSRF-Token.

let csrfToken = null;

export function setCsrf(token) {
  csrfToken = token || null;
}

export function csrf() {
  return csrfToken;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Handlers the app installs: what to do when the session has ended.
export const hooks = { sessionEnded: null };

export async function api(method, path, body, extraHeaders) {
  const headers = { Accept: 'application/json', ...(extraHeaders || {}) };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'network', 'The server could not be reached. Check your connection and try again.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const e = new ApiError(res.status, err.code || 'http_' + res.status,
                           err.message || `The server answered ${res.status}.`);
    e.detail = err.detail;
    if (res.status === 401 && hooks.sessionEnded && !path.startsWith('/v1/sessions'))
      hooks.sessionEnded(e);
    throw e;
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b === undefined ? {} : b);
export const put = (p, b) => api('PUT', p, b);
export const del = (p) => api('DELETE', p);
