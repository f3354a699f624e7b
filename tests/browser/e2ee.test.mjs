// End-to-end encrypted rooms (issue 4): the lobby creates an e2ee room with a random key in the
// link's fragment; pages with that key decode each other (frames decrypt, the picture matches
// the sender's camera), a page with a wrong key shows "cannot decrypt" and counts failures, a
// page without a key is asked for one, and the broadcast API refuses the room (409 e2ee_room).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from './lib/gateway.mjs';
import { frames, roomFixture, sleep } from './lib/room.mjs';

const TIMEOUT_MS = Number(process.env.ROOMCAST_DECODE_TIMEOUT_MS ?? 30000);
/** Counters that keep moving must have moved within this (polled, not read once after a sleep). */
const PROGRESS_TIMEOUT_MS = 10000;
/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

/** Runs in the page: the E2EE counters, the tiles' decrypt state, and the rendered controls. */
function e2eeSnapshot() {
  const rc = window.__roomcast;
  const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')].map((e) => ({
    name: e.querySelector('.tile-name')?.textContent ?? '',
    e2ee: e.dataset.e2ee ?? null,
    failures: Number(e.dataset.decryptFailures ?? 0),
    cannotDecrypt: Boolean(e.querySelector('[data-testid="cannot-decrypt"]')),
  }));
  const goLive = document.querySelector('[data-testid="go-live"]');
  return {
    phase: rc?.state.phase ?? null,
    e2eeState: rc?.state.e2ee ?? null,
    counters: rc?.e2ee ?? null,
    tiles,
    badge: Boolean(document.querySelector('[data-testid="e2ee-badge"]')),
    banner: Boolean(document.querySelector('[data-testid="decrypt-banner"]')),
    goLiveDisabled: goLive ? goLive.disabled : null,
    broadcastReason: document.querySelector('[data-testid="broadcast-unavailable"]')?.textContent ?? null,
  };
}

/** Runs in the page: mean colour (and spread) of a video element, scaled down to 64×36. */
function videoColour(selector) {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = 64;
  c.height = 36;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, c.width, c.height);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let r = 0;
  let g = 0;
  let b = 0;
  let lum2 = 0;
  const n = d.length / 4;
  for (let i = 0; i < d.length; i += 4) {
    r += d[i];
    g += d[i + 1];
    b += d[i + 2];
    const l = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    lum2 += l * l;
  }
  r /= n;
  g /= n;
  b /= n;
  const lum = 0.299 * r + 0.587 * g + 0.114 * b;
  return { r: Math.round(r), g: Math.round(g), b: Math.round(b), lum: Math.round(lum), spread: Math.round(Math.sqrt(Math.max(0, lum2 / n - lum * lum))), w: v.videoWidth, h: v.videoHeight };
}

describe('end-to-end encrypted rooms', () => {
  const fx = roomFixture('e2ee');
  let key = null;

  before(() => fx.setup(), { timeout: TEST_TIMEOUT_MS });
  after(() => fx.teardown());

  const roomLink = (name, k, extra = '&autojoin=1&preset=low') =>
    `${fx.gw.url}/room/${encodeURIComponent(fx.roomId)}?name=${encodeURIComponent(name)}${extra}${k ? `#key=${encodeURIComponent(k)}` : ''}`;
  const e2ee = async (label) => fx.byLabel(label).page.evaluate(e2eeSnapshot);
  const tileOf = (snap, name) => snap.tiles.find((t) => t.name === name);

  it('the lobby creates an e2ee room with a random key in the link fragment', { timeout: TEST_TIMEOUT_MS }, async () => {
    const a = await fx.open('A');
    await a.page.goto(`${fx.gw.url}/`);
    await a.page.fill('#room-name', 'e2ee test');
    await a.page.check('[data-testid="e2ee-option"]');
    await a.page.click('button:has-text("Create room")');
    await a.page.waitForURL(/\/room\/[^/#?]+#key=/, { timeout: 10000 });
    const url = new URL(a.page.url());
    fx.roomId = decodeURIComponent(url.pathname.split('/').pop());
    key = new URLSearchParams(url.hash.slice(1)).get('key');
    assert.match(key, /^[A-Za-z0-9_-]{22}$/, `a 128-bit base64url key: ${key}`);
    const room = await api(fx.gw.url, 'GET', `/api/rooms/${encodeURIComponent(fx.roomId)}`);
    assert.equal(room.e2ee, true, `GET /api/rooms/{id}: ${JSON.stringify(room)}`);
    // The pre-join page says the room is encrypted.
    await a.page.waitForSelector('[data-testid="lobby"] [data-testid="e2ee-badge"]', { timeout: 10000 });
  });

  it('the broadcast API refuses an e2ee room: 409 e2ee_room', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!fx.roomId) return t.skip('needs the first test');
    const res = await fetch(`${fx.gw.url}/api/rooms/${encodeURIComponent(fx.roomId)}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const body = await res.json();
    assert.equal(res.status, 409);
    assert.equal(body.error, 'e2ee_room');
    assert.ok(body.message, 'the 409 says why');
  });

  it('two pages with the same key decode each other; the picture is the camera, not garbage', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!key) return t.skip('needs the first test');
    // A (the creator, host key remembered by the lobby) joins through the autojoin link with the low preset.
    await fx.byLabel('A').page.goto(roomLink('A', key));
    const b = await fx.open('B');
    await b.page.goto(roomLink('B', key));
    await fx.waitFor(
      'A and B decode each other in the e2ee room',
      ['A', 'B'],
      (s) => frames(s, 'A', 'B') > 10 && frames(s, 'B', 'A') > 10,
      (s) => `frames A←B ${frames(s, 'A', 'B')}, B←A ${frames(s, 'B', 'A')}`,
      TIMEOUT_MS,
    );
    for (const label of ['A', 'B']) {
      const s = await e2ee(label);
      console.log(`page ${label}: ${JSON.stringify(s)}`);
      assert.equal(s.e2eeState, true, `${label} knows the room is e2ee`);
      assert.ok(s.badge, `${label} shows the E2EE badge`);
      assert.ok(s.counters.encrypted > 0, `${label} encrypted its frames: ${JSON.stringify(s.counters)}`);
      assert.ok(s.counters.decrypted > 0, `${label} decrypted frames: ${JSON.stringify(s.counters)}`);
      assert.equal(s.counters.decryptFailures, 0, `${label} had no decrypt failures: ${JSON.stringify(s.counters)}`);
      assert.equal(s.goLiveDisabled, true, `${label}: Go live is disabled`);
      assert.match(s.broadcastReason ?? '', /end-to-end encrypted/, `${label} says why there is no broadcast`);
      assert.ok(!s.banner && s.tiles.every((x) => !x.cannotDecrypt), `${label}: no cannot-decrypt state: ${JSON.stringify(s.tiles)}`);
    }
    // The invite link carries the key.
    const invite = await fx.byLabel('A').page.locator('button:has-text("Copy invite link")').getAttribute('title');
    assert.ok(invite.endsWith(`#key=${key}`), `invite link ${invite}`);

    // The decrypted picture looks like the sender's camera: both run the same fake camera, so
    // B's tile on A has about the colour of A's own (never encrypted) preview, and it moves.
    const colours = async () =>
      fx.byLabel('A').page.evaluate(
        ([f, remoteSel, localSel]) => {
          const fn = new Function(`return (${f})`)();
          return { remote: fn(remoteSel), local: fn(localSel) };
        },
        [videoColour.toString(), '[data-testid="remote-tile"] video', '[data-testid="local-tile"] video'],
      );
    // Polled (the first painted frames may still be the player's black): the checks below must
    // all hold on one reading within 10 s.
    const looksLikeCamera = (c) =>
      Boolean(c.remote && c.local) && c.remote.lum > 30 && ['r', 'g', 'b'].every((ch) => Math.abs(c.remote[ch] - c.local[ch]) < 45) && c.remote.spread > 5;
    const colourDeadline = Date.now() + PROGRESS_TIMEOUT_MS;
    let first = await colours();
    while (!looksLikeCamera(first) && Date.now() < colourDeadline) {
      await sleep(300);
      first = await colours();
    }
    await sleep(1500);
    const second = await colours();
    console.log(`A: remote picture ${JSON.stringify(first.remote)} → ${JSON.stringify(second.remote)}; own preview ${JSON.stringify(first.local)}`);
    assert.ok(first.remote && first.local, 'both videos have a picture');
    assert.ok(first.remote.lum > 30, `the remote picture is not black: ${JSON.stringify(first.remote)}`);
    for (const ch of ['r', 'g', 'b']) {
      assert.ok(Math.abs(first.remote[ch] - first.local[ch]) < 45, `channel ${ch}: remote ${first.remote[ch]} vs own camera ${first.local[ch]}`);
    }
    assert.ok(first.remote.spread > 5, `the remote picture has structure (not a flat colour): ${JSON.stringify(first.remote)}`);
    const f1 = await fx.snapshots(['A']);
    await fx.waitFor('A keeps decoding B', ['A'], (s) => frames(s, 'A', 'B') > frames(f1, 'A', 'B'), (s) => `A←B ${frames(f1, 'A', 'B')} → ${frames(s, 'A', 'B')}`, PROGRESS_TIMEOUT_MS);
    await fx.screenshots('-decoded');
  });

  it('a page with a wrong key shows "cannot decrypt" and counts failures; the others keep decoding', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!key) return t.skip('needs the first test');
    const c = await fx.open('C');
    await c.page.goto(roomLink('C', 'not-the-right-key'));
    const deadline = Date.now() + TIMEOUT_MS;
    let snaps = null;
    for (;;) {
      snaps = { A: await e2ee('A'), B: await e2ee('B'), C: await e2ee('C') };
      const cOk =
        snaps.C.phase === 'joined' &&
        ['A', 'B'].every((n) => tileOf(snaps.C, n)?.cannotDecrypt) &&
        snaps.C.banner &&
        (snaps.C.counters?.decryptFailures ?? 0) > 0;
      const othersOk = ['A', 'B'].every((l) => tileOf(snaps[l], 'C')?.cannotDecrypt);
      if (cOk && othersOk) break;
      if (Date.now() > deadline) {
        await fx.screenshots('-failed');
        console.error(await fx.diagnostics('wrong key'));
        assert.fail(`cannot-decrypt state not shown: ${JSON.stringify(snaps)}`);
      }
      await sleep(500);
    }
    const failures1 = snaps.C.counters.decryptFailures;
    const failDeadline = Date.now() + PROGRESS_TIMEOUT_MS;
    let later = await e2ee('C');
    while (!(later.counters.decryptFailures > failures1) && Date.now() < failDeadline) {
      await sleep(300);
      later = await e2ee('C');
    }
    console.log(`C (wrong key): ${JSON.stringify(later)}`);
    assert.ok(later.counters.decryptFailures > failures1, `C's failures grow: ${failures1} → ${later.counters.decryptFailures}`);
    assert.equal(later.counters.decrypted, 0, 'C decrypts nothing');
    const cSnap = await fx.snapshots(['C']);
    assert.equal(frames(cSnap, 'C', 'A') + frames(cSnap, 'C', 'B'), 0, 'C decodes no video (no garbage frames reach its decoder)');
    assert.ok(tileOf(later, 'A').failures > 0, `the tile shows its failure count: ${JSON.stringify(tileOf(later, 'A'))}`);
    // A and B: still decoding each other, no failures between them.
    const before = await fx.snapshots(['A', 'B']);
    await fx.waitFor(
      'A and B keep decoding each other',
      ['A', 'B'],
      (s) => frames(s, 'A', 'B') > frames(before, 'A', 'B') && frames(s, 'B', 'A') > frames(before, 'B', 'A'),
      (s) => `A←B ${frames(before, 'A', 'B')} → ${frames(s, 'A', 'B')}, B←A ${frames(before, 'B', 'A')} → ${frames(s, 'B', 'A')}`,
      PROGRESS_TIMEOUT_MS,
    );
    for (const l of ['A', 'B']) {
      const s = await e2ee(l);
      const other = l === 'A' ? 'B' : 'A';
      assert.equal(tileOf(s, other).e2ee, 'ok', `${l}: ${other}'s tile decrypts: ${JSON.stringify(s.tiles)}`);
    }
    await fx.screenshots('-wrong-key');

    // The banner lets C rejoin with the right key; then everyone decodes everyone.
    const cp = fx.byLabel('C').page;
    await cp.click('[data-testid="decrypt-banner"] button:has-text("Enter another key")');
    await cp.fill('[data-testid="decrypt-banner"] #e2ee-key', key);
    await cp.click('[data-testid="decrypt-banner"] button:has-text("Rejoin with this key")');
    await fx.waitFor(
      'C rejoined with the right key: A, B and C decode each other',
      ['A', 'B', 'C'],
      (s) => frames(s, 'C', 'A') > 0 && frames(s, 'C', 'B') > 0 && frames(s, 'A', 'C') > 0 && frames(s, 'B', 'C') > 0,
      (s) => `C←A ${frames(s, 'C', 'A')}, C←B ${frames(s, 'C', 'B')}, A←C ${frames(s, 'A', 'C')}, B←C ${frames(s, 'B', 'C')}`,
      TIMEOUT_MS,
    );
    assert.ok(cp.url().endsWith(`#key=${key}`), `C's address has the new key: ${cp.url()}`);
    const fixed = await e2ee('C');
    assert.equal(fixed.counters.decryptFailures, 0, `C's new session decrypts everything: ${JSON.stringify(fixed.counters)}`);
    await fx.close('C');
  });

  it('a link without the key asks for it, and the key then joins', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!key) return t.skip('needs the first test');
    const d = await fx.open('D');
    await d.page.goto(roomLink('D', null));
    await d.page.waitForSelector('[data-testid="key-prompt"]', { timeout: 10000 });
    assert.equal(await d.page.evaluate(() => window.__roomcast ?? null), null, 'no session before the key is given');
    await d.page.fill('#e2ee-key', key);
    await d.page.click('button:has-text("Use this key")');
    await fx.waitFor('D joins with the key it typed and decodes A', ['D'], (s) => s.D.phase === 'joined' && frames(s, 'D', 'A') > 0, (s) => `D phase ${s.D.phase}, D←A ${frames(s, 'D', 'A')}`, TIMEOUT_MS);
    assert.ok(d.page.url().endsWith(`#key=${key}`), `the key is now in D's address: ${d.page.url()}`);
    const s = await e2ee('D');
    assert.equal(s.counters.decryptFailures, 0, `D: no failures ${JSON.stringify(s.counters)}`);
  });
});
