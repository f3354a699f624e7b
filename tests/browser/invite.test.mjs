// Invite links (issue 11) on a gateway started with --api-key, where a browser cannot join
// without one: the key mints invites; a page opening an invite URL ends up in the room (no key
// in the browser); a host who came in through a host invite gets a freshly minted link from
// "Copy invite link", which lets a guest in; a forged, an expired and a used-up invite, and a
// room link without an invite, show an error page saying what happened and to ask the host
// for a new link (visible text), never a spinner.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { launchChromium, openPage } from './lib/browser.mjs';
import { apiCall, startGateway } from './lib/gateway.mjs';
import { roomSnapshot, sleep } from './lib/room.mjs';

const KEY = randomBytes(12).toString('hex');
const JOIN_TIMEOUT_MS = Number(process.env.ROOMCAST_JOIN_TIMEOUT_MS ?? 20000);
/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 60000);

describe('invite links on a gateway with an API key', () => {
  let gw;
  let browser;
  let roomId;
  const pages = [];

  /** A JSON call with the API key (or `token`); status and body. */
  const call = (method, path, body, token = KEY) => apiCall(gw.url, method, path, { token, body });

  const mint = async (body) => {
    const r = await call('POST', `/api/rooms/${roomId}/invites`, body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.url, new RegExp(`^/room/${roomId}\\?invite=inv1\\.`));
    return r.body;
  };

  before(
    async () => {
      gw = await startGateway({ name: 'invite', extraArgs: ['--api-key', KEY] });
      browser = await launchChromium();
      const room = await call('POST', '/api/rooms', { name: 'invite test' });
      assert.equal(room.status, 201, JSON.stringify(room.body));
      roomId = room.body.id;
      // Without the key (as a browser would), joining is refused: hence invites.
      assert.equal((await call('POST', `/api/rooms/${roomId}/join`, { name: 'x' }, null)).status, 401);
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  after(async () => {
    for (const p of pages) await p.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await gw?.stop();
  });

  async function open(label, url) {
    const p = await openPage(browser, label);
    pages.push(p);
    await p.page.goto(url.startsWith('http') ? url : gw.url + url);
    return p;
  }

  async function diagnostics(p) {
    const snap = await p.page.evaluate(roomSnapshot).catch((e) => ({ error: e.message }));
    const text = await p.page.locator('main').innerText().catch(() => '');
    return [`page ${p.label}: ${JSON.stringify(snap)}`, `--- visible text ---\n${text}`, p.consoleLines.slice(-30).join('\n'), '--- gateway log ---', gw.logTail(30)].join('\n');
  }

  async function waitJoined(p) {
    try {
      await p.page.waitForFunction(() => window.__roomcast?.state.phase === 'joined', null, { timeout: JOIN_TIMEOUT_MS });
    } catch (e) {
      assert.fail(`${p.label} did not join: ${e.message}\n${await diagnostics(p)}`);
    }
  }

  /** The error page: its code, the visible text matching `what`, "ask the host", no spinner. */
  async function expectInviteError(p, code, what) {
    const card = p.page.locator('[data-testid=invite-error]');
    try {
      await card.waitFor({ state: 'visible', timeout: 10000 });
    } catch (e) {
      assert.fail(`${p.label}: no invite error page: ${e.message}\n${await diagnostics(p)}`);
    }
    assert.equal(await card.getAttribute('data-code'), code);
    const text = await card.innerText();
    assert.match(text, what);
    assert.match(text, /ask the host/i);
    assert.equal(await p.page.locator('.spinner').count(), 0, 'no spinner');
    assert.equal(await p.page.evaluate(() => window.__roomcast?.state.phase ?? null), null, 'no session was started');
  }

  it(
    'a guest opens an invite link and joins, without the key',
    async () => {
      const inv = await mint({ role: 'publisher', ttl_secs: 600, max_uses: 5 });
      const p = await open('guest', `${inv.url}&name=Guest&autojoin=1&preset=low`);
      await waitJoined(p);
      assert.equal(await p.page.evaluate(() => window.__roomcast.state.role), 'publisher');
      const check = await call('POST', `/api/rooms/${roomId}/invites/check`, { invite: inv.invite }, null);
      assert.equal(check.body.uses, 1, JSON.stringify(check.body));
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  it(
    'a host invite: the host copies a minted invite link, and it lets a guest in',
    async () => {
      const inv = await mint({ role: 'host', ttl_secs: 600, max_uses: 1 });
      const host = await open('host', `${inv.url}&name=Host&autojoin=1&preset=low`);
      await waitJoined(host);
      assert.equal(await host.page.evaluate(() => window.__roomcast.state.role), 'host');
      const button = host.page.locator('[data-testid=copy-invite][data-link*="?invite=inv1."]');
      await button.waitFor({ timeout: 10000 });
      const link = await button.getAttribute('data-link');
      assert.ok(link.startsWith(`${gw.url}/room/${roomId}?invite=`), link);
      const guest = await open('guest 2', `${link}&name=Guest2&autojoin=1&preset=low`);
      await waitJoined(guest);
      assert.equal(await guest.page.evaluate(() => window.__roomcast.state.role), 'publisher');
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  it(
    'a forged invite shows "not valid"',
    async () => {
      const inv = await mint({ ttl_secs: 600 });
      const sig = inv.invite.slice(inv.invite.lastIndexOf('.') + 1);
      const forged = inv.invite.slice(0, inv.invite.length - sig.length) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
      const p = await open('forged', `/room/${roomId}?invite=${forged}&name=F&autojoin=1`);
      await expectInviteError(p, 'invite_invalid', /not valid/);
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  it(
    'an expired invite shows "expired"',
    async () => {
      const inv = await mint({ ttl_secs: 1 });
      await sleep(2100);
      const p = await open('expired', `${inv.url}&name=E&autojoin=1`);
      await expectInviteError(p, 'invite_expired', /expired/);
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  it(
    'a used-up invite shows "used up"',
    async () => {
      const inv = await mint({ ttl_secs: 600, max_uses: 1 });
      const used = await call('POST', `/api/rooms/${roomId}/join`, { invite: inv.invite, name: 'First' }, null);
      assert.equal(used.status, 200, JSON.stringify(used.body));
      const p = await open('used up', `${inv.url}&name=U&autojoin=1`);
      await expectInviteError(p, 'invite_exhausted', /used up/);
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  it(
    'a room link without an invite says one is needed',
    async () => {
      const p = await open('no invite', `/room/${roomId}?name=N&autojoin=1`);
      await expectInviteError(p, 'needs_invite', /need an invite link/);
    },
    { timeout: TEST_TIMEOUT_MS },
  );
});
