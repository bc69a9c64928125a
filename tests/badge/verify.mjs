#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// verify.mjs - checks Open Badges 3.0 VC-JWTs independently of accord, with
// the `jose` JOSE implementation and an OB 3.0 JSON Schema (ajv).
//
//   node verify.mjs --jwks JWKS [--status LIST] [--now EPOCH] BADGE.jwt...
//
// JWKS and LIST are a file or an http(s) URL (the issuer's
// /.well-known/jwks.json and the credentialStatus list). Offline, give files.
// For each badge prints one JSON line {file, ok, status, error, kid, id};
// exits 0 when every badge verified and none is revoked or expired, else 1
// (2 on a usage error).
//
// A badge verifies when: the JOSE header is alg RS256, typ JWT, kid a key of
// the JWKS; the RS256 signature holds; the key was not retired before the
// badge was signed (accord_retired_at >= iat/nbf); iss = issuer.id, jti = id,
// sub = credentialSubject.id or its first identifier's identityHash, nbf =
// validFrom (and exp = validUntil); the payload has the OB 3.0 required fields.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const here = dirname(fileURLToPath(import.meta.url));

function usage(msg) {
  if (msg) console.error('verify.mjs: ' + msg);
  console.error('usage: node verify.mjs --jwks FILE|URL [--status FILE|URL] [--now EPOCH] BADGE.jwt...');
  process.exit(2);
}

async function load(src) {
  if (/^https?:\/\//.test(src)) {
    const r = await fetch(src, { signal: AbortSignal.timeout(10000) });
    if (!r.ok) throw new Error(`${src}: HTTP ${r.status}`);
    return await r.json();
  }
  return JSON.parse(readFileSync(src, 'utf8'));
}

const args = process.argv.slice(2);
let jwksSrc = null, statusSrc = null, now = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--jwks') jwksSrc = args[++i];
  else if (args[i] === '--status') statusSrc = args[++i];
  else if (args[i] === '--now') now = Number(args[++i]);
  else if (args[i].startsWith('--')) usage('unknown option ' + args[i]);
  else files.push(args[i]);
}
if (!jwksSrc || files.length === 0) usage();

const jwks = await load(jwksSrc);
const keySet = jose.createLocalJWKSet(jwks);
const statusList = statusSrc ? await load(statusSrc) : null;
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(join(here, 'ob3-schema.json'), 'utf8')));

function fail(msg) { throw new Error(msg); }

async function verifyOne(file) {
  const jwt = readFileSync(file, 'utf8').trim();
  const header = jose.decodeProtectedHeader(jwt);
  if (header.alg !== 'RS256') fail(`header alg is ${header.alg}, not RS256`);
  if (header.typ !== 'JWT') fail(`header typ is ${header.typ}, not JWT`);
  if (typeof header.kid !== 'string' || !/^https?:\/\//.test(header.kid)) fail('header kid is not a URL');
  const opts = { algorithms: ['RS256'], typ: 'JWT' };
  if (now !== null) opts.currentDate = new Date(now * 1000);
  const { payload } = await jose.jwtVerify(jwt, keySet, opts);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  const signedAt = payload.iat ?? payload.nbf;
  if (jwk && typeof jwk.accord_retired_at === 'number' && signedAt > jwk.accord_retired_at)
    fail(`signed at ${signedAt} with a key retired at ${jwk.accord_retired_at}`);
  if (!payload.issuer || payload.iss !== payload.issuer.id) fail('iss is not issuer.id');
  if (payload.jti !== payload.id) fail('jti is not the credential id');
  const subj = payload.credentialSubject ?? {};
  const subject = subj.id ?? (subj.identifier ?? [])[0]?.identityHash;
  if (!subject || payload.sub !== subject) fail('sub is not credentialSubject.id / identifier');
  if (payload.nbf !== Math.floor(Date.parse(payload.validFrom) / 1000)) fail('nbf is not validFrom');
  if (payload.validUntil !== undefined && payload.exp !== Math.floor(Date.parse(payload.validUntil) / 1000))
    fail('exp is not validUntil');
  if (!validate(payload))
    fail('not an OB 3.0 credential: ' + ajv.errorsText(validate.errors, { separator: '; ' }));
  let status = 'valid';
  if (payload.validUntil !== undefined && Date.parse(payload.validUntil) <= (now ?? Date.now() / 1000) * 1000)
    status = 'expired';
  if (statusList) {
    const cs = payload.credentialStatus;
    if (!cs || cs.type !== '1EdTechRevocationList') fail('credentialStatus is not a 1EdTechRevocationList');
    if (statusList.id !== undefined && statusList.id !== cs.id) fail(`the status list given is ${statusList.id}, the badge names ${cs.id}`);
    const hit = (statusList.revokedCredentials ?? []).find((c) => c.id === payload.id);
    if (hit && hit.revoked !== false) status = 'revoked';
  }
  return { ok: true, status, kid: header.kid, id: payload.id };
}

let allGood = true;
for (const file of files) {
  let out;
  try {
    out = { file, ...(await verifyOne(file)) };
  } catch (e) {
    out = { file, ok: false, status: null, error: `${e.code ? e.code + ': ' : ''}${e.message}` };
  }
  if (!out.ok || out.status !== 'valid') allGood = false;
  console.log(JSON.stringify(out));
}
process.exit(allGood ? 0 : 1);
