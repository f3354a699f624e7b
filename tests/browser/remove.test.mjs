// The host removes a participant (issue 4): only the host sees "Remove" (with a confirm step);
// the removed page says so, drops its video and socket and does not reconnect; the others see
// its tile go and keep decoding each other; its old token can no longer open a socket.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { api } from './lib/gateway.mjs';
import { frames, roomFixture, sleep } from './lib/room.mjs';

/** A WebSocket upgrade request with `token`; resolves with the HTTP status (101 = accepted). */
function wsUpgradeStatus(baseUrl, token) {
  const url = new URL(`/ws?token=${encodeURIComponent(token)}`, baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': Buffer.from('roomcast-remove-1').toString('base64'),
      },
      timeout: 5000,
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

describe('the host removes a participant', () => {
  const fx = roomFixture('remove');
  const sockets = {};
  let ids = {};
  let guestToken = null;

  before(
    async () => {
      await fx.setup();
      // A room of our own, so the host key is known.
      const room = await api(fx.gw.url, 'POST', '/api/rooms', { name: 'remove test' });
      assert.ok(room.host_key, `the creator gets a host key: ${JSON.stringify(room)}`);
      fx.roomId = room.id;
      fx.hostKey = room.host_key;
    },
    { timeout: TEST_TIMEOUT_MS },
  );
  after(() => fx.teardown());

  const join = (label, host = false) =>
    fx.joinAs(label, {
      before: async (p) => {
        sockets[label] = 0;
        p.page.on('websocket', () => sockets[label]++);
        // What the lobby does for the room's creator: the host key is remembered in this browser.
        if (host) await p.context.addInitScript(([id, key]) => window.localStorage.setItem(`roomcast.host.${id}`, key), [fx.roomId, fx.hostKey]);
      },
    });
  const tile = (label, pid) => fx.byLabel(label).page.locator(`[data-testid="remote-tile"][data-participant-id="${pid}"]`);

  it('the host sees a Remove action on the others; nobody else does', { timeout: TEST_TIMEOUT_MS }, async () => {
    await join('H', true);
    await join('G');
    await join('T');
    const s = await fx.waitFor(
      'H, G and T see each other',
      ['H', 'G', 'T'],
      (s) => frames(s, 'H', 'G') > 0 && frames(s, 'T', 'G') > 0 && frames(s, 'H', 'T') > 0 && frames(s, 'T', 'H') > 0 && frames(s, 'G', 'H') > 0,
      (s) => `frames H←G ${frames(s, 'H', 'G')}, T←G ${frames(s, 'T', 'G')}, H←T ${frames(s, 'H', 'T')}, T←H ${frames(s, 'T', 'H')}, G←H ${frames(s, 'G', 'H')}`,
    );
    ids = { H: s.H.selfId, G: s.G.selfId, T: s.T.selfId };
    guestToken = await fx.byLabel('G').page.evaluate(() => window.__roomcast.session.token);
    assert.ok(guestToken, 'the guest page has its join token');
    assert.equal(await fx.byLabel('H').page.evaluate(() => window.__roomcast.state.role), 'host');
    assert.equal(await tile('H', ids.G).locator('button.tile-remove').count(), 1, 'the host has Remove on G');
    assert.equal(await tile('H', ids.T).locator('button.tile-remove').count(), 1, 'the host has Remove on T');
    for (const l of ['G', 'T']) {
      assert.equal(await fx.byLabel(l).page.locator('button.tile-remove').count(), 0, `${l} (not a host) has no Remove action`);
    }
  });

  it('a non-host asking the server to remove someone is refused (forbidden)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!ids.G) return t.skip('needs the first test');
    await fx.byLabel('T').page.evaluate((gid) => window.__roomcast.session.removeParticipant(gid), ids.G);
    await fx.waitFor(
      'T gets a forbidden notice',
      ['T', 'G'],
      (s) => s.T.notices.some((n) => n.startsWith('forbidden:')) && s.G.phase === 'joined',
      (s) => `T notices ${JSON.stringify(s.T.notices)}, G phase ${s.G.phase}`,
      15000,
    );
  });

  it('Remove asks first; confirming removes the guest, who is told and stays out', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!ids.G) return t.skip('needs the first test');
    const h = fx.byLabel('H').page;
    await tile('H', ids.G).locator('button.tile-remove').click();
    await tile('H', ids.G).locator('[data-testid="remove-confirm"]').waitFor({ timeout: 10000 });
    await tile('H', ids.G).locator('[data-testid="remove-confirm"] button:has-text("Cancel")').click();
    await sleep(500);
    assert.equal((await fx.snapshots(['G'])).G.phase, 'joined', 'Cancel keeps the guest in');
    await tile('H', ids.G).locator('button.tile-remove').click();
    await h.locator(`[data-testid="remote-tile"][data-participant-id="${ids.G}"] [data-testid="remove-confirm"] button.danger`).click();

    const g = fx.byLabel('G');
    await g.page.waitForSelector('[data-testid="removed"]', { timeout: 15000 });
    const text = await g.page.locator('[data-testid="removed"]').innerText();
    assert.match(text, /You were removed from the room by the host/);
    assert.match(text, /Back to the lobby/);
    assert.equal(await g.page.evaluate(() => document.querySelectorAll('video').length), 0, 'the removed page has no video elements left');
    assert.ok(
      g.wsFrames.some((f) => f.dir === 'in' && f.text.includes('"removed"')),
      `the guest got the removed message: ${JSON.stringify(g.wsFrames.slice(-5))}`,
    );
    // The server closes the socket; the page does not open another one.
    await fx.waitFor('G socket closed', ['G'], () => g.wsFrames.some((f) => f.dir === 'info' && f.text === 'socket closed'), () => 'the guest socket is still open', 10000);
    const opened = sockets.G;
    await sleep(3000);
    const s = await fx.snapshots(['G']);
    assert.equal(s.G.phase, 'removed', `the guest stays removed (no reconnect): ${s.G.phase}`);
    assert.equal(sockets.G, opened, 'no new signaling socket after removal');
    assert.equal(s.G.publish, null, 'no publish PeerConnection');
    assert.equal(s.G.subscribe, null, 'no subscribe PeerConnection');
    await fx.screenshots('-removed');
  });

  it("the host and the third participant see the guest's tile go and keep decoding each other", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!ids.G) return t.skip('needs the first test');
    const gone = await fx.waitFor(
      "G's tile disappears on H and T",
      ['H', 'T'],
      (s) => !s.H.remoteTileNames.includes('G') && !s.T.remoteTileNames.includes('G') && s.H.remoteTileNames.includes('T') && s.T.remoteTileNames.includes('H'),
      (s) => `tiles H ${JSON.stringify(s.H.remoteTileNames)}, T ${JSON.stringify(s.T.remoteTileNames)}`,
      10000,
    );
    await sleep(1500);
    await fx.waitFor(
      'H and T keep decoding each other',
      ['H', 'T'],
      (s) => frames(s, 'H', 'T') > frames(gone, 'H', 'T') && frames(s, 'T', 'H') > frames(gone, 'T', 'H') && s.H.phase === 'joined' && s.T.phase === 'joined',
      (s) => `H←T ${frames(gone, 'H', 'T')} → ${frames(s, 'H', 'T')}, T←H ${frames(gone, 'T', 'H')} → ${frames(s, 'T', 'H')}`,
      15000,
    );
  });

  it("the guest's old token cannot open a signaling socket again", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!guestToken) return t.skip('needs the first test');
    const r = await wsUpgradeStatus(fx.gw.url, guestToken);
    console.log(`WebSocket upgrade with the removed guest's token: HTTP ${r.status} ${r.body}`);
    assert.notEqual(r.status, 101, 'the upgrade is refused');
    assert.ok(r.status >= 400, `refused with an HTTP error: ${r.status} ${r.body}`);
  });
});
