// Two Chromium pages join one room through the real web app and gateway; each must decode
// the other's video (subscribe PeerConnection: inbound-rtp video framesDecoded > 0).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium, openPage } from './lib/browser.mjs';
import { OUT_DIR, api, startGateway } from './lib/gateway.mjs';

const DECODE_TIMEOUT_MS = Number(process.env.ROOMCAST_DECODE_TIMEOUT_MS ?? 20000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs in the page: what the room page knows, plus decode stats of the subscribe PC. */
async function pageSnapshot() {
  const rc = window.__roomcast;
  if (!rc) return { loaded: false, url: location.href };
  const sdpSummary = (d) =>
    d
      ? d.sdp
          .split(/\r?\n/)
          .filter((l) => /^(m=|a=mid:|a=(sendonly|recvonly|sendrecv|inactive)$|a=rtpmap:\d+ (VP8|H264|opus))/.test(l))
          .join(' | ')
      : null;
  const video = [];
  const audio = [];
  let selectedPair = null;
  if (rc.subscribePc) {
    const stats = await rc.subscribePc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        video.push({
          mid: r.mid,
          framesDecoded: r.framesDecoded ?? 0,
          framesReceived: r.framesReceived ?? 0,
          packetsReceived: r.packetsReceived ?? 0,
          keyFramesDecoded: r.keyFramesDecoded ?? 0,
          pliCount: r.pliCount ?? 0,
          nackCount: r.nackCount ?? 0,
          frameWidth: r.frameWidth,
          codec: r.codecId ? stats.get(r.codecId)?.mimeType : undefined,
        });
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        audio.push({ mid: r.mid, packetsReceived: r.packetsReceived ?? 0 });
      }
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        selectedPair = `${stats.get(r.localCandidateId)?.address}:${stats.get(r.localCandidateId)?.port} ↔ ${stats.get(r.remoteCandidateId)?.address}:${stats.get(r.remoteCandidateId)?.port}`;
      }
    });
  }
  let outbound = [];
  if (rc.publishPc) {
    const stats = await rc.publishPc.getStats();
    stats.forEach((r) => {
      if (r.type === 'outbound-rtp') {
        outbound.push({ kind: r.kind, mid: r.mid, packetsSent: r.packetsSent ?? 0, framesEncoded: r.framesEncoded, pliCount: r.pliCount });
      }
    });
  }
  const s = rc.state;
  return {
    loaded: true,
    phase: s.phase,
    selfId: rc.participantId,
    selfName: s.selfName,
    participants: s.participants.map((p) => `${p.name} (${p.id})`),
    producers: s.producers.map((p) => `${p.id}:${p.kind}`),
    tracks: s.tracks.map((t) => `mid ${t.mid} → ${t.producer_id} ${t.kind}`),
    notices: s.notices.map((n) => `${n.code}: ${n.message}`),
    endReason: s.endReason,
    publish: rc.publishPc
      ? {
          signaling: rc.publishPc.signalingState,
          ice: rc.publishPc.iceConnectionState,
          connection: rc.publishPc.connectionState,
          local: sdpSummary(rc.publishPc.localDescription),
          remote: sdpSummary(rc.publishPc.remoteDescription),
        }
      : null,
    subscribe: rc.subscribePc
      ? {
          signaling: rc.subscribePc.signalingState,
          ice: rc.subscribePc.iceConnectionState,
          connection: rc.subscribePc.connectionState,
          remote: sdpSummary(rc.subscribePc.remoteDescription),
          local: sdpSummary(rc.subscribePc.localDescription),
          selectedPair,
        }
      : null,
    outbound,
    video,
    audio,
    framesDecoded: video.reduce((n, v) => n + v.framesDecoded, 0),
    remoteTileNames: [...document.querySelectorAll('[data-testid="remote-tile"] .tile-name')].map((e) => e.textContent),
  };
}

function signalingLog(p) {
  return p.page
    .evaluate(() =>
      (window.__roomcast?.log ?? []).slice(-40).map((e) => `${new Date(e.at).toISOString().slice(11, 23)} ${e.dir.padEnd(4)} ${e.text}`),
    )
    .catch((e) => [`(could not read the signaling log: ${e.message})`]);
}

describe('room page: two participants see each other', () => {
  /** @type {Awaited<ReturnType<typeof startGateway>>} */
  let gw;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {Awaited<ReturnType<typeof openPage>>[]} */
  let pages = [];
  let roomId;

  before(async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    gw = await startGateway({ name: 'room' });
    const room = await api(gw.url, 'POST', '/api/rooms', { name: 'browser test' });
    assert.ok(room?.id, `POST /api/rooms returned no id: ${JSON.stringify(room)}`);
    roomId = room.id;
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of pages) await p.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await gw?.stop();
  });

  async function diagnostics(title) {
    const parts = [`\n===== ${title} =====`, `room ${roomId} on ${gw.url}`];
    for (const p of pages) {
      const snap = await p.page.evaluate(pageSnapshot).catch((e) => ({ error: e.message }));
      parts.push(`\n--- page ${p.label}: state ---\n${JSON.stringify(snap, null, 2)}`);
      parts.push(`--- page ${p.label}: last signaling frames ---\n${(await signalingLog(p)).join('\n')}`);
      parts.push(`--- page ${p.label}: console (last 60) ---\n${p.consoleLines.slice(-60).join('\n')}`);
    }
    parts.push(`\n--- gateway log (last 60 lines; full log in ${gw.logPath}) ---\n${gw.logTail(60)}`);
    return parts.join('\n');
  }

  async function screenshots(suffix = '') {
    for (const p of pages) {
      await p.page
        .screenshot({ path: join(OUT_DIR, `room-${p.label}${suffix}.png`), fullPage: true })
        .catch((e) => console.error(`screenshot of ${p.label} failed: ${e.message}`));
    }
  }

  it('each page decodes the other page\'s video', async () => {
    for (const label of ['A', 'B']) {
      const p = await openPage(browser, label);
      pages.push(p);
      await p.page.goto(`${gw.url}/room/${encodeURIComponent(roomId)}?name=${label}&autojoin=1`);
    }
    const deadline = Date.now() + DECODE_TIMEOUT_MS;
    let snaps = [];
    while (Date.now() < deadline) {
      snaps = await Promise.all(pages.map((p) => p.page.evaluate(pageSnapshot).catch((e) => ({ error: e.message }))));
      if (snaps.every((s) => s.framesDecoded > 0)) break;
      await sleep(500);
    }
    const ok = snaps.every((s) => s.framesDecoded > 0);
    if (ok) await sleep(1000); // let a few frames paint before the screenshots
    await screenshots();
    if (!ok) {
      const who = pages.filter((_, i) => !(snaps[i].framesDecoded > 0)).map((p) => p.label);
      const diag = await diagnostics(`no decoded video on page(s) ${who.join(', ')} after ${DECODE_TIMEOUT_MS} ms`);
      console.error(diag);
      assert.fail(`page(s) ${who.join(', ')} decoded no remote video frames within ${DECODE_TIMEOUT_MS} ms (diagnostics above)`);
    }
    for (const [i, s] of snaps.entries()) {
      const other = pages[1 - i].label;
      console.log(`page ${pages[i].label}: ${s.framesDecoded} frames decoded from ${JSON.stringify(s.video)}; pair ${s.subscribe?.selectedPair}`);
      assert.equal(s.phase, 'joined');
      assert.ok(
        s.participants.some((p) => p.startsWith(`${other} (`)),
        `page ${pages[i].label} does not list ${other}: ${JSON.stringify(s.participants)}`,
      );
      assert.ok(s.remoteTileNames.includes(other), `page ${pages[i].label} has no tile named ${other}: ${JSON.stringify(s.remoteTileNames)}`);
    }
  });

  it('a tile goes away when its participant leaves', async (t) => {
    if (pages.length < 2) return t.skip('needs the first test');
    const [a, b] = pages;
    await b.page.evaluate(() => window.__roomcast?.session.leave());
    const deadline = Date.now() + 10000;
    let names = [];
    while (Date.now() < deadline) {
      names = await a.page.evaluate(() =>
        [...document.querySelectorAll('[data-testid="remote-tile"] .tile-name')].map((e) => e.textContent),
      );
      if (!names.includes('B')) break;
      await sleep(250);
    }
    if (names.includes('B')) {
      console.error(await diagnostics('tile of B still shown on A 10 s after B left'));
      assert.fail(`page A still shows a tile for B after B left: ${JSON.stringify(names)}`);
    }
    await screenshots('-after-leave');
  });
});
