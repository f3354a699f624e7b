// Shared helpers for tests that drive room pages: a room fixture (gateway + browser + pages),
// page snapshots (what the page knows + decode stats), polling with diagnostics on timeout.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, openPage } from './browser.mjs';
import { OUT_DIR, api, startGateway } from './gateway.mjs';

export const DECODE_TIMEOUT_MS = Number(process.env.ROOMCAST_DECODE_TIMEOUT_MS ?? 20000);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs in the page: the room state, tiles as rendered, and decode stats per remote tile. */
export async function roomSnapshot() {
  const rc = window.__roomcast;
  if (!rc) return { loaded: false, url: location.href };
  const s = rc.state;
  const byMid = new Map();
  let selectedPair = null;
  if (rc.subscribePc) {
    const stats = await rc.subscribePc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp') {
        byMid.set(r.mid, {
          kind: r.kind,
          framesDecoded: r.framesDecoded ?? 0,
          packetsReceived: r.packetsReceived ?? 0,
          frameWidth: r.frameWidth,
          frameHeight: r.frameHeight,
        });
      }
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        selectedPair = `${stats.get(r.localCandidateId)?.address}:${stats.get(r.localCandidateId)?.port} ↔ ${stats.get(r.remoteCandidateId)?.address}:${stats.get(r.remoteCandidateId)?.port}`;
      }
    });
  }
  const outbound = [];
  if (rc.publishPc) {
    const stats = await rc.publishPc.getStats();
    stats.forEach((r) => {
      if (r.type === 'outbound-rtp') {
        outbound.push({ kind: r.kind, mid: r.mid, packetsSent: r.packetsSent ?? 0, framesEncoded: r.framesEncoded, frameWidth: r.frameWidth });
      }
    });
  }
  const name = (pid) => s.participants.find((p) => p.id === pid)?.name ?? pid;
  // Producer roles as the page computes them: the first video producer of a participant is its camera.
  const videoProducers = {};
  for (const p of s.producers) {
    if (p.kind !== 'video') continue;
    (videoProducers[p.participant_id] ??= []).push(p.id);
  }
  const num = (id) => Number(/:(\d+)$/.exec(id)?.[1] ?? Infinity);
  const isScreen = (t) => {
    const list = (videoProducers[t.participant_id] ?? []).slice().sort((a, b) => num(a) - num(b));
    return t.kind === 'video' && list.indexOf(t.producer_id) > 0;
  };
  const frames = (filter) =>
    Object.fromEntries(
      s.participants.map((p) => [
        p.name,
        s.tracks.filter((t) => t.participant_id === p.id && t.kind === 'video' && filter(t)).reduce((n, t) => n + (byMid.get(t.mid)?.framesDecoded ?? 0), 0),
      ]),
    );
  const tiles = [...document.querySelectorAll('[data-testid="remote-tile"], [data-testid="screen-tile"]')].map((e) => ({
    testId: e.dataset.testid,
    name: e.querySelector('.tile-name')?.textContent ?? '',
    audioMuted: e.dataset.audioMuted === 'true',
    videoMuted: e.dataset.videoMuted === 'true',
    mutedIcon: Boolean(e.querySelector('[data-testid="muted-icon"]')),
    quality: e.dataset.quality,
    speaking: e.dataset.speaking === 'true',
  }));
  return {
    loaded: true,
    phase: s.phase,
    selfId: rc.participantId,
    selfName: s.selfName,
    participants: s.participants.map((p) => `${p.name} (${p.id})`),
    producers: s.producers.map((p) => `${p.id}:${p.kind}`),
    tracks: s.tracks.map((t) => `mid ${t.mid} → ${t.producer_id} ${t.kind}${isScreen(t) ? ' (screen)' : ''}`),
    notices: s.notices.map((n) => `${n.code}: ${n.message}`),
    endReason: s.endReason,
    reconnect: s.reconnect,
    reconnects: s.reconnects,
    broadcast: s.broadcast,
    chat: s.chat.map((m) => `${m.name}: ${m.text}`),
    reactions: s.reactions.map((r) => `${name(r.participantId)} ${r.emoji}`),
    screen: s.screen,
    camera: s.camera,
    mic: s.mic,
    reconnectingBanner: Boolean(document.querySelector('[data-testid="reconnecting"]')),
    publish: rc.publishPc ? { connection: rc.publishPc.connectionState, signaling: rc.publishPc.signalingState } : null,
    subscribe: rc.subscribePc ? { connection: rc.subscribePc.connectionState, signaling: rc.subscribePc.signalingState, selectedPair } : null,
    outbound,
    framesDecoded: [...byMid.values()].filter((v) => v.kind === 'video').reduce((n, v) => n + v.framesDecoded, 0),
    /** participant name → camera video frames decoded */
    framesByName: frames((t) => !isScreen(t)),
    /** participant name → screen-share video frames decoded */
    screenFramesByName: frames(isScreen),
    tiles,
    remoteTileNames: tiles.filter((t) => t.testId === 'remote-tile').map((t) => t.name),
    screenTileNames: tiles.filter((t) => t.testId === 'screen-tile').map((t) => t.name),
    live: rc.live ? { speaker: rc.live.speaker, quality: Object.fromEntries([...rc.live.quality].map(([k, v]) => [k, v.quality])) } : null,
  };
}

/**
 * Records (in the page, as `window.__reconnectingShownAt`) when the "reconnecting" banner first
 * appears: a MutationObserver catches it however briefly it shows (a quick re-join takes
 * < 500 ms, shorter than a polling interval). Install before causing the disconnect.
 */
export async function recordReconnectingBanner(page) {
  await page.evaluate(() => {
    window.__reconnectingShownAt = null;
    const observer = new MutationObserver(() => {
      if (window.__reconnectingShownAt === null && document.querySelector('[data-testid="reconnecting"]')) {
        window.__reconnectingShownAt = Date.now();
        observer.disconnect();
      }
    });
    observer.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-testid'] });
  });
}

/**
 * A gateway, a browser and pages joining one room.
 * @param {string} name  test name (log file names)
 */
export function roomFixture(name, { gatewayArgs = [], chromiumArgs = [] } = {}) {
  const fx = {
    /** @type {Awaited<ReturnType<typeof startGateway>>} */
    gw: null,
    browser: null,
    pages: [],
    roomId: null,
    async setup() {
      mkdirSync(OUT_DIR, { recursive: true });
      fx.gw = await startGateway({ name, extraArgs: gatewayArgs });
      const room = await api(fx.gw.url, 'POST', '/api/rooms', { name: `${name} test` });
      assert.ok(room?.id, `POST /api/rooms returned no id: ${JSON.stringify(room)}`);
      fx.roomId = room.id;
      fx.browser = await launchChromium(chromiumArgs);
    },
    /**
     * Stops the gateway (SIGTERM, as a deploy does) and starts a new one on the same port and
     * data directory; the pages stay open. Returns when the new one answers /healthz.
     */
    async restartGateway() {
      const { port, dataDir } = fx.gw;
      await fx.gw.stop({ keepData: true });
      const stoppedAt = Date.now();
      fx.gw = await startGateway({ name: `${name}-after-restart`, extraArgs: gatewayArgs, port, dataDir });
      return { stoppedAt, upAt: Date.now() };
    },
    async teardown() {
      for (const p of fx.pages) await p.context.close().catch(() => undefined);
      await fx.browser?.close().catch(() => undefined);
      await fx.gw?.stop();
    },
    byLabel(label) {
      const p = fx.pages.find((x) => x.label === label);
      assert.ok(p, `no page ${label}`);
      return p;
    },
    roomUrl(query = '') {
      return `${fx.gw.url}/room/${encodeURIComponent(fx.roomId)}${query}`;
    },
    /** Opens a page (its own context) without navigating. */
    async open(label, opts) {
      const p = await openPage(fx.browser, label, opts);
      fx.pages.push(p);
      return p;
    },
    /** Opens a page that joins at once (no lobby), with the low preset to spare the CPU. */
    async joinAs(label, { preset = 'low', before } = {}) {
      const p = await fx.open(label);
      if (before) await before(p);
      await p.page.goto(fx.roomUrl(`?name=${encodeURIComponent(label)}&autojoin=1&preset=${preset}`));
      return p;
    },
    async close(label) {
      const i = fx.pages.findIndex((x) => x.label === label);
      if (i < 0) return;
      const [p] = fx.pages.splice(i, 1);
      await p.context.close().catch(() => undefined);
    },
    async snapshots(labels) {
      const list = await Promise.all(labels.map((l) => fx.byLabel(l).page.evaluate(roomSnapshot).catch((e) => ({ error: e.message }))));
      return Object.fromEntries(labels.map((l, i) => [l, list[i]]));
    },
    /** Waits until pages `a` and `b` decode each other's video. */
    async waitPairDecodes(a = 'A', b = 'B') {
      return fx.waitFor(
        `${a} and ${b} decode each other`,
        [a, b],
        (s) => frames(s, a, b) > 0 && frames(s, b, a) > 0,
        (s) => `${a}←${b} ${frames(s, a, b)}, ${b}←${a} ${frames(s, b, a)}`,
      );
    },
    async screenshots(suffix = '') {
      for (const p of fx.pages) {
        await p.page
          .screenshot({ path: join(OUT_DIR, `${name}-${p.label}${suffix}.png`) })
          .catch((e) => console.error(`screenshot of ${p.label} failed: ${e.message}`));
      }
    },
    async diagnostics(title) {
      const parts = [`\n===== ${title} =====`, `room ${fx.roomId} on ${fx.gw.url}`];
      for (const p of fx.pages) {
        const snap = await p.page.evaluate(roomSnapshot).catch((e) => ({ error: e.message }));
        parts.push(`\n--- page ${p.label}: state ---\n${JSON.stringify(snap, null, 2)}`);
        const log = await p.page
          .evaluate(() => (window.__roomcast?.log ?? []).slice(-30).map((e) => `${new Date(e.at).toISOString().slice(11, 23)} ${e.dir.padEnd(4)} ${e.text}`))
          .catch((e) => [`(could not read the signaling log: ${e.message})`]);
        parts.push(`--- page ${p.label}: last signaling frames (page log) ---\n${log.join('\n')}`);
        parts.push(`--- page ${p.label}: console (last 50) ---\n${p.consoleLines.slice(-50).join('\n')}`);
      }
      parts.push(`\n--- gateway log (last 60 lines; full log in ${fx.gw.logPath}) ---\n${fx.gw.logTail(60)}`);
      return parts.join('\n');
    },
    /**
     * Polls snapshots until `done(snaps)` holds; on timeout prints diagnostics and fails with
     * `explain(snaps)`. Returns the last snapshots.
     */
    async waitFor(title, labels, done, explain, timeoutMs = DECODE_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      let snaps = {};
      for (;;) {
        snaps = await fx.snapshots(labels);
        let ok = false;
        try {
          ok = done(snaps);
        } catch {
          ok = false;
        }
        if (ok) return snaps;
        if (Date.now() >= deadline) break;
        await sleep(400);
      }
      await fx.screenshots('-failed');
      console.error(await fx.diagnostics(`${title}: not true after ${timeoutMs} ms`));
      assert.fail(`${title}: ${explain(snaps)} (diagnostics above)`);
    },
  };
  return fx;
}

/** Frames of `of`'s camera decoded on `viewer`'s page. */
export const frames = (snaps, viewer, of) => snaps[viewer]?.framesByName?.[of] ?? 0;
export const screenFrames = (snaps, viewer, of) => snaps[viewer]?.screenFramesByName?.[of] ?? 0;
