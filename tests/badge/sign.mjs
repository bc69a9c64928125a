#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// sign.mjs - signs a JWT payload (stdin) with a PKCS#8 PEM private key, for
// the tests that forge badges (a rotated-out key must not be accepted).
//   node sign.mjs KEY.pem KID < payload.json
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const [pemFile, kid] = process.argv.slice(2);
if (!pemFile || !kid) {
  console.error('usage: node sign.mjs KEY.pem KID < payload.json');
  process.exit(2);
}
const key = await jose.importPKCS8(readFileSync(pemFile, 'utf8'), 'RS256');
const payload = JSON.parse(readFileSync(0, 'utf8'));
const jwt = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
  .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
  .sign(key);
console.log(jwt);
