// Resilience of the room page: a dropped signaling socket shows "reconnecting…" and the page
// gets back in by itself (new join, new socket, backoff); the server's `reconnect` message
// (its media worker restarted) makes the page drop both PeerConnections and publish again
// after the next `welcome` on the same socket.
//
// The gateway has no HTTP way to kill an SFU worker, so the `reconnect` case puts a proxy
// between the page and the gateway (page.routeWebSocket): it sends the page `reconnect`, then
// joins the room afresh upstream and forwards that session's `welcome` and everything after it
// over the page's same socket, exactly what the page sees when a worker is replaced.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from './lib/gateway.mjs';
import { frames, recordReconnectingBanner, roomFixture, sleep } from './lib/room.mjs';

/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

describe('room page: reconnecting', () => {
  const fx = roomFixture('reconnect');
  /** The page-side WebSocket routes of page B (one per socket the page opens). */
  const routesB = [];

  before(() => fx.setup(), { timeout: TEST_TIMEOUT_MS });
  after(() => fx.teardown());

  it('A and B see each other', { timeout: TEST_TIMEOUT_MS }, async () => {
    await fx.joinAs('A');
    await fx.joinAs('B', {
      before: (p) =>
        p.page.routeWebSocket(/\/ws\?/, (ws) => {
          const server = ws.connectToServer();
          routesB.push({ ws, server });
        }),
    });
    await fx.waitPairDecodes('A', 'B');
  });

  it('a dropped socket shows "reconnecting" and the page gets back in by itself', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (fx.pages.length < 2) return t.skip('needs the first test');
    const a = fx.byLabel('A');
    const before = await fx.snapshots(['A']);
    const oldId = before.A.selfId;
    // The banner may be up for only a few hundred ms (the re-join is quick): a MutationObserver
    // installed before the drop records when it first appears, however briefly.
    await recordReconnectingBanner(a.page);
    const t0 = await a.page.evaluate(() => {
      const at = Date.now();
      window.__roomcast.session.dropConnectionForTest();
      return at;
    });
    const shownAt = await a.page
      .waitForFunction(() => window.__reconnectingShownAt, null, { timeout: 10000, polling: 100 })
      .then((h) => h.jsonValue())
      .catch(async () => {
        console.error(await fx.diagnostics('no "reconnecting" banner'));
        assert.fail('A showed "reconnecting" within 10 s of the dropped socket (diagnostics above)');
      });
    const shownMs = shownAt - t0;
    const s = await fx.waitFor(
      'A re-joined and both decode each other again',
      ['A', 'B'],
      (s) => s.A.phase === 'joined' && s.A.selfId !== oldId && frames(s, 'A', 'B') > 0 && frames(s, 'B', 'A') > 0,
      (s) => `A phase ${s.A.phase} id ${s.A.selfId} (was ${oldId}); A←B ${frames(s, 'A', 'B')}, B←A ${frames(s, 'B', 'A')}`,
    );
    const backMs = Date.now() - t0;
    console.log(`socket drop: "reconnecting" shown after ${shownMs} ms; media both ways again after ${backMs} ms`);
    assert.equal(s.A.reconnectingBanner, false, 'the banner goes away');
    assert.equal(s.A.reconnects, 1);
    // B sees A once (the old seat was freed at once: the page said `leave` before re-joining).
    assert.deepEqual(s.B.remoteTileNames, ['A']);
  });

  it('the server\'s "reconnect" message: the page publishes again after the next welcome, same socket', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (fx.pages.length < 2) return t.skip('needs the first test');
    if (typeof WebSocket !== 'function') return t.skip('needs a WebSocket client in node (node >= 22, or --experimental-websocket)');
    const route = routesB.at(-1);
    assert.ok(route, 'B\'s socket went through the proxy');
    const b = fx.byLabel('B');
    const before = await fx.snapshots(['A', 'B']);
    const oldPc = await b.page.evaluate(() => {
      window.__oldSubscribePc = window.__roomcast.subscribePc;
      return window.__roomcast.publishPc?.connectionState;
    });
    assert.equal(oldPc, 'connected');
    const socketsBefore = routesB.length;

    // The "new worker": a fresh session upstream, spliced into the page's socket.
    const join = await api(fx.gw.url, 'POST', `/api/rooms/${encodeURIComponent(fx.roomId)}/join`, { name: 'B' });
    const t0 = Date.now();
    const queued = [];
    let upstream = null;
    route.server.onMessage(() => undefined); // nothing more from the old session
    route.server.onClose(() => undefined); // (by default the page's side would close with it)
    route.ws.onMessage((m) => (upstream?.readyState === 1 ? upstream.send(m) : queued.push(m)));
    route.ws.send(JSON.stringify({ type: 'reconnect', reason: 'the media server restarted; reconnecting' }));
    route.server.close();
    upstream = new WebSocket(`${fx.gw.url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(join.token)}`);
    upstream.onopen = () => queued.splice(0).forEach((m) => upstream.send(m));
    upstream.onmessage = (e) => route.ws.send(typeof e.data === 'string' ? e.data : Buffer.from(e.data));
    upstream.onclose = () => route.ws.close().catch?.(() => undefined);

    const s = await fx.waitFor(
      'B is back with new PeerConnections and media flows both ways',
      ['A', 'B'],
      (s) =>
        s.B.phase === 'joined' &&
        s.B.selfId === join.participant_id &&
        frames(s, 'A', 'B') > 0 &&
        frames(s, 'B', 'A') > 0,
      (s) => `B phase ${s.B.phase}, id ${s.B.selfId} (want ${join.participant_id}); A←B ${frames(s, 'A', 'B')}, B←A ${frames(s, 'B', 'A')}`,
    );
    const backMs = Date.now() - t0;
    const fresh = await b.page.evaluate(() => ({
      newPc: window.__roomcast.subscribePc !== window.__oldSubscribePc,
      oldClosed: window.__oldSubscribePc?.connectionState === 'closed',
    }));
    assert.ok(fresh.newPc && fresh.oldClosed, `B closed its old PeerConnections and made new ones: ${JSON.stringify(fresh)}`);
    assert.equal(routesB.length, socketsBefore, 'no new socket: the same WebSocket carried the new welcome');
    assert.notEqual(before.B.selfId, s.B.selfId);
    assert.deepEqual(s.A.remoteTileNames, ['B']);
    console.log(`reconnect message: B publishing and receiving again after ${backMs} ms`);
    upstream.onclose = null;
    await sleep(0);
  });

  it('closing the page sends leave (pagehide) and the others drop its tile', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (fx.pages.length < 2) return t.skip('needs the first test');
    const a = fx.byLabel('A');
    // The event a closing tab fires (frames sent while a page unloads are not reported to the
    // test, so the page stays and only the event is fired).
    await a.page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false })));
    await fx.waitFor("B drops A's tile", ['B'], (s) => !s.B.remoteTileNames.includes('A'), (s) => JSON.stringify(s.B.remoteTileNames), 10000);
    const sent = a.wsFrames.filter((f) => f.dir === 'out').map((f) => f.text.slice(0, 60));
    assert.ok(sent.includes('{"type":"leave"}'), `A sent leave: last frames ${JSON.stringify(sent.slice(-3))}`);
    assert.equal(await a.page.evaluate(() => window.__roomcast.state.phase), 'left');
  });
});
