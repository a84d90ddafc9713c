// The lab's OpenID Connect provider: a real npm `oidc-provider` (v9) configured like INDIGO IAM as far
// as oidc-agent can tell (see ../../../shared/REFERENCE.md §2 in the workspace):
//   - device authorization grant (RFC 8628) without an `interval` in the answer (oidc-agent then polls
//     every 5 s), device codes living 600 s; a device code polled after its deadline is answered, like IAM once
//     its cleanup removed the code, with invalid_grant "Invalid device code" (not expired_token);
//   - open dynamic client registration (oidc-gen registers its own client) and optional pre-registered
//     clients;
//   - `offline_access` gives a refresh token that is never rotated and lives 30 days from approval, not
//     extended by use; by default it is an unsigned JWT (`{"alg":"none"}`) carrying `exp`, like IAM's;
//   - revocation (oidc-gen -d) and registration management.
// Served over HTTPS with the certificate made by start.sh (its own CA). Storage is in memory: a restart
// forgets every client and token, like a wiped provider.
//
// The user is scripted: /interaction/<uid> is a one-form "login and consent" page (any login name is
// accepted, no password) that approve.mjs fills in. Lab-only administration: GET/PUT /lab/settings with
// `Authorization: Bearer $LAB_OIDC_ADMIN_TOKEN` changes the lifetimes at run time (for tests).
//
// Environment (all optional except the TLS files):
//   LAB_OIDC_HOST (127.0.0.1), LAB_OIDC_PORT (9443), LAB_OIDC_ISSUER (https://HOST:PORT/),
//   LAB_OIDC_TLS_CERT, LAB_OIDC_TLS_KEY            PEM files of the server certificate and key
//   LAB_OIDC_REFRESH_TOKEN_TTL   seconds (2592000 = 30 days)
//   LAB_OIDC_REFRESH_TOKEN_FORMAT jwt (IAM-like unsigned JWT with exp) | opaque
//   LAB_OIDC_DEVICE_CODE_TTL     seconds (600)
//   LAB_OIDC_DEVICE_INTERVAL     seconds; unset = no `interval` in the answer (like IAM)
//   LAB_OIDC_DEVICE_CODE_CLEANUP seconds after a device code's deadline until it is forgotten (0, like IAM once its
//                                cleanup ran: invalid_grant "Invalid device code"); `never` = oidc-provider's own
//                                expired_token forever
//   LAB_OIDC_ACCESS_TOKEN_TTL    seconds (3600)
//   LAB_OIDC_CLIENTS             JSON list of pre-registered clients (oidc-provider client metadata)
//   LAB_OIDC_ADMIN_TOKEN         bearer token of /lab/settings (unset = /lab/settings disabled)
//   LAB_OIDC_SERVICE_CLIENTS     JSON list of service accounts, IAM's client-credentials clients: {client_id,
//                                client_secret}; client_secret_basic; their access tokens are IAM-like JWTs (sub and
//                                client_id the client, aud the request's `audience` else lab-s3, scope, exp), the
//                                ones of every other grant stay opaque. PUT /lab/clients/<id> (admin token) with
//                                {"client_secret": "..."} rotates a secret at the provider (the old one is then
//                                refused: invalid_client), {"enabled": false|true} disables or enables the client.
//   LAB_OIDC_CLIENT_CREDENTIALS_TTL seconds of those access tokens (3600)
// <issuer>lab/no-token-endpoint/ is an issuer whose discovery document names no token_endpoint (for tests).
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import https from 'node:https';
import querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

const env = process.env;
const host = env.LAB_OIDC_HOST || '127.0.0.1';
const port = Number(env.LAB_OIDC_PORT || 9443);
const issuer = env.LAB_OIDC_ISSUER || `https://${host}:${port}/`;

function seconds(name, fallback) {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer (seconds), not ${value}`);
  return n;
}

// Mutable at run time through /lab/settings.
const settings = {
  refresh_token_ttl: seconds('LAB_OIDC_REFRESH_TOKEN_TTL', 30 * 24 * 3600),
  refresh_token_format: env.LAB_OIDC_REFRESH_TOKEN_FORMAT || 'jwt',
  device_code_ttl: seconds('LAB_OIDC_DEVICE_CODE_TTL', 600),
  device_interval: env.LAB_OIDC_DEVICE_INTERVAL ? seconds('LAB_OIDC_DEVICE_INTERVAL') : null,
  // null: never forgotten
  device_code_cleanup: env.LAB_OIDC_DEVICE_CODE_CLEANUP === 'never' ? null
    : (env.LAB_OIDC_DEVICE_CODE_CLEANUP ? Number(env.LAB_OIDC_DEVICE_CODE_CLEANUP) : 0),
  access_token_ttl: seconds('LAB_OIDC_ACCESS_TOKEN_TTL', 3600),
  client_credentials_ttl: seconds('LAB_OIDC_CLIENT_CREDENTIALS_TTL', 3600),
};
if (!['jwt', 'opaque'].includes(settings.refresh_token_format)) {
  throw new Error('LAB_OIDC_REFRESH_TOKEN_FORMAT must be jwt or opaque');
}

const grantTypes = ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'authorization_code'];
const clients = (env.LAB_OIDC_CLIENTS ? JSON.parse(env.LAB_OIDC_CLIENTS) : []).map((client) => ({
  grant_types: grantTypes,
  response_types: ['code'],
  redirect_uris: ['http://localhost:4242'],
  scope: 'openid profile email offline_access',
  ...client,
}));

// Service accounts (client credentials only) and the resource indicator their tokens are issued for.
const serviceClients = (env.LAB_OIDC_SERVICE_CLIENTS ? JSON.parse(env.LAB_OIDC_SERVICE_CLIENTS) : []).map((client) => ({
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
}));
const serviceClientIds = new Set(serviceClients.map((client) => client.client_id));
const SERVICE_RESOURCE = 'urn:lab:object-storage';
const tokenForm = (ctx) => querystring.parse(typeof ctx.req.body === 'string' ? ctx.req.body : '');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const configuration = {
  clients: [...clients, ...serviceClients],
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'RS256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: `Lab user ${id}`, preferred_username: id, email: `${id}@lab.invalid`, email_verified: true };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      charset: 'base-20',
      mask: '****-****',
      userCodeInputSource: async (ctx, form, out, err) => {
        // err: NotFoundError, ExpiredError, AlreadyUsedError, NoCodeError, or AbortedError (its cause
        // being the denial, access_denied).
        const reason = err ? `${err.name}: ${err.message}${err.cause?.error ? ` (${err.cause.error})` : ''}` : '';
        page(ctx, 'Device sign-in', `${err ? `<p class="error">${escape(reason)}</p>` : ''}${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
        page(ctx, 'Confirm device', `<p>Client <b>${escape(client.clientName || client.clientId)}</b> asks for access.
The device shows the code <code id="user_code">${escape(userCode)}</code>.</p>${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
      },
      successSource: async (ctx) => {
        page(ctx, 'Sign-in success', '<p id="result">approved</p>');
      },
    },
    registration: { enabled: true },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
    // A client revokes its own tokens only.
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    introspection: { enabled: true },
    // Service accounts: the client_credentials grant with IAM-like JWT access tokens; other grants get no resource
    // (opaque tokens, as before).
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client) => (tokenForm(ctx).grant_type === 'client_credentials'
        && serviceClientIds.has(client?.clientId) ? SERVICE_RESOURCE : undefined),
      getResourceServerInfo: async (ctx, resource) => {
        if (resource !== SERVICE_RESOURCE) throw new errors.InvalidTarget();
        const form = tokenForm(ctx);
        return {
          scope: typeof form.scope === 'string' ? form.scope : '',
          audience: typeof form.audience === 'string' && form.audience ? form.audience : 'lab-s3',
          accessTokenFormat: 'jwt',
          accessTokenTTL: settings.client_credentials_ttl,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
      useGrantedResource: async () => false,
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  rotateRefreshToken: false,
  // Refresh tokens for every client that may use them and asked for offline_access (the default rule).
  ttl: {
    AccessToken: () => settings.access_token_ttl,
    ClientCredentials: () => settings.client_credentials_ttl,
    IdToken: () => settings.access_token_ttl,
    DeviceCode: () => settings.device_code_ttl,
    RefreshToken: () => settings.refresh_token_ttl,
    // The grant behind a refresh token must outlive it.
    Grant: () => Math.max(settings.refresh_token_ttl, 14 * 24 * 3600),
    Session: () => 24 * 3600,
    Interaction: () => 3600,
  },
  // The (mostly) default refresh token rule, spelled out: offline_access + refresh_token grant allowed.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  renderError(ctx, out) {
    page(ctx, 'Error', `<p id="error">${escape(out.error)}</p><p>${escape(out.error_description || '')}</p>`);
  },
};

const provider = new Provider(issuer, configuration);

// Lab administration of the service accounts (PUT /lab/clients/<id>): a rotated secret or a disabled client.
const clientOverrides = new Map();
const compareClientSecret = provider.Client.prototype.compareClientSecret;
provider.Client.prototype.compareClientSecret = async function labCompareClientSecret(actual) {
  const override = clientOverrides.get(this.clientId) || {};
  if (override.enabled === false) return false;
  if (typeof override.client_secret === 'string') {
    return typeof actual === 'string' && actual.length === override.client_secret.length
      && timingSafeEqual(Buffer.from(actual), Buffer.from(override.client_secret));
  }
  return compareClientSecret.call(this, actual);
};

async function labClients(req, res, id) {
  if (!isAdmin(req)) {
    send(res, 401, 'application/json', '{"error":"missing or wrong admin token"}\n');
    return;
  }
  if (!serviceClientIds.has(id)) {
    send(res, 404, 'application/json', '{"error":"no such service account"}\n');
    return;
  }
  const update = JSON.parse(await readBody(req) || '{}');
  const override = { ...(clientOverrides.get(id) || {}) };
  if ('client_secret' in update) {
    if (typeof update.client_secret !== 'string' || !update.client_secret) throw new Error('client_secret: a non-empty string');
    override.client_secret = update.client_secret;
  }
  if ('enabled' in update) override.enabled = Boolean(update.enabled);
  clientOverrides.set(id, override);
  send(res, 200, 'application/json', `${JSON.stringify({ client_id: id, enabled: override.enabled !== false, rotated: 'client_secret' in override })}\n`);
}

// IAM's refresh tokens are unsigned JWTs (`{"alg":"none"}`) carrying exp. oidc-provider's refresh
// tokens are opaque: the lab keeps storing them under their opaque id and hands the client an unsigned
// JWT wrapping that id (jti) and the stored exp. Requests carrying such a JWT (refresh grant, revocation,
// introspection) are unwrapped back to the id before oidc-provider sees them (it would otherwise refuse
// a JWT at revocation), and a refresh answer gets the JWT again.
const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
function wrapRefreshToken(jti, exp, iat) {
  return `${b64url({ alg: 'none' })}.${b64url({ jti, exp, iat, iss: issuer })}.`;
}
function unwrapRefreshToken(value) {
  const parts = typeof value === 'string' ? value.split('.') : [];
  if (parts.length !== 3 || parts[2] !== '') return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    return header.alg === 'none' && claims.iss === issuer && typeof claims.jti === 'string' ? claims.jti : null;
  } catch {
    return null;
  }
}
// Ids of the tokens handed out as JWTs (a format change at run time leaves older tokens as they were).
const issuedAsJwt = new Set();
const opaqueValueAndPayload = provider.RefreshToken.prototype.getValueAndPayload;
provider.RefreshToken.prototype.getValueAndPayload = async function getValueAndPayload() {
  const result = await opaqueValueAndPayload.call(this);
  if (settings.refresh_token_format !== 'jwt') return result;
  issuedAsJwt.add(this.jti);
  return { ...result, value: wrapRefreshToken(this.jti, result.payload.exp, result.payload.iat) };
};
provider.use(async (ctx, next) => {
  await next();
  const value = ctx.oidc?.route === 'token' && ctx.status === 200 ? ctx.body?.refresh_token : undefined;
  if (value && !unwrapRefreshToken(value)) {
    const token = await provider.RefreshToken.find(value, { ignoreExpiration: true });
    if (token && issuedAsJwt.has(token.jti)) {
      ctx.body = { ...ctx.body, refresh_token: wrapRefreshToken(token.jti, token.exp, token.iat) };
    }
  }
});

// The form parameter holding a refresh token, per endpoint.
const tokenParams = { '/token': 'refresh_token', '/token/revocation': 'token', '/token/introspection': 'token' };
async function unwrapFormToken(req, param) {
  let body = '';
  for await (const chunk of req) body += chunk;
  const form = querystring.parse(body);
  const jti = unwrapRefreshToken(form[param]);
  if (jti) {
    form[param] = jti;
    body = querystring.stringify(form);
  }
  req.body = body;
  return form;
}

// IAM removes expired device codes in a periodic cleanup; a poll with a removed (or never issued) code is then
// answered `invalid_grant` "Invalid device code". True when it answered so.
async function forgottenDeviceCode(form, res) {
  if (form.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code' || settings.device_code_cleanup === null) {
    return false;
  }
  const code = typeof form.device_code === 'string'
    ? await provider.DeviceCode.find(form.device_code, { ignoreExpiration: true }) : undefined;
  if (code && Date.now() / 1000 < code.exp + settings.device_code_cleanup) return false;
  send(res, 400, 'application/json', `${JSON.stringify({ error: 'invalid_grant', error_description: 'Invalid device code' })}\n`);
  return true;
}

// IAM sends no `interval`; the lab may send one to make tests poll faster.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && settings.device_interval) {
    ctx.body = { ...ctx.body, interval: settings.device_interval };
  }
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
// Why a request was refused (no secrets: error codes and oidc-provider's detail only).
for (const event of ['grant.error', 'device_authorization.error', 'revocation.error', 'introspection.error',
  'registration_read.error', 'registration_update.error', 'registration_delete.error', 'userinfo.error',
  'code_verification.error', 'authorization.error']) {
  provider.on(event, (ctx, err) => {
    if (err.error === 'authorization_pending') return; // every poll of a waiting device
    console.error(`${event}: ${err.error}: ${err.error_description}${err.error_detail ? ` (${err.error_detail})` : ''}`);
  });
}
provider.on('registration_create.error', (ctx, err) => console.error('registration refused:', err.message,
  JSON.stringify(ctx.oidc.body?.redirect_uris), JSON.stringify(ctx.oidc.body?.grant_types)));

// oidc-gen registers as application_type "web" with http://localhost:<port> redirect URIs and a
// private-use scheme (edu.kit.data.oidc-agent:/redirect). IAM accepts that; oidc-provider accepts such
// URIs for native clients only. Like IAM, the lab takes that registration as a native client, unless
// LAB_OIDC_STRICT_REGISTRATION=1 (then oidc-gen needs --redirect-uri=http://localhost:4242).
async function iamLikeRegistration(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  try {
    const metadata = JSON.parse(body);
    const uris = metadata.redirect_uris || [];
    if (metadata.application_type === 'web' && uris.some((uri) => !/^https?:/.test(uri))) {
      metadata.application_type = 'native';
    }
    body = JSON.stringify(metadata);
  } catch {
    // not JSON: the provider answers it
  }
  req.body = body;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(ctx, title, body) {
  ctx.type = 'html';
  ctx.body = html(title, body);
}

function html(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>
${body}
</body></html>`;
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

async function readBody(req, limit = 65536) {
  let data = '';
  for await (const chunk of req) {
    data += chunk;
    if (data.length > limit) throw new Error('request body too large');
  }
  return data;
}

// The scripted user's login + consent page: one form, approve or deny.
async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, 'text/plain', 'interaction mismatch\n');
    return;
  }
  if (req.method === 'GET') {
    const client = await provider.Client.find(details.params.client_id);
    send(res, 200, 'text/html; charset=utf-8', html('Sign in and authorize', `
<p>Client <b>${escape(client?.clientName || details.params.client_id)}</b> asks for: <span id="scope">${escape(details.params.scope || '')}</span></p>
<form id="consent" method="post" action="/interaction/${escape(uid)}">
<input type="text" name="login" value="lab-user"/>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`));
    return;
  }
  const form = querystring.parse(await readBody(req));
  if (form.decision === 'deny') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User denied the authorization request',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (form.decision !== 'approve' || !form.login || !/^[A-Za-z0-9._@-]{1,64}$/.test(form.login)) {
    send(res, 400, 'text/plain', 'decision must be approve or deny, login a plain user name\n');
    return;
  }
  const accountId = form.login;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  // Consent to everything asked for (the scopes of the request, including offline_access).
  if (details.params.scope) grant.addOIDCScope(details.params.scope);
  const { missingOIDCClaims, missingResourceScopes } = details.prompt.details || {};
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: true });
}

function isAdmin(req) {
  const expected = env.LAB_OIDC_ADMIN_TOKEN;
  const got = (req.headers.authorization || '').replace(/^Bearer /, '');
  if (!expected || got.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(got), Buffer.from(expected));
}

async function labSettings(req, res) {
  if (!isAdmin(req)) {
    send(res, 401, 'application/json', '{"error":"missing or wrong admin token"}\n');
    return;
  }
  if (req.method === 'PUT' || req.method === 'POST') {
    const update = JSON.parse(await readBody(req) || '{}');
    for (const [key, value] of Object.entries(update)) {
      if (!(key in settings)) throw new Error(`unknown setting ${key}`);
      if (key === 'refresh_token_format' && !['jwt', 'opaque'].includes(value)) throw new Error('refresh_token_format: jwt or opaque');
      if ((key === 'device_interval' || key === 'device_code_cleanup') && value === null) { settings[key] = null; continue; }
      if (key === 'device_code_cleanup' && Number.isInteger(value) && value >= 0) { settings[key] = value; continue; }
      if (key !== 'refresh_token_format' && !(Number.isInteger(value) && value > 0)) throw new Error(`${key}: positive integer`);
      settings[key] = value;
    }
  }
  send(res, 200, 'application/json', `${JSON.stringify(settings)}\n`);
}

const callback = provider.callback();
const server = https.createServer({
  cert: readFileSync(env.LAB_OIDC_TLS_CERT),
  key: readFileSync(env.LAB_OIDC_TLS_KEY),
}, async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const m = path.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
  try {
    if (m) {
      await interaction(req, res, m[1]);
    } else if (path === '/reg' && req.method === 'POST' && env.LAB_OIDC_STRICT_REGISTRATION !== '1') {
      await iamLikeRegistration(req);
      callback(req, res);
    } else if (req.method === 'POST' && tokenParams[path]) {
      const form = await unwrapFormToken(req, tokenParams[path]);
      if (path !== '/token' || !(await forgottenDeviceCode(form, res))) callback(req, res);
    } else if (path === '/lab/no-token-endpoint/.well-known/openid-configuration') {
      send(res, 200, 'application/json', `${JSON.stringify({ issuer: `${issuer}lab/no-token-endpoint/`, jwks_uri: `${issuer}jwks` })}\n`);
    } else if (path.startsWith('/lab/clients/') && req.method === 'PUT') {
      await labClients(req, res, decodeURIComponent(path.slice('/lab/clients/'.length)));
    } else if (path === '/lab/settings') {
      await labSettings(req, res);
    } else {
      callback(req, res);
    }
  } catch (err) {
    if (!res.headersSent) send(res, 400, 'text/plain', `${err.name}: ${err.message}\n`);
    else res.end();
  }
});

server.listen(port, host, () => {
  console.log(JSON.stringify({ issuer, host, port, settings }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}
