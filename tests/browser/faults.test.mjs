// Fault injection (issue 7): `kill -9` of a running compositor while a headless-Chromium viewer
// plays /watch/{id}. The gateway restarts the compositor; the playlist must get new parts within
// 2 s of the kill, its media sequence number must never go back, and the viewer's playback must
// go on (currentTime keeps advancing, no fatal hls.js error).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OUT_DIR, api } from './lib/gateway.mjs';
import { roomFixture, sleep } from './lib/room.mjs';

const LIVE_TIMEOUT_MS = Number(process.env.ROOMCAST_LIVE_TIMEOUT_MS ?? 45000);
/** How many kills (each followed by ~8 s of watching). */
const KILLS = Math.max(1, Number(process.env.ROOMCAST_FAULT_KILLS ?? 3));
const NEW_PART_WITHIN_MS = 2000;
const WATCH_AFTER_KILL_MS = 8000;
/**
 * Media seconds that must have played by PROGRESS_BY_MS after a kill (a stall of a few seconds
 * while the new process starts, on a busy machine, is tolerated; a freeze is not).
 */
const MIN_PROGRESS_S = 3;
const PROGRESS_BY_MS = 15000;
/** The whole test (3 kills ≈ 1 min): a hung gateway or browser fails it instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

/** The parts of a playlist we care about. */
export function parsePlaylist(text) {
  const msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? NaN);
  const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]);
  const segments = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const discontinuities = (text.match(/#EXT-X-DISCONTINUITY\s*$/gm) ?? []).length;
  const lastDisc = text.search(/#EXT-X-DISCONTINUITY\s*\n(?![\s\S]*#EXT-X-DISCONTINUITY\s*\n)/);
  return {
    msn,
    lastPart: parts.at(-1) ?? null,
    lastSegment: segments.at(-1) ?? null,
    discontinuities,
    // Discontinuities ever (never decreases): the sequence of the first one in the window + those in it.
    discTotal: Number(/#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0) + discontinuities,
    // Parts after the last discontinuity (i.e. from the newest compositor process).
    partsSinceDisc: lastDisc < 0 ? parts.length : (text.slice(lastDisc).match(/#EXT-X-PART:/g) ?? []).length,
    ended: text.includes('#EXT-X-ENDLIST'),
  };
}

/** Polls the playlist every ~100 ms in the background, keeping every reading. */
function playlistPoller(url) {
  const readings = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const at = Date.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
        const text = await res.text();
        readings.push({ at, status: res.status, ...(res.ok ? parsePlaylist(text) : {}) });
      } catch (e) {
        readings.push({ at, status: String(e?.name ?? e) });
      }
      if (readings.length > 5000) readings.splice(0, readings.length - 5000);
      await sleep(100);
    }
  })();
  return {
    readings,
    last: () => readings.findLast((r) => r.status === 200) ?? null,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

describe('faults: compositor killed while a viewer watches', () => {
  const fx = roomFixture('faults');
  let poller = null;

  before(() => fx.setup(), { timeout: TEST_TIMEOUT_MS });
  after(async () => {
    await poller?.stop();
    await fx.teardown();
  });

  const broadcastStatus = () => api(fx.gw.url, 'GET', `/api/rooms/${encodeURIComponent(fx.roomId)}/broadcast`);

  const watchState = (p) =>
    p.page.evaluate(() => {
      const w = window.__watch;
      return w
        ? {
            status: w.state.status,
            t: w.video.currentTime,
            paused: w.video.paused,
            readyState: w.video.readyState,
            fatalErrors: w.state.fatalErrors,
            recoveries: w.state.recoveries,
            lastError: w.state.lastError,
            latency: w.state.latency,
          }
        : null;
    });

  async function failWith(viewer, message) {
    const parts = [await fx.diagnostics(message)];
    parts.push(`--- viewer ---\n${JSON.stringify(await watchState(viewer).catch((e) => e.message), null, 2)}\n${viewer.consoleLines.slice(-40).join('\n')}`);
    parts.push(`--- playlist readings (last 30) ---\n${(poller?.readings ?? []).slice(-30).map((r) => JSON.stringify(r)).join('\n')}`);
    console.error(parts.join('\n'));
    assert.fail(`${message} (diagnostics above)`);
  }

  it(`playback continues through ${KILLS} compositor kill(s); new parts within ${NEW_PART_WITHIN_MS} ms; MSN never decreases`, { timeout: TEST_TIMEOUT_MS }, async () => {
    await fx.joinAs('A');
    await fx.joinAs('B');
    await fx.waitFor('both publish', ['A', 'B'], (s) => s.A.phase === 'joined' && s.B.phase === 'joined' && s.A.outbound.length > 0 && s.B.outbound.length > 0, () => 'not publishing');

    const res = await fetch(`${fx.gw.url}/api/rooms/${encodeURIComponent(fx.roomId)}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.ok(res.ok, `POST /broadcast → ${res.status}: ${await res.text()}`);

    const viewer = await fx.open('viewer');
    // hls.js errors, fatal or not, for the report.
    await viewer.page.addInitScript(() => {
      window.__hlsErrors = [];
    });
    await viewer.page.goto(`${fx.gw.url}/watch/${encodeURIComponent(fx.roomId)}`);

    // Playing: currentTime advances by a second.
    const deadline = Date.now() + LIVE_TIMEOUT_MS;
    let st = null;
    let first = null;
    while (Date.now() < deadline) {
      st = await watchState(viewer);
      if (st?.status === 'live') {
        first ??= st.t;
        if (st.t > first + 1) break;
      }
      await sleep(300);
    }
    if (!(st?.status === 'live' && first !== null && st.t > first + 1)) await failWith(viewer, `the viewer never played (status ${st?.status}, t ${st?.t})`);
    await viewer.page.evaluate(() => window.__watch.hls?.on('hlsError', (_e, d) => window.__hlsErrors.push(`${d.type}/${d.details}${d.fatal ? ' FATAL' : ''}`)));

    poller = playlistPoller(`${fx.gw.url}/hls/${encodeURIComponent(fx.roomId)}/index.m3u8`);
    await sleep(1000);
    const startErrors = st.fatalErrors;
    const times = [];
    const killed = new Set();

    /** The playlist poller's newest good reading (polled: on a busy machine it may have none yet). */
    const lastReading = async (what) => {
      const until = Date.now() + 10000;
      for (;;) {
        const r = poller.last();
        if (r) return r;
        if (Date.now() >= until) await failWith(viewer, `${what}: no playlist reading with status 200 in 10 s`);
        await sleep(100);
      }
    };
    /** GET /broadcast until it is live with a compositor pid we have not killed (polled: up to 10 s). */
    const liveStatus = async (what) => {
      const until = Date.now() + 10000;
      let status = null;
      for (;;) {
        status = await broadcastStatus().catch((e) => ({ error: e.message }));
        if (status?.state === 'live' && Number.isInteger(status.pid) && status.pid > 0 && !killed.has(status.pid)) return status;
        if (Date.now() >= until) break;
        await sleep(200);
      }
      assert.equal(status?.state, 'live', `${what}: the broadcast is live: ${JSON.stringify(status)}`);
      assert.ok(Number.isInteger(status.pid) && status.pid > 0 && !killed.has(status.pid), `${what}: GET /broadcast has a new compositor pid: ${JSON.stringify(status)}`);
      return status;
    };

    for (let k = 1; k <= KILLS; k++) {
      let status;
      let before;
      let vBefore;
      let killedAt;
      for (let attempt = 1; ; attempt++) {
        status = await liveStatus(`before kill ${k}`);
        before = await lastReading(`before kill ${k}`);
        vBefore = await watchState(viewer);
        killedAt = Date.now();
        try {
          process.kill(status.pid, 'SIGKILL');
          killed.add(status.pid);
          break;
        } catch (e) {
          // The process was replaced between the status and the kill: read the status again.
          if (e.code !== 'ESRCH' || attempt >= 5) throw e;
          console.log(`kill ${k}: pid ${status.pid} is gone already (ESRCH); reading the status again`);
          killed.add(status.pid);
        }
      }

      // The first playlist reading after the kill with a part of the new process: after a new
      // discontinuity. (A part that merely differs from the last one before the kill may still be
      // the dead process's last one, flushed just after the kill.)
      let newPartAt = null;
      let anyPartAt = null;
      let newPid = null;
      const samples = [];
      while (Date.now() - killedAt < WATCH_AFTER_KILL_MS || newPartAt === null) {
        if (Date.now() - killedAt > 20000) break;
        await sleep(250);
        const r = poller.readings.find((x) => x.at >= killedAt && x.status === 200 && x.discTotal > before.discTotal && x.partsSinceDisc > 0);
        if (r && newPartAt === null) newPartAt = r.at;
        const any = poller.readings.find((x) => x.at >= killedAt && x.status === 200 && x.lastPart && x.lastPart !== before?.lastPart);
        if (any && anyPartAt === null) anyPartAt = any.at;
        samples.push({ at: Date.now() - killedAt, ...(await watchState(viewer)) });
        if (newPid === null) {
          const s = await broadcastStatus().catch(() => null);
          if (s?.pid && s.pid !== status.pid) newPid = s.pid;
        }
      }
      let vAfter = await watchState(viewer);
      const ms = newPartAt === null ? null : newPartAt - killedAt;
      times.push(ms ?? Infinity);
      const stalls = samples.filter((s, i) => i > 0 && s.t <= samples[i - 1].t).length;
      console.log(
        `kill ${k}: pid ${status.pid} → ${newPid ?? '?'}; first part of the new process after ${ms ?? 'never'} ms ` +
          `(first changed part ${anyPartAt === null ? 'never' : `${anyPartAt - killedAt} ms`}); ` +
          `viewer currentTime ${vBefore.t.toFixed(2)} → ${vAfter.t.toFixed(2)} over ${((Date.now() - killedAt) / 1000).toFixed(1)} s ` +
          `(${stalls} of ${samples.length} samples without progress), status ${vAfter.status}, latency ${vAfter.latency?.toFixed?.(2) ?? '?'} s`,
      );
      if (ms === null || ms > NEW_PART_WITHIN_MS) await failWith(viewer, `kill ${k}: no new part within ${NEW_PART_WITHIN_MS} ms (first after ${ms ?? 'never'} ms)`);
      // Playback went on: at least MIN_PROGRESS_S of media played by PROGRESS_BY_MS after the
      // kill (a short stall while the new process starts is fine; a freeze is not)…
      while (!(vAfter.t >= vBefore.t + MIN_PROGRESS_S) && Date.now() - killedAt < PROGRESS_BY_MS) {
        await sleep(250);
        vAfter = await watchState(viewer);
      }
      if (!(vAfter.t >= vBefore.t + MIN_PROGRESS_S)) {
        await failWith(viewer, `kill ${k}: playback did not continue: currentTime ${vBefore.t} → ${vAfter.t} in ${Date.now() - killedAt} ms`);
      }
      console.log(`kill ${k}: ${(vAfter.t - vBefore.t).toFixed(2)} s of media played in the ${Date.now() - killedAt} ms after the kill (≥ ${MIN_PROGRESS_S} s needed by ${PROGRESS_BY_MS} ms)`);
      // …and it is still advancing at the end of the window (not a burst that then froze).
      const moving = await viewer.page
        .waitForFunction((t) => window.__watch.video.currentTime > t + 0.3, vAfter.t, { timeout: 6000, polling: 200 })
        .then(() => true, () => false);
      if (!moving) await failWith(viewer, `kill ${k}: playback froze at ${vAfter.t} s after the window: ${JSON.stringify(samples.slice(-6))}`);
      if (vAfter.fatalErrors !== startErrors) await failWith(viewer, `kill ${k}: the viewer had a fatal hls.js error: ${vAfter.lastError}`);
      assert.notEqual(vAfter.status, 'offline');
    }

    await poller.stop();
    const ok = poller.readings.filter((r) => r.status === 200);
    for (let i = 1; i < ok.length; i++) {
      assert.ok(ok[i].msn >= ok[i - 1].msn, `media sequence went back: ${ok[i - 1].msn} → ${ok[i].msn} at reading ${i}`);
    }
    const errors = await viewer.page.evaluate(() => window.__hlsErrors);
    await viewer.page.screenshot({ path: join(OUT_DIR, 'faults-viewer.png') }).catch(() => undefined);
    const final = await broadcastStatus();
    console.log(
      `kill → first part of the new process: ${times.map((t) => `${t} ms`).join(', ')}; p50 ${median(times)} ms over ${times.length} kill(s); ` +
        `MSN ${ok[0]?.msn} → ${ok.at(-1)?.msn} over ${ok.length} readings, never decreasing; ` +
        `discontinuities in the last playlist: ${ok.at(-1)?.discontinuities}; restarts ${final.restarts}; ` +
        `non-fatal hls.js errors: ${errors.length ? errors.join(', ') : 'none'}`,
    );
    assert.ok(final.restarts >= KILLS, `the supervisor counted the restarts: ${JSON.stringify(final)}`);
  });
});
