// A gateway restart, as in a deploy: SIGTERM, then a new `roomcast serve` on the same port and
// data directory. The old gateway closes every signaling socket with 1012 ("service restart");
// the pages show "reconnecting…", retry with backoff while the server is down, and get back into
// the same room (kept in the store) by themselves, seeing and hearing each other again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { frames, recordReconnectingBanner, roomFixture } from './lib/room.mjs';

/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);
/** From the new gateway answering to both pages decoding each other again (backoff ≤ 8 s here). */
const BACK_WITHIN_MS = Number(process.env.ROOMCAST_RESTART_BACK_WITHIN_MS ?? 45000);

describe('room page: gateway restart (deploy)', () => {
  const fx = roomFixture('restart');

  before(() => fx.setup(), { timeout: TEST_TIMEOUT_MS });
  after(() => fx.teardown());

  it('A and B see each other', { timeout: TEST_TIMEOUT_MS }, async () => {
    await fx.joinAs('A');
    await fx.joinAs('B');
    await fx.waitPairDecodes('A', 'B');
  });

  it('SIGTERM: both pages are told (1012), show "reconnecting", and re-join the restarted gateway', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (fx.pages.length < 2) return t.skip('needs the first test');
    const before = await fx.snapshots(['A', 'B']);
    for (const label of ['A', 'B']) await recordReconnectingBanner(fx.byLabel(label).page);
    const { stoppedAt, upAt } = await fx.restartGateway();

    const s = await fx.waitFor(
      'A and B re-joined the new gateway and decode each other again',
      ['A', 'B'],
      (s) =>
        s.A.phase === 'joined' &&
        s.B.phase === 'joined' &&
        s.A.selfId !== before.A.selfId &&
        s.B.selfId !== before.B.selfId &&
        frames(s, 'A', 'B') > 0 &&
        frames(s, 'B', 'A') > 0,
      (s) => `A ${s.A.phase} ${s.A.selfId}, B ${s.B.phase} ${s.B.selfId}; A←B ${frames(s, 'A', 'B')}, B←A ${frames(s, 'B', 'A')}`,
      BACK_WITHIN_MS,
    );
    const backMs = Date.now() - upAt;
    for (const label of ['A', 'B']) {
      const p = fx.byLabel(label);
      const shownAt = await p.page.evaluate(() => window.__reconnectingShownAt);
      assert.ok(shownAt, `${label} showed "reconnecting"`);
      // Told by the server (1012, with the reason), not cut off.
      const told = p.consoleLines.find((l) => /code 1012: the server is restarting/.test(l));
      assert.ok(told, `${label} logged the 1012 close:\n${p.consoleLines.slice(-30).join('\n')}`);
    }
    // Each page sees the other once (no ghost of an old session in the grid).
    assert.deepEqual(s.A.remoteTileNames, ['B'], JSON.stringify(s.A.tiles));
    assert.deepEqual(s.B.remoteTileNames, ['A'], JSON.stringify(s.B.tiles));
    console.log(
      `gateway restart: the new gateway answered ${upAt - stoppedAt} ms after the old one exited; ` +
        `both pages re-joined and decode each other ${backMs} ms after that`,
    );
  });
});
