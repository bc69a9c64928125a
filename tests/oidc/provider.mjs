// SPDX-License-Identifier: Apache-2.0
// provider.mjs - OpenID Providers for accord's sign-in tests, on loopback only.
//
//   node provider.mjs --redirect-uri http://127.0.0.1:PORT/v1/auth/oidc/callback
//
// Prints "oidc-test-provider listening on http://127.0.0.1:PORT" and serves two
// issuers on that port until its standard input closes (the test harness
// holds the pipe) or after 20 minutes, whichever comes first:
//
//   http://127.0.0.1:PORT          the real thing: npm oidc-provider (a
//                                  certified implementation), RS256 keys made
//                                  here, PKCE S256 required; the login and
//                                  consent screens are skipped: the person who
//                                  "signs in" is the one POSTed to /test/next-login.
//   http://127.0.0.1:PORT/forge    a tiny provider that speaks the same
//                                  protocol but hands out deliberately bad
//                                  id_tokens (made with npm jose), chosen by
//                                  POST /test/forge-mode {"mode": ...}:
//                                  good | wrong_key | unknown_kid | wrong_aud |
//                                  expired | replay | wrong_iss | alg_none | rotate |
//                                  mixup (the authorization response names another
//                                  issuer, RFC 9207) | hang (the token endpoint
//                                  never answers)
//
// Client for both: client_id "accord", client_secret "accord-test-secret".
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const args = process.argv.slice(2);
const redirectUri = args[args.indexOf('--redirect-uri') + 1];
if (!redirectUri || !redirectUri.startsWith('http://127.0.0.1:')) {
  console.error('usage: node provider.mjs --redirect-uri http://127.0.0.1:PORT/v1/auth/oidc/callback');
  process.exit(2);
}
const CLIENT_ID = 'accord';
const CLIENT_SECRET = 'accord-test-secret';

async function rsaKey(kid) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, priv, pub, kid };
}

function readBody(req, limit = 65536) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

const server = http.createServer();
server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const issuer = `http://127.0.0.1:${port}`;
  const forgeIssuer = `${issuer}/forge`;

  // ---- the real provider ------------------------------------------------
  const accounts = new Map(); // sub -> claims
  let nextLogin = null;
  const signing = await rsaKey('real-1');
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signing.priv] },
    pkce: { methods: ['S256'], required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'tid'], // tid: as Entra ID sends it
    },
    conformIdTokenClaims: false, // email and name in the id_token itself
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    findAccount: async (ctx, sub) => accounts.has(sub) && {
      accountId: sub,
      claims: async () => ({ sub, ...accounts.get(sub) }),
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider:', err));

  async function interaction(req, res) {
    const details = await provider.interactionDetails(req, res);
    if (!nextLogin) { send(res, 409, { error: 'POST /test/next-login first' }); return; }
    const { sub } = nextLogin;
    const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    nextLogin = null;
    await provider.interactionFinished(req, res, { login: { accountId: sub }, consent: { grantId } },
      { mergeWithLastSubmission: false });
  }

  // ---- the forging provider -----------------------------------------------
  let forgeMode = 'good';
  let forgeKeys = [await rsaKey('forge-1')];
  const strangerKey = await rsaKey('forge-1'); // same kid, another key: never published
  const forgeCodes = new Map(); // code -> {nonce, challenge, sub, claims}
  let lastGoodToken = null;
  let hanging = 0; // token requests held open right now (mode hang)

  async function forgeToken(grant) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: forgeIssuer, aud: CLIENT_ID, sub: grant.sub, nonce: grant.nonce,
      iat: now, exp: now + 300, ...grant.claims,
    };
    let key = forgeKeys[0];
    const header = { alg: 'RS256', kid: key.kid };
    switch (forgeMode) {
      case 'good': break;
      case 'wrong_key': key = strangerKey; break;
      case 'unknown_kid': key = strangerKey; header.kid = 'forge-unknown'; break;
      case 'wrong_aud': claims.aud = 'someone-else'; break;
      case 'expired': claims.iat = now - 7200; claims.exp = now - 3600; break;
      case 'wrong_iss': claims.iss = issuer; break;
      case 'replay': if (lastGoodToken) return lastGoodToken; break;
      case 'mixup': break; // the id_token is fine: the callback's iss is not
      case 'alg_none': {
        const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
        return `${enc({ alg: 'none' })}.${enc(claims)}.`;
      }
      case 'rotate': {
        key = await rsaKey(`forge-${forgeKeys.length + 1}`);
        forgeKeys = [key, ...forgeKeys];
        header.kid = key.kid;
        forgeMode = 'good';
        break;
      }
      default: throw new Error(`unknown forge mode ${forgeMode}`);
    }
    const token = await new jose.SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
    if (forgeMode === 'good') lastGoodToken = token;
    return token;
  }

  async function forge(req, res, url) {
    const path = url.pathname.slice('/forge'.length);
    if (path === '/.well-known/openid-configuration') {
      send(res, 200, {
        issuer: forgeIssuer,
        authorization_endpoint: `${forgeIssuer}/auth`,
        token_endpoint: `${forgeIssuer}/token`,
        jwks_uri: `${forgeIssuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
      });
    } else if (path === '/jwks') {
      send(res, 200, { keys: forgeKeys.map((k) => k.pub) });
    } else if (path === '/auth') {
      const q = url.searchParams;
      if (q.get('client_id') !== CLIENT_ID || q.get('redirect_uri') !== redirectUri ||
          q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !nextLogin) {
        send(res, 400, { error: 'invalid_request' });
        return;
      }
      const code = crypto.randomBytes(16).toString('hex');
      const { sub, ...claims } = nextLogin;
      nextLogin = null;
      forgeCodes.set(code, { nonce: q.get('nonce'), challenge: q.get('code_challenge'), sub, claims });
      const to = new URL(redirectUri);
      to.searchParams.set('code', code);
      to.searchParams.set('state', q.get('state'));
      to.searchParams.set('iss', forgeMode === 'mixup' ? issuer : forgeIssuer);
      res.writeHead(303, { location: to.toString() });
      res.end();
    } else if (path === '/token' && req.method === 'POST' && forgeMode === 'hang') {
      // never answers: the client's own timeout must end the wait
      hanging += 1;
      req.on('close', () => { hanging -= 1; });
      setTimeout(() => res.destroy(), 60000).unref();
    } else if (path === '/token' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const auth = req.headers.authorization || '';
      const [id, secret] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':')
        .map(decodeURIComponent);
      const grant = forgeCodes.get(form.get('code'));
      forgeCodes.delete(form.get('code'));
      const verifier = form.get('code_verifier') || '';
      if (id !== CLIENT_ID || secret !== CLIENT_SECRET) { send(res, 401, { error: 'invalid_client' }); return; }
      if (!grant || form.get('redirect_uri') !== redirectUri ||
          crypto.createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) {
        send(res, 400, { error: 'invalid_grant' });
        return;
      }
      send(res, 200, { access_token: 'x', token_type: 'Bearer', expires_in: 60, id_token: await forgeToken(grant) });
    } else {
      send(res, 404, { error: 'not_found' });
    }
  }

  // ---- routing ----------------------------------------------------------
  const oidc = provider.callback();
  server.on('request', async (req, res) => {
    try {
      const url = new URL(req.url, issuer);
      if (url.pathname === '/test/next-login' && req.method === 'POST') {
        nextLogin = JSON.parse(await readBody(req));
        const { sub, ...claims } = nextLogin;
        accounts.set(sub, claims);
        send(res, 204, '');
      } else if (url.pathname === '/test/forge-mode' && req.method === 'POST') {
        forgeMode = JSON.parse(await readBody(req)).mode;
        send(res, 204, '');
      } else if (url.pathname === '/test/hanging') {
        send(res, 200, { hanging });
      } else if (url.pathname.startsWith('/interaction/')) {
        await interaction(req, res);
      } else if (url.pathname.startsWith('/forge/')) {
        await forge(req, res, url);
      } else {
        oidc(req, res);
      }
    } catch (err) {
      console.error('provider.mjs:', err);
      if (!res.headersSent) send(res, 500, { error: 'server_error' });
    }
  });
  console.log(`oidc-test-provider listening on ${issuer}`);
});

// Stop with the harness: when stdin closes, or after 20 minutes at most.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 20 * 60 * 1000).unref();
