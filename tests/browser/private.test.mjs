// Issue 4/5: a private room's watch page. Without a viewer token the page says the broadcast
// is private (and the HLS itself answers 401); with the viewer link the host minted
// (`/watch/{id}?token=…`) the page gets a signed URL from /api/rooms/{id}/hls-url, plays it
// (currentTime advancing, frames decoded), every HLS request it makes is signed, and it shows
// a viewer count of at least 1. Signed URLs live 12 s here (`--hls-url-ttl-secs`), so the page
// must refresh its URL several times while it keeps playing, and no HLS request is refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium, openPage } from './lib/browser.mjs';
import { OUT_DIR, api, apiCall, startGateway } from './lib/gateway.mjs';

const LIVE_TIMEOUT_MS = Number(process.env.ROOMCAST_LIVE_TIMEOUT_MS ?? 45000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Life of a signed HLS URL in this test (the minimum the gateway allows is 10 s). */
const URL_TTL_SECS = 12;
/** How long the viewer keeps watching across URL refreshes. */
const REFRESH_WATCH_MS = 26000;

describe('private room: watch page with and without a viewer link', () => {
  let gw;
  let browser;
  const pages = [];
  let roomId;
  let hostToken;

  const call = (method, path, token, body) => apiCall(gw.url, method, path, { token, body });

  before(async () => {
    gw = await startGateway({ name: 'private', extraArgs: ['--hls-url-ttl-secs', String(URL_TTL_SECS)] });
    browser = await launchChromium();
    const room = await api(gw.url, 'POST', '/api/rooms', { name: 'private test', private: true });
    assert.equal(room.private, true);
    roomId = room.id;
    hostToken = (await api(gw.url, 'POST', `/api/rooms/${roomId}/join`, { name: 'Host', host_key: room.host_key })).token;
  });

  after(async () => {
    for (const p of pages) await p.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await gw?.stop();
  });

  async function diagnostics(title, p) {
    const state = await p.page
      .evaluate(() => ({
        watch: window.__watch ? { ...window.__watch.state, currentTime: window.__watch.video.currentTime } : null,
        access: document.querySelector('[data-testid=watch-access]')?.textContent ?? null,
        viewers: document.querySelector('[data-testid=viewer-count]')?.textContent ?? null,
      }))
      .catch((e) => ({ error: e.message }));
    return [`\n===== ${title} =====`, JSON.stringify(state, null, 2), p.consoleLines.slice(-40).join('\n'), `--- gateway log (tail; full log in ${gw.logPath}) ---`, gw.logTail(60)].join('\n');
  }

  it('without a token: the private message; with the viewer link: plays and counts the viewer', async () => {
    // A broadcast of the (empty) room: the compositor shows placeholders.
    const started = await call('POST', `/api/rooms/${roomId}/broadcast`, hostToken, {});
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const unsigned = await fetch(`${gw.url}/hls/${roomId}/index.m3u8`);
    assert.equal(unsigned.status, 401, 'the HLS of a private room needs a signature');

    const stranger = await openPage(browser, 'stranger');
    pages.push(stranger);
    await stranger.page.goto(`${gw.url}/watch/${encodeURIComponent(roomId)}`);
    const message = stranger.page.locator('[data-testid=watch-access][data-problem=private]');
    await message.waitFor({ timeout: 10000 });
    assert.match(await message.textContent(), /This broadcast is private — ask the host for a viewer link/);
    assert.equal(await stranger.page.evaluate(() => window.__watch?.video.currentTime ?? 0), 0, 'nothing plays');

    // Only the host mints viewer links.
    const publisher = (await api(gw.url, 'POST', `/api/rooms/${roomId}/join`, { name: 'Guest' })).token;
    assert.equal((await call('POST', `/api/rooms/${roomId}/viewer-token`, publisher)).status, 403);
    const minted = await call('POST', `/api/rooms/${roomId}/viewer-token`, hostToken, { ttl_seconds: 600 });
    assert.equal(minted.status, 200, JSON.stringify(minted.body));
    assert.match(minted.body.watch_url, new RegExp(`^/watch/${roomId}\\?token=`));

    const viewer = await openPage(browser, 'viewer');
    pages.push(viewer);
    // Every refused HLS request and every signed URL the page was handed.
    const refused = [];
    const handedOut = [];
    viewer.page.on('response', (r) => {
      // 401/403: a signature problem (a 404 for a preload hint after a restart is not one).
      if (r.url().includes('/hls/') && (r.status() === 401 || r.status() === 403)) refused.push(`${r.status()} ${r.url()}`);
      if (r.url().includes('/hls-url') && r.status() === 200) r.json().then((b) => handedOut.push(b.expires_at)).catch(() => undefined);
    });
    await viewer.page.goto(gw.url + minted.body.watch_url);
    let first = null;
    let st = null;
    const deadline = Date.now() + LIVE_TIMEOUT_MS;
    while (Date.now() < deadline) {
      st = await viewer.page.evaluate(() => ({
        status: window.__watch?.state.status,
        t: window.__watch?.video.currentTime ?? 0,
        frames: window.__watch?.video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0,
        viewers: Number(document.querySelector('[data-testid=viewer-count]')?.getAttribute('data-viewers') ?? -1),
        access: document.querySelector('[data-testid=watch-access]')?.textContent ?? null,
      }));
      if (st.status === 'live') {
        if (first === null) first = st.t;
        else if (st.t > first + 1 && st.frames > 0 && st.viewers >= 1) break;
      }
      await sleep(500);
    }
    await viewer.page.screenshot({ path: join(OUT_DIR, 'watch-private.png') }).catch(() => undefined);
    if (!(st?.status === 'live' && first !== null && st.t > first + 1 && st.frames > 0 && st.viewers >= 1)) {
      console.error(await diagnostics('private watch page never played with a viewer count', viewer));
      assert.fail(`viewer page: ${JSON.stringify(st)} (diagnostics above)`);
    }
    const count = await viewer.page.locator('[data-testid=viewer-count]').textContent();
    assert.match(count, /^\d+ watching$/);

    // Every HLS request the page made carried a signature.
    const hlsUrls = await viewer.page.evaluate(() =>
      performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.includes('/hls/')),
    );
    assert.ok(hlsUrls.some((u) => /\/part-\d+\.\d+\.m4s\?/.test(u)) && hlsUrls.some((u) => /init-\d+\.mp4\?/.test(u)), hlsUrls.join('\n'));
    const unsignedRequests = hlsUrls.filter((u) => !/[?&]exp=\d+&sig=[\w-]+/.test(u));
    assert.deepEqual(unsignedRequests, [], 'every HLS request is signed');

    const status = await call('GET', `/api/rooms/${roomId}/broadcast`);
    assert.ok(status.body.viewers >= 1 && status.body.viewers_peak >= 1, JSON.stringify(status.body));
    console.log(`private watch page live: ${count}; broadcast status viewers ${status.body.viewers}, peak ${status.body.viewers_peak}`);

    // Keep watching well past two URL lifetimes: the page refreshes its signed URL before each
    // expires and playback never stops; no HLS request is refused on the way.
    const t0 = await viewer.page.evaluate(() => window.__watch.video.currentTime);
    const watchStart = Date.now();
    let stuckSince = null;
    let longestStuckMs = 0;
    let notLiveSince = null;
    let last = t0;
    while (Date.now() - watchStart < REFRESH_WATCH_MS) {
      await sleep(1000);
      const now = await viewer.page.evaluate(() => ({ t: window.__watch.video.currentTime, status: window.__watch.state.status }));
      // A short underrun ('buffering') on a busy machine is fine; losing the stream is not.
      if (now.status === 'live' || now.status === 'buffering') notLiveSince = null;
      else notLiveSince ??= Date.now();
      assert.ok(notLiveSince === null || Date.now() - notLiveSince < 5000, `the player has been '${now.status}' for 5 s (${Date.now() - watchStart} ms in)`);
      if (now.t > last) {
        stuckSince = null;
      } else {
        stuckSince ??= Date.now();
        longestStuckMs = Math.max(longestStuckMs, Date.now() - stuckSince);
      }
      last = now.t;
    }
    const played = last - t0;
    const distinctExpiries = new Set(handedOut).size;
    console.log(
      `private watch page over ${REFRESH_WATCH_MS} ms with ${URL_TTL_SECS} s URLs: played ${played.toFixed(1)} s of media, ` +
        `${handedOut.length} signed URLs handed out (${distinctExpiries} expiries), longest stall ${longestStuckMs} ms, refused requests ${refused.length}`,
    );
    if (refused.length > 0 || distinctExpiries < 3 || played < REFRESH_WATCH_MS / 1000 / 3 || longestStuckMs >= 8000) {
      console.error(await diagnostics('private watch page across URL refreshes', viewer));
    }
    assert.deepEqual(refused, [], 'no HLS request was refused across URL refreshes');
    assert.ok(distinctExpiries >= 3, `the page refreshed its signed URL (expiries ${JSON.stringify(handedOut)})`);
    // Playback kept going to the end: an expired URL would stop it for good (stalls of a few
    // seconds on a busy machine are tolerated).
    assert.ok(played >= REFRESH_WATCH_MS / 1000 / 3 && longestStuckMs < 8000, `played ${played.toFixed(1)} s in ${REFRESH_WATCH_MS} ms, longest stall ${longestStuckMs} ms`);
    await call('DELETE', `/api/rooms/${roomId}/broadcast`, hostToken);
  });
});
