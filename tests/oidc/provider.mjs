// A real OpenID provider (node-oidc-provider) for EnvShield's tests.
//
// Configured by the OIDC_TEST_CONFIG environment variable (JSON):
//   port       loopback port to listen on (0 picks a free one)
//   clients    registered clients: client_id, client_secret, redirect_uris
//   accounts   { "<login>": { email, email_verified, groups, name } }
//   misbehave  optional: "wrong_nonce" (ID tokens carry another nonce) or
//              { "audience": "<client_id>" } (ID tokens are issued for that
//              other registered client)
// Prints "listening <port>" once it accepts connections. Every start signs
// with a fresh RSA key under a fresh `kid`, so restarting it on the same
// port is a key rotation.
//
// People sign in through the provider's own login and consent forms
// (devInteractions): any password is accepted for a configured login.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const spec = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');

const server = http.createServer();
await new Promise((resolve) => server.listen(spec.port ?? 0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

const accounts = spec.accounts ?? {};

const provider = new Provider(issuer, {
  clients: (spec.clients ?? []).map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  async findAccount(ctx, sub) {
    const claims = accounts[sub];
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { sub, ...claims }; } };
  },
});

// Ways a provider can go wrong, for the tests that prove EnvShield notices.
const misbehave = spec.misbehave ?? null;
if (misbehave === 'wrong_nonce') {
  const set = provider.IdToken.prototype.set;
  provider.IdToken.prototype.set = function setClaim(key, value) {
    return set.call(this, key, key === 'nonce' && value ? `${value}-not-yours` : value);
  };
} else if (misbehave && misbehave.audience) {
  const issue = provider.IdToken.prototype.issue;
  provider.IdToken.prototype.issue = async function issueFor(options) {
    if (options?.use === 'idtoken') {
      this.client = await provider.Client.find(misbehave.audience);
    }
    return issue.call(this, options);
  };
}

// Test control: PUT /__test/accounts replaces the accounts (new claims for
// the next sign-in) without a restart, which would rotate the key.
const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url === '/__test/accounts' && req.method === 'PUT') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const next = JSON.parse(body);
      for (const key of Object.keys(accounts)) delete accounts[key];
      Object.assign(accounts, next);
      res.writeHead(204).end();
    });
    return;
  }
  callback(req, res);
});
process.stdout.write(`listening ${port}\n`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
