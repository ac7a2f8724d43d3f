// The OpenID provider Plinth's tests get their tokens from: the npm package `oidc-provider`
// (a certified OpenID Provider), configured here and started by `scripts/oidc up`. Test use
// only: loopback, in-memory, throwaway keys, fixed secrets.
//
//   node server.mjs --port N
//
// What it serves, at http://127.0.0.1:N (the shared issuer, which never rotates):
// - OpenID discovery, JWKS, and the token endpoint, with JWT access tokens whose `aud` is the
//   resource indicator (RFC 8707) the client asked for:
//   - client credentials (services and resource providers): clients `plinth-service` (RS256)
//     and `plinth-service-es256` (ES256), secret `secret`;
//   - people: the resource owner password grant (`grant_type=password`, client `plinth-cli`,
//     secret `secret`), registered with oidc-provider's `registerGrantType`. oidc-provider offers
//     no person flow without a browser (the code and device flows end in its HTML login pages);
//     this grant gives the same token a code-flow sign-in would (`sub` = the account, plus
//     `name`, `email`, `preferred_username`, `given_name`). Accounts: ACCOUNTS below.
// - Test routes under /__test/ (loopback only, like the whole server):
//   - POST /__test/issuers                 a new issuer of its own at /issuers/<name>, with its
//                                          own keys, for tests that rotate keys (rotating the
//                                          shared issuer's would break every other test)
//   - POST /__test/issuers/<name>/rotate   a new signing key first: new tokens are signed with
//                                          it, the old key is still published
//   - POST /__test/issuers/<name>/retire   publishes only the newest key of each type
//   - POST /__test/issuers/<name>/sign     {"claims": {...}, "header": {...}, "key": "rsa"|"ec"}
//                                          signs what a test asks with the issuer's newest key
//                                          (expired, not-yet-valid, missing `aud`, oversized:
//                                          tokens the token endpoint rightly never issues)
//   - GET  /__test/issuers/<name>/rsa-public-key.pem   the newest RSA public key, PEM
//   (<name> `main` is the shared issuer; it refuses rotate and retire.)
// A rotation builds a new Provider with the new key set and swaps it in: the key set is fixed
// when a Provider is made, and what tests must see is the rotation as a provider publishes it,
// in its JWKS.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const MAIN = 'main';

const ACCOUNTS = {
  alice: { password: 'alice-password', name: 'Alice Example', given_name: 'Alice', email: 'alice@example.com' },
  bob: { password: 'bob-password', name: 'Bob Example', given_name: 'Bob', email: 'bob@example.com' },
  carol: { password: 'carol-password', name: 'Carol Example', given_name: 'Carol', email: 'carol@example.com' },
};

const CLIENTS = [
  { client_id: 'plinth-service', client_secret: 'secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  { client_id: 'plinth-service-es256', client_secret: 'secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  { client_id: 'plinth-cli', client_secret: 'secret', grant_types: ['password'], redirect_uris: [], response_types: [] },
];

// Any resource indicator is a resource server here: tests ask for Plinth's audience, and for
// another service's to see Plinth refuse it.
const SCOPES = 'read write tenant:* loadbalancer:*';
const ACCESS_TOKEN_TTL = 600;

function port() {
  const i = process.argv.indexOf('--port');
  const value = Number(i > 0 ? process.argv[i + 1] : NaN);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    console.error('usage: node server.mjs --port N');
    process.exit(2);
  }
  return value;
}

async function newKey(kind) {
  const alg = kind === 'rsa' ? 'RS256' : 'ES256';
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = `${kind}-${crypto.randomUUID()}`;
  return { kind, alg, kid, privateKey, publicKey, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

function resourceServerInfo(resource, client) {
  return {
    scope: SCOPES,
    audience: resource,
    accessTokenFormat: 'jwt',
    accessTokenTTL: ACCESS_TOKEN_TTL,
    jwt: { sign: { alg: client.clientId.endsWith('-es256') ? 'ES256' : 'RS256' } },
  };
}

function personClaims(accountId) {
  const account = ACCOUNTS[accountId];
  if (!account) return undefined;
  const { name, given_name, email } = account;
  return { name, given_name, email, preferred_username: accountId };
}

// RFC 6749 §4.3: a person's username and password for a token, at the token endpoint.
async function passwordGrant(ctx) {
  const { provider, client, params } = ctx.oidc;
  const account = ACCOUNTS[params.username];
  if (!account || account.password !== params.password) {
    throw new errors.InvalidGrant('wrong username or password');
  }
  if (!params.resource) {
    throw new errors.InvalidTarget('name the resource server (`resource`) the token is for');
  }
  const info = resourceServerInfo(params.resource, client);
  const offered = new Set(info.scope.split(' '));
  const scope = (params.scope || '').split(' ').filter((s) => offered.has(s)).join(' ') || undefined;
  const grant = new provider.Grant({ accountId: params.username, clientId: client.clientId });
  grant.addResourceScope(params.resource, info.scope);
  const grantId = await grant.save();
  const token = new provider.AccessToken({
    accountId: params.username, client, grantId, gty: 'password', scope,
  });
  token.resourceServer = new provider.ResourceServer(params.resource, info);
  ctx.body = {
    access_token: await token.save(),
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(scope ? { scope } : {}),
  };
}

function makeProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: keys.map((k) => k.jwk) },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource, client) => resourceServerInfo(resource, client),
      },
    },
    findAccount: (_ctx, sub) => (ACCOUNTS[sub] ? { accountId: sub, claims: () => ({ sub, ...personClaims(sub) }) } : undefined),
    extraTokenClaims: (_ctx, token) => (token.accountId ? personClaims(token.accountId) : undefined),
  });
  provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope', 'resource']);
  // Errors a test provokes on purpose (a wrong password) are not worth a stack on stderr.
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  return provider;
}

class Issuer {
  static async create(url) {
    const issuer = new Issuer();
    issuer.url = url;
    issuer.keys = [await newKey('rsa'), await newKey('ec')];
    issuer.rebuild();
    return issuer;
  }

  rebuild() {
    this.provider = makeProvider(this.url, this.keys);
    this.handler = this.provider.callback();
  }

  newest(kind) {
    return this.keys.find((k) => k.kind === kind);
  }

  async rotate() {
    this.keys = [await newKey('rsa'), await newKey('ec'), ...this.keys];
    this.rebuild();
  }

  retire() {
    this.keys = [this.newest('rsa'), this.newest('ec')];
    this.rebuild();
  }

  summary() {
    return { issuer: this.url, kids: this.keys.map((k) => k.kid), rsa_kid: this.newest('rsa').kid, ec_kid: this.newest('ec').kid };
  }
}

async function readJson(req, limit = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

async function sign(issuer, body) {
  const key = issuer.newest(body.key === 'ec' ? 'ec' : 'rsa');
  const header = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...(body.header || {}) };
  return new SignJWT(body.claims || {}).setProtectedHeader(header).sign(key.privateKey);
}

function makeTestRoutes(base, issuers) {
  return async function testRoute(req, res, path) {
    if (req.method === 'POST' && path === '/__test/issuers') {
      const name = `t${crypto.randomUUID().replaceAll('-', '')}`;
      const issuer = await Issuer.create(`${base}/issuers/${name}`);
      issuers.set(name, issuer);
      return send(res, 201, { name, ...issuer.summary() });
    }
    const m = path.match(/^\/__test\/issuers\/([a-z0-9]+)\/([a-z.-]+)$/);
    const issuer = m && issuers.get(m[1]);
    if (!issuer) return send(res, 404, { error: 'no such issuer or route' });
    const action = `${req.method} ${m[2]}`;
    if ((action === 'POST rotate' || action === 'POST retire') && m[1] === MAIN) {
      return send(res, 403, { error: 'the shared issuer never rotates: POST /__test/issuers for one of your own' });
    }
    switch (action) {
      case 'POST rotate': await issuer.rotate(); return send(res, 200, issuer.summary());
      case 'POST retire': issuer.retire(); return send(res, 200, issuer.summary());
      case 'POST sign': return send(res, 200, { token: await sign(issuer, await readJson(req)) });
      case 'GET rsa-public-key.pem':
        return send(res, 200, crypto.KeyObject.from(issuer.newest('rsa').publicKey).export({ type: 'spki', format: 'pem' }), 'application/x-pem-file');
      case 'GET keys': return send(res, 200, issuer.summary());
      default: return send(res, 404, { error: 'no such route' });
    }
  };
}

async function main() {
  const base = `http://${HOST}:${port()}`;
  const issuers = new Map([[MAIN, await Issuer.create(base)]]);
  const testRoute = makeTestRoutes(base, issuers);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, base).pathname;
    if (path.startsWith('/__test/')) {
      testRoute(req, res, path).catch((err) => send(res, 400, { error: String(err.message || err) }));
      return;
    }
    const mounted = path.match(/^\/issuers\/([a-z0-9]+)(\/.*)?$/);
    if (mounted) {
      const issuer = issuers.get(mounted[1]);
      if (!issuer) return send(res, 404, { error: 'no such issuer' });
      // What a mounting framework does: the provider sees its own path, and finds its mount
      // point from the original URL.
      req.originalUrl = req.url;
      req.url = req.url.slice(`/issuers/${mounted[1]}`.length) || '/';
      return issuer.handler(req, res);
    }
    return issuers.get(MAIN).handler(req, res);
  });
  server.listen(Number(new URL(base).port), HOST, () => {
    console.log(`oidc-provider listening on ${base}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
