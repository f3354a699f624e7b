// One on-air run: Chromium publishers with solid-colour cameras join a room, the broadcast
// goes live, and every step is judged by the served picture (lib/onair.mjs): go-live → every
// tile shows its publisher, a late joiner's tile, a leave, camera off → placeholder → on.
import assert from 'node:assert/strict';
import { openPage } from './browser.mjs';
import { api, blackhole } from './gateway.mjs';
import { COLOURS, canvasCameraScript, servedTiles, waitTiles } from './onair.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function publisher(browser, base, roomId, i, preset) {
  const label = `U${i}`;
  const p = await openPage(browser, label, { viewport: { width: 800, height: 500 } });
  await p.context.addInitScript({ content: canvasCameraScript(COLOURS[i].rgb) });
  const joinedAt = async () => {
    await p.page.goto(`${base}/room/${encodeURIComponent(roomId)}?name=${label}&autojoin=1&preset=${preset}`);
    await p.page.waitForFunction(() => window.__roomcast?.state.phase === 'joined', null, { timeout: 30000 });
    // The page's own clock (same machine): on a loaded host Playwright hears of the join up to
    // a second late, which would make a late join look that much faster.
    return p.page.evaluate(() => window.__roomcast.welcomedAtMs);
  };
  p.joinedAt = await joinedAt();
  p.colour = COLOURS[i].name;
  return p;
}

/** Waits until the page's camera is being encoded (what it publishes is real). */
async function encoding(p) {
  await p.page.waitForFunction(
    async () => {
      const pc = window.__roomcast?.publishPc;
      if (!pc) return false;
      let frames = 0;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') frames += r.framesEncoded ?? 0;
      });
      return frames > 0;
    },
    null,
    { timeout: 30000, polling: 250 },
  );
}

/**
 * Verbose runs only: what each publisher's browser did from go-live on, from its own stats
 * (polled every 500 ms): per simulcast layer, frames encoded per second, when the first PLI/FIR
 * arrived and when the next keyframe was encoded after it, and why the encoder was limited.
 * It tells a starved publisher (a few frames per second, a keyframe seconds after the PLI)
 * from a gateway that never asked.
 */
function watchPublishers(pages, t0) {
  const snap = (p) =>
    p.page
      .evaluate(async () => {
        const pc = window.__roomcast?.publishPc;
        const out = [];
        if (pc) (await pc.getStats()).forEach((r) => {
          if (r.type === 'outbound-rtp' && r.kind === 'video') out.push({ rid: r.rid ?? '-', frames: r.framesEncoded ?? 0, keys: r.keyFramesEncoded ?? 0, pli: r.pliCount ?? 0, fir: r.firCount ?? 0, why: r.qualityLimitationReason, h: r.frameHeight });
        });
        return out;
      })
      .catch(() => []);
  const state = pages.map(() => ({ first: null, last: null, asked: new Map(), keyAfterAsk: new Map(), whys: new Set() }));
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now() - t0;
      const snaps = await Promise.all(pages.map(snap));
      snaps.forEach((layers, i) => {
        const s = state[i];
        if (!s.first) s.first = { at, layers };
        for (const l of layers) {
          const prev = s.last?.layers.find((x) => x.rid === l.rid);
          if (prev && (l.pli > prev.pli || l.fir > prev.fir) && !s.asked.has(l.rid)) s.asked.set(l.rid, at);
          if (prev && l.keys > prev.keys && s.asked.has(l.rid) && !s.keyAfterAsk.has(l.rid)) s.keyAfterAsk.set(l.rid, at);
          if (l.why) s.whys.add(l.why);
        }
        s.last = { at, layers };
      });
      await sleep(500);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return state.map((s, i) => {
      if (!s.first || !s.last || s.last.at === s.first.at) return `${pages[i].colour}: no stats`;
      const secs = (s.last.at - s.first.at) / 1000;
      const layers = s.last.layers.map((l) => {
        const f = s.first.layers.find((x) => x.rid === l.rid);
        const fps = f ? ((l.frames - f.frames) / secs).toFixed(1) : '?';
        const ask = s.asked.has(l.rid) ? `asked +${s.asked.get(l.rid)} ms, key +${s.keyAfterAsk.get(l.rid) ?? 'none'} ms` : 'not asked';
        return `${l.rid} ${l.h ?? '?'}p ${fps} fps (${ask})`;
      });
      return `${pages[i].colour}: ${layers.join('; ')}; limited by ${[...s.whys].join('/') || '-'}`;
    });
  };
}

/**
 * @param {{ browser: import('playwright-core').Browser, gw: { url: string }, publishers: number, preset: 'hd'|'sd'|'low',
 *   lateJoin?: boolean, leave?: boolean, camera?: boolean, compositorRestart?: boolean, iceRestart?: boolean, timeoutMs?: number,
 *   log?: (s: string) => void }} o
 * `…Ms`: until the first part showing it was listed; `…SeenMs`: until a look saw it.
 * @returns {Promise<{ goLiveMs: number, goLiveSeenMs: number, lateJoinMs?: number, lateJoinSeenMs?: number, leaveMs?: number, iceRestartMs?: number, cameraOffMs?: number, cameraOnMs?: number }>}
 */
export async function onAirRun(o) {
  const { browser, gw, publishers: n, preset } = o;
  const timeoutMs = o.timeoutMs ?? 30000;
  const log = o.log ?? (() => undefined);
  const roomId = (await api(gw.url, 'POST', '/api/rooms', { name: `on air ${preset} ${n}` })).id;
  const pages = [];
  const result = {};
  let publishersDid = null;
  try {
    for (let i = 0; i < n; i += 1) pages.push(await publisher(browser, gw.url, roomId, i, preset));
    await Promise.all(pages.map(encoding));
    // Let the publishers settle as a user would (simulcast layers ramp up, CPU adaptation starts).
    await sleep(1000);
    const t0 = Date.now();
    publishersDid = process.env.ROOMCAST_ONAIR_VERBOSE ? watchPublishers(pages, t0) : null;
    await api(gw.url, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, {});
    const live = await waitTiles(gw.url, roomId, pages.map((p) => p.colour), { timeoutMs });
    if (publishersDid) console.log(`  publishers from go-live to every tile:\n    ${(await publishersDid()).join('\n    ')}`);
    publishersDid = null;
    if (process.env.ROOMCAST_ONAIR_VERBOSE) {
      const m = await fetch(`${gw.url}/metrics`).then((r) => r.text()).catch(() => '');
      console.log(`  gateway after go-live: ${m.split('\n').filter((l) => !l.startsWith('#') && /nack|loss|lost|keyframe|rtx/.test(l)).join(' | ')}`);
    }
    result.goLiveMs = live.at - t0;
    result.goLiveSeenMs = live.seenAt - t0;
    const history = (w) => w.seen.map((x) => `+${x.at - t0}ms ${x.error ?? x.tiles.join(',')}`).join(' | ');
    log(`go-live → all ${n} tiles: ${result.goLiveMs} ms`);
    if (process.env.ROOMCAST_ONAIR_VERBOSE) console.log(`  seen: ${history(live)}`);

    if (o.lateJoin) {
      const late = await publisher(browser, gw.url, roomId, n, preset);
      pages.push(late);
      const seen = await waitTiles(gw.url, roomId, pages.map((p) => p.colour), { timeoutMs });
      result.lateJoinMs = seen.at - late.joinedAt;
      result.lateJoinSeenMs = seen.seenAt - late.joinedAt;
      log(`late join (joined → its tile): ${result.lateJoinMs} ms`);
      if (process.env.ROOMCAST_ONAIR_VERBOSE) {
        console.log(`  seen: ${history(seen)} (one look every ${seen.pollMs} ms)`);
        // Where the joiner's own time goes: its signaling, relative to the page reaching joined.
        const kind = (t) => (t.startsWith('{') ? JSON.parse(t).type : t);
        console.log(`  late joiner: ${late.wsFrames.map((f) => `${f.dir} ${kind(f.text)} ${f.at - late.joinedAt}`).join(' | ')}`);
        console.log(`  late joiner's log (joined at ${new Date(late.joinedAt).toISOString().slice(11, 23)}):\n    ${late.consoleLines.filter((l) => l.includes('[roomcast]')).slice(0, 40).join('\n    ')}`);
      }
    }
    if (o.leave) {
      const gone = pages.shift();
      const t = Date.now();
      await gone.context.close();
      const seen = await waitTiles(gw.url, roomId, pages.map((p) => p.colour), { timeoutMs });
      result.leaveMs = seen.at - t;
      log(`leave → its tile gone, the others showing: ${result.leaveMs} ms`);
    }
    if (o.compositorRestart) {
      // The compositor dies (as a crash would): the supervisor restarts it, the legs start
      // again, and every tile must come back without anyone doing anything.
      const status = await api(gw.url, 'GET', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`);
      assert.ok(status.pid, `a compositor pid: ${JSON.stringify(status)}`);
      const before = await servedTiles(gw.url, roomId, pages.length);
      const t = Date.now();
      process.kill(status.pid, 'SIGKILL');
      const back = await waitTiles(gw.url, roomId, pages.map((p) => p.colour), { timeoutMs, minDisc: before.disc + 1 });
      result.compositorRestartMs = back.at - t;
      log(`compositor killed → every tile back: ${result.compositorRestartMs} ms`);
    }
    if (o.iceRestart) {
      // A publisher's media path breaks while signaling stays (the gateway's fault injection
      // drops its UDP): the page notices, restarts ICE (a new publish_offer), and once the
      // path is back its tile must show its colour again. Ended as soon as the page has sent
      // its ICE-restart offer, so the restart itself is what brings the media back.
      const p = pages[0];
      const id = await p.page.evaluate(() => window.__roomcast.participantId);
      assert.ok(id, 'the page knows its participant id');
      const t = await blackhole(gw.url, roomId, id, 60000);
      const restarted = () => p.wsFrames.some((f) => f.at >= t && f.dir === 'out' && f.text.startsWith('{"type":"publish_offer"'));
      while (!restarted()) {
        assert.ok(Date.now() - t < 30000, 'the page restarts ICE (a new publish_offer) within 30 s of losing its media');
        await sleep(100);
      }
      const tBack = await blackhole(gw.url, roomId, id, 1);
      const back = await waitTiles(gw.url, roomId, pages.map((x) => x.colour), { timeoutMs });
      result.iceRestartMs = back.at - tBack;
      log(`publisher's media cut → ICE restart offer after ${tBack - t} ms; path back → its tile ${result.iceRestartMs} ms`);
    }
    if (o.camera) {
      const p = pages[0];
      let t = Date.now();
      await p.page.getByRole('button', { name: 'Stop camera' }).click();
      const off = await waitTiles(gw.url, roomId, pages.map((x) => (x === p ? 'placeholder' : x.colour)), { timeoutMs });
      result.cameraOffMs = off.at - t;
      t = Date.now();
      await p.page.getByRole('button', { name: 'Start camera' }).click();
      const on = await waitTiles(gw.url, roomId, pages.map((x) => x.colour), { timeoutMs });
      result.cameraOnMs = on.at - t;
      log(`camera off → placeholder ${result.cameraOffMs} ms; on → colour ${result.cameraOnMs} ms`);
    }
    return result;
  } catch (e) {
    const status = await fetch(`${gw.url}/api/rooms/${encodeURIComponent(roomId)}/broadcast`).then((r) => r.text()).catch((x) => String(x));
    e.message += `\n(room ${roomId}; broadcast status: ${status}\ngateway log tail:\n${gw.logTail?.(60) ?? ''})`;
    e.partial = result;
    throw e;
  } finally {
    if (publishersDid) console.log(`  publishers from go-live on:\n    ${(await publishersDid()).join('\n    ')}`);
    await fetch(`${gw.url}/api/rooms/${encodeURIComponent(roomId)}/broadcast`, { method: 'DELETE' }).catch(() => undefined);
    for (const p of pages) await p.context.close().catch(() => undefined);
  }
}
