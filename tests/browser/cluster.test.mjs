// A cluster of two gateways on one MongoDB-wire store (SecantusDB, started by tests/run.sh,
// which sets ROOMCAST_TEST_MONGODB_URI). A room placed on node B is used entirely through node
// A's pages and API: Chromium publishers (solid-colour canvas cameras) join through A and are
// sent to B's signaling and SFU, the broadcast is started through A (B answers through A), the
// served picture and the watch page are read through A. Then B is killed (SIGKILL): the publishers
// re-join through A, A takes the room over, the broadcast goes live again on A with both
// colours, and the open watch page plays again without a reload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { launchChromium, openPage } from './lib/browser.mjs';
import { api, startGateway } from './lib/gateway.mjs';
import { COLOURS, canvasCameraScript, waitTiles } from './lib/onair.mjs';

const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 300000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const onCi = ['1', 'true', 'yes'].includes(String(process.env.CI ?? '').toLowerCase());
const mongo = process.env.ROOMCAST_TEST_MONGODB_URI;

/** `mongodb://host:port[/…]` → the same server, a database of this run's own. */
function database(uri) {
  const authority = uri.replace(/^mongodb:\/\//, '').split(/[/?]/)[0];
  return `mongodb://${authority}/roomcast_browser_${process.pid}_${Date.now()}`;
}

async function readyz(gw) {
  return (await fetch(`${gw.url}/readyz`).then((r) => r.text()).catch((e) => String(e))).trim();
}

describe('cluster: a room on another node, and that node dying', { skip: !mongo && !onCi && 'needs ROOMCAST_TEST_MONGODB_URI (tests/run.sh sets it)' }, () => {
  let a;
  let b;
  let browser;
  const pages = [];

  before(
    async () => {
      assert.ok(mongo, 'ROOMCAST_TEST_MONGODB_URI is set (CI runs the tests through tests/run.sh)');
      const store = database(mongo);
      const secret = randomBytes(24).toString('hex');
      const node = (id) => ['--store', store, '--node-id', id, '--jwt-secret', secret, '--compositor-spares', '0', '--broadcast-width', '640', '--broadcast-height', '360'];
      a = await startGateway({ name: 'cluster-a', extraArgs: node('n-a') });
      b = await startGateway({ name: 'cluster-b', extraArgs: node('n-b') });
      const deadline = Date.now() + 15000;
      while (!(await readyz(a)).includes('of 2 live') || !(await readyz(b)).includes('of 2 live')) {
        assert.ok(Date.now() < deadline, `the nodes see each other: ${await readyz(a)} / ${await readyz(b)}`);
        await sleep(200);
      }
      browser = await launchChromium();
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  after(async () => {
    for (const p of pages) await p.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await b?.stop();
    await a?.stop();
  });

  it('publishers and viewers through node A; B killed: all back on A', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A room placed on B (placement alternates between equal nodes).
    let room;
    for (let i = 0; i < 6 && !room; i += 1) {
      const created = await api(a.url, 'POST', '/api/rooms', { name: `cluster ${i}` });
      if (created.node_url === b.url) room = created.id;
    }
    assert.ok(room, 'a room was placed on node B');

    // Two publishers, on node A's pages.
    for (const i of [0, 1]) {
      const p = await openPage(browser, `U${i}`, { viewport: { width: 800, height: 500 } });
      await p.context.addInitScript({ content: canvasCameraScript(COLOURS[i].rgb) });
      await p.page.goto(`${a.url}/room/${encodeURIComponent(room)}?name=U${i}&autojoin=1&preset=low`);
      await p.page.waitForFunction(() => window.__roomcast?.state.phase === 'joined', null, { timeout: 30000 });
      pages.push(p);
    }
    // Their signaling and media are on B, which holds the room.
    const onB = await api(b.url, 'GET', `/api/rooms/${encodeURIComponent(room)}`);
    assert.equal(onB.participants.length, 2, `both in the room on node B: ${JSON.stringify(onB.participants)}`);

    // The broadcast, started and read through A.
    const started = await fetch(`${a.url}/api/rooms/${encodeURIComponent(room)}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(started.status, 202, await started.text());
    const t0 = Date.now();
    const live = await waitTiles(a.url, room, ['red', 'green'], { timeoutMs: 45000 });
    console.log(`  on air through node A (room on B): ${live.at - t0} ms`);
    const watch = await openPage(browser, 'watch');
    pages.push(watch);
    await watch.page.goto(`${a.url}/watch/${encodeURIComponent(room)}`);
    await watch.page.waitForFunction(() => window.__watch?.state.status === 'live', null, { timeout: 45000 }).catch(async (e) => {
      const state = await watch.page.evaluate(() => window.__watch?.state).catch(() => null);
      throw new Error(`the watch page on A did not play: ${e.message}; ${JSON.stringify(state)}\n${watch.consoleLines.slice(-30).join('\n')}`);
    });
    const ownerBefore = await fetch(`${a.url}/api/rooms/${encodeURIComponent(room)}`);
    assert.equal(ownerBefore.headers.get('x-roomcast-node'), 'n-b', 'node B answers for the room through A');

    // B dies.
    process.kill(b.pid, 'SIGKILL');
    const killed = Date.now();
    // The publishers notice, re-join through A, and A takes the room over.
    for (const [i, p] of pages.slice(0, 2).entries()) {
      await p.page.waitForFunction(
        (since) => window.__roomcast?.state.phase === 'joined' && (window.__roomcast.welcomedAtMs ?? 0) > since,
        killed,
        { timeout: 60000, polling: 250 },
      ).catch(async (e) => {
        throw new Error(`publisher U${i} did not re-join: ${e.message}\n${p.consoleLines.slice(-30).join('\n')}\n--- node A ---\n${a.logTail(60)}`);
      });
    }
    const rejoined = Date.now() - killed;
    const owner = await fetch(`${a.url}/api/rooms/${encodeURIComponent(room)}`);
    assert.equal(owner.status, 200);
    assert.equal(owner.headers.get('x-roomcast-node'), null, 'node A holds the room now');
    const back = await waitTiles(a.url, room, ['red', 'green'], { timeoutMs: 60000 });
    console.log(`  node B killed → publishers re-joined on A after ${rejoined} ms; both on air again after ${back.at - killed} ms`);
    const onA = await api(a.url, 'GET', `/api/rooms/${encodeURIComponent(room)}`);
    assert.equal(onA.participants.length, 2, `both in the room on node A: ${JSON.stringify(onA.participants)}`);

    // The watch page, never reloaded, plays the broadcast from A.
    const playingFrom = Date.now();
    await watch.page.waitForFunction(
      (since) => {
        const w = window.__watch;
        return w?.state.status === 'live' && w.video.currentTime > 0 && w.video.readyState >= 3 && Date.now() > since;
      },
      playingFrom,
      { timeout: 60000, polling: 500 },
    ).catch(async (e) => {
      const state = await watch.page.evaluate(() => window.__watch?.state).catch(() => null);
      throw new Error(`the watch page did not play again: ${e.message}; ${JSON.stringify(state)}\n${watch.consoleLines.slice(-30).join('\n')}`);
    });
    const t1 = await watch.page.evaluate(() => window.__watch.video.currentTime);
    await sleep(3000);
    const t2 = await watch.page.evaluate(() => window.__watch.video.currentTime);
    assert.ok(t2 > t1 + 1, `the watch page's playback advances (${t1} → ${t2})`);
    console.log(`  watch page playing again ${Date.now() - killed} ms after the kill (no reload)`);
  });
});
