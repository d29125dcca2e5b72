// The identity provider the tests link and sign in with: oidc-provider 8 (a certified OpenID
// Provider) on loopback, with its development login and consent pages, which an HTTP client can
// drive. Started by crates/testkit/src/oidc.rs with one JSON argument:
//   { "port", "clients": [{ client_id, client_secret, redirect_uris }], "accounts": path,
//     "access_ttl": seconds, "id_token_ttl": seconds }
// `accounts` is a JSON file read on every look-up ({ "<login>": { claims } }), so a test can
// change what the provider says about a person. Test hooks, on the same port:
//   POST /__test/tamper?mode=…  the next token response's ID token is forged: alg_none,
//        hs256_public_key, unknown_key, bad_signature, wrong_aud, wrong_iss, wrong_nonce,
//        expired, two_aud_no_azp (claims changes are re-signed with the real key)
//   POST /__test/rotate         a new signing key; the old one stays published, the new one signs
//   GET  /__test/stats          { token_requests, refresh_requests }
import http from 'node:http';
import fs from 'node:fs';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;
const stats = { token_requests: 0, refresh_requests: 0 };
let tamper = null;
let keys = [];

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `key-${keys.length + 1}-${Date.now()}`, alg: 'RS256', use: 'sig' };
}

function readAccounts() {
  try {
    return JSON.parse(fs.readFileSync(config.accounts, 'utf8'));
  } catch {
    return {};
  }
}

function build() {
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      ...c,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys },
    cookies: { keys: ['passme-test-cookie-key'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'locale', 'zoneinfo', 'website', 'industry', 'company', 'interests', 'birthdate'],
    },
    features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
    pkce: { methods: ['S256'], required: () => true },
    ttl: {
      AccessToken: config.access_ttl ?? 3600,
      IdToken: config.id_token_ttl ?? 3600,
      RefreshToken: 86400,
      Grant: 86400,
      Session: 86400,
      Interaction: 3600,
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    async findAccount(ctx, id) {
      const stored = readAccounts()[id] ?? {};
      return {
        accountId: id,
        async claims() {
          return { email: `${id}@example.test`, email_verified: true, ...stored, sub: id };
        },
      };
    },
  });
  provider.proxy = false;
  // Counts and forges token responses.
  provider.use(async (ctx, next) => {
    const isToken = ctx.path === '/token' && ctx.method === 'POST';
    await next();
    if (!isToken) return;
    stats.token_requests += 1;
    if (ctx.oidc?.params?.grant_type === 'refresh_token') stats.refresh_requests += 1;
    if (tamper && ctx.status === 200 && ctx.body?.id_token) {
      const mode = tamper;
      tamper = null;
      ctx.body = { ...ctx.body, id_token: await forge(ctx.body.id_token, mode) };
    }
  });
  return provider;
}

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

async function sign(payload, jwk, header = {}) {
  const key = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, ...header }).sign(key);
}

async function forge(token, mode) {
  const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url')));
  const signing = keys[0];
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'alg_none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    case 'hs256_public_key': {
      // The classic key-confusion forgery: HMAC keyed with the provider's published public key.
      const { d, p, q, dp, dq, qi, ...publicJwk } = signing;
      const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
      return new jose.SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: header.kid }).sign(secret);
    }
    case 'unknown_key': {
      const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
      const rogue = { ...(await jose.exportJWK(privateKey)), kid: 'rogue-key' };
      return sign(payload, rogue);
    }
    case 'bad_signature': {
      const [h, p, s] = token.split('.');
      const flipped = Buffer.from(s, 'base64url');
      flipped[0] ^= 1;
      return `${h}.${p}.${flipped.toString('base64url')}`;
    }
    case 'wrong_aud':
      return sign({ ...payload, aud: 'some-other-client' }, signing);
    case 'two_aud_no_azp':
      return sign({ ...payload, aud: [payload.aud, 'some-other-client'], azp: undefined }, signing);
    case 'wrong_iss':
      return sign({ ...payload, iss: 'http://127.0.0.1:1/other-issuer' }, signing);
    case 'wrong_nonce':
      return sign({ ...payload, nonce: 'not-the-nonce' }, signing);
    case 'expired':
      return sign({ ...payload, iat: now - 7200, exp: now - 3600 }, signing);
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
}

keys = [await newKey()];
let provider = build();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/__test/tamper' && req.method === 'POST') {
    tamper = url.searchParams.get('mode');
    res.writeHead(204).end();
    return;
  }
  if (url.pathname === '/__test/rotate' && req.method === 'POST') {
    keys = [await newKey(), ...keys];
    provider = build();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  if (url.pathname === '/__test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
    return;
  }
  provider.callback()(req, res);
});
server.listen(config.port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
