#!/usr/bin/env node
// The lab's scripted user: approves or denies a device-flow user code through the provider's real
// browser pages (the /device form, its confirmation, the login+consent page), no browser needed.
// "Letting a code expire" is simply not calling this script.
//
//   node lab/oidc/approve.mjs --issuer https://127.0.0.1:9443/ --ca .lab/oidc/ca.pem [--login alice] \
//        (approve|deny) USER_CODE
//
// Exit status 0 when the provider confirmed the decision (approved: its success page; denied: the
// device code now carries access_denied), 1 otherwise with the reason on stderr (unknown code, already
// used, expired: the provider's own error page).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import querystring from 'node:querystring';
import { parseArgs } from 'node:util';

const { values: opts, positionals } = parseArgs({
  options: {
    issuer: { type: 'string', default: process.env.OIDC_ISSUER },
    ca: { type: 'string', default: process.env.OIDC_CA_FILE },
    login: { type: 'string', default: 'lab-user' },
  },
  allowPositionals: true,
});
const [decision, userCode] = positionals;
if (!opts.issuer || !['approve', 'deny'].includes(decision) || !userCode) {
  console.error('usage: approve.mjs --issuer URL [--ca FILE] [--login NAME] (approve|deny) USER_CODE');
  process.exit(2);
}
const ca = opts.ca ? readFileSync(opts.ca) : undefined;
const jar = new Map();

function request(method, url, form) {
  const body = form ? querystring.stringify(form) : undefined;
  const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method,
      ca,
      headers: {
        ...(cookie ? { Cookie: cookie } : {}),
        ...(body ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } : {}),
      },
    }, (res) => {
      for (const line of res.headers['set-cookie'] || []) {
        const [pair, ...attrs] = line.split(';');
        const i = pair.indexOf('=');
        const name = pair.slice(0, i).trim();
        const value = pair.slice(i + 1).trim();
        const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
        if (expired || value === '') jar.delete(name); else jar.set(name, value);
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location, text }));
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (body) req.write(body);
    req.end();
  });
}

// Follow redirects (GET), as a browser does after a 302/303.
async function browse(method, url, form) {
  let res = await request(method, url, form);
  for (let hops = 0; res.status >= 300 && res.status < 400 && res.location; hops += 1) {
    if (hops > 10) throw new Error('too many redirects');
    url = new URL(res.location, url).href;
    res = await request('GET', url);
  }
  return { ...res, url };
}

function inputs(html) {
  const fields = {};
  for (const m of html.matchAll(/<input\b[^>]*>/g)) {
    const name = m[0].match(/name="([^"]*)"/)?.[1];
    const value = m[0].match(/value="([^"]*)"/)?.[1] ?? '';
    if (name) fields[name] = value.replace(/&#(\d+);/g, (x, c) => String.fromCharCode(Number(c)));
  }
  return fields;
}

function action(html, base) {
  const a = html.match(/<form\b[^>]*action="([^"]*)"/)?.[1];
  if (!a) throw new Error('no form on the page');
  return new URL(a.replace(/&amp;/g, '&'), base).href;
}

function providerError(html) {
  const error = html.match(/<p id="error">([^<]*)<\/p>\s*<p>([^<]*)<\/p>/);
  if (error) return `${error[1]}: ${error[2]}`;
  const msg = html.match(/<p class="error">([^<]*)<\/p>/);
  return msg ? msg[1] : null;
}

function fail(message) {
  console.error(`approve.mjs: ${decision} ${userCode}: ${message}`);
  process.exit(1);
}

const deviceUrl = new URL('device', opts.issuer.endsWith('/') ? opts.issuer : `${opts.issuer}/`).href;
// 1. The verification URI with the code (verification_uri_complete): an auto-submitting form.
let page = await browse('GET', `${deviceUrl}?${querystring.stringify({ user_code: userCode })}`);
if (page.status !== 200) fail(`GET /device answered ${page.status}`);
// 2. Submit it: the confirmation page (or the input page again with an error for an unknown code).
page = await browse('POST', action(page.text, page.url), inputs(page.text));
if (!/id="op.deviceConfirmForm"/.test(page.text)) fail(providerError(page.text) || `unexpected page (${page.status})`);
// 3. Confirm the device: the provider starts its interaction (login + consent page).
page = await browse('POST', action(page.text, page.url), inputs(page.text));
if (!/id="consent"/.test(page.text)) fail(providerError(page.text) || `unexpected page (${page.status})`);
// 4. Log in as the lab user and approve, or deny.
page = await browse('POST', action(page.text, page.url), { login: opts.login, decision });
if (decision === 'approve') {
  if (!/<p id="result">approved<\/p>/.test(page.text)) fail(providerError(page.text) || `not approved (${page.status})`);
  console.log(`approved ${userCode} as ${opts.login}`);
} else {
  const error = providerError(page.text) || '';
  if (!/AbortedError.*access_denied/.test(error)) fail(`the provider did not record the denial (${page.status} ${error})`);
  console.log(`denied ${userCode}`);
}
