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
/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

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
    // participant name → video frames decoded from that participant's m-line(s)
    framesByName: Object.fromEntries(
      s.participants.map((p) => [
        p.name,
        s.tracks
          .filter((t) => t.participant_id === p.id && t.kind === 'video')
          .reduce((n, t) => n + (video.find((v) => v.mid === t.mid)?.framesDecoded ?? 0), 0),
      ]),
    ),
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

describe('room page: participants see each other', () => {
  /** @type {Awaited<ReturnType<typeof startGateway>>} */
  let gw;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {Awaited<ReturnType<typeof openPage>>[]} */
  let pages = [];
  let roomId;

  before(
    async () => {
      mkdirSync(OUT_DIR, { recursive: true });
      gw = await startGateway({ name: 'room' });
      const room = await api(gw.url, 'POST', '/api/rooms', { name: 'browser test' });
      assert.ok(room?.id, `POST /api/rooms returned no id: ${JSON.stringify(room)}`);
      roomId = room.id;
      browser = await launchChromium();
    },
    { timeout: TEST_TIMEOUT_MS },
  );

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
      parts.push(`--- page ${p.label}: last signaling frames (page log) ---\n${(await signalingLog(p)).join('\n')}`);
      const frames = p.wsFrames.slice(-12).map((f) => `${new Date(f.at).toISOString().slice(11, 23)} ${f.dir.padEnd(4)} ${f.text.length > 4000 ? `${f.text.slice(0, 4000)}…` : f.text}`);
      parts.push(`--- page ${p.label}: last 12 WebSocket frames in full (SDP with \\r\\n) ---\n${frames.join('\n')}`);
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

  const byLabel = (label) => pages.find((p) => p.label === label);

  async function joinAs(label) {
    const p = await openPage(browser, label);
    pages.push(p);
    await p.page.goto(`${gw.url}/room/${encodeURIComponent(roomId)}?name=${label}&autojoin=1`);
    return p;
  }

  /**
   * Polls snapshots of the live pages until `done(snaps by label)` holds; on timeout prints
   * diagnostics and fails with `describe(snaps)`.
   */
  async function waitFor(title, labels, done, explain, timeoutMs = DECODE_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let snaps = {};
    for (;;) {
      const list = await Promise.all(
        labels.map((l) => byLabel(l).page.evaluate(pageSnapshot).catch((e) => ({ error: e.message }))),
      );
      snaps = Object.fromEntries(labels.map((l, i) => [l, list[i]]));
      if (done(snaps)) return snaps;
      if (Date.now() >= deadline) break;
      await sleep(500);
    }
    await screenshots('-failed');
    console.error(await diagnostics(`${title}: not true after ${timeoutMs} ms`));
    assert.fail(`${title}: ${explain(snaps)} (diagnostics above)`);
  }

  const frames = (snaps, viewer, of) => snaps[viewer]?.framesByName?.[of] ?? 0;

  it("each page decodes the other page's video", { timeout: TEST_TIMEOUT_MS }, async () => {
    await joinAs('A');
    await joinAs('B');
    const snaps = await waitFor(
      'A and B decode each other',
      ['A', 'B'],
      (s) => s.A.framesDecoded > 0 && s.B.framesDecoded > 0,
      (s) => `A decoded ${s.A.framesDecoded ?? 0} frames, B decoded ${s.B.framesDecoded ?? 0}`,
    );
    await sleep(1000); // let a few frames paint before the screenshots
    await screenshots();
    for (const [me, other] of [['A', 'B'], ['B', 'A']]) {
      const s = snaps[me];
      console.log(`page ${me}: ${s.framesDecoded} frames decoded: ${JSON.stringify(s.video)}; ICE pair ${s.subscribe?.selectedPair}`);
      assert.equal(s.phase, 'joined');
      assert.ok(s.participants.some((p) => p.startsWith(`${other} (`)), `page ${me} does not list ${other}: ${JSON.stringify(s.participants)}`);
      assert.ok(s.remoteTileNames.includes(other), `page ${me} has no tile named ${other}: ${JSON.stringify(s.remoteTileNames)}`);
    }
  });

  it('a third participant sees both and is seen by both', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (pages.length < 2) return t.skip('needs the first test');
    await joinAs('C');
    await waitFor(
      'A, B and C decode each other',
      ['A', 'B', 'C'],
      (s) => frames(s, 'A', 'C') > 0 && frames(s, 'B', 'C') > 0 && frames(s, 'C', 'A') > 0 && frames(s, 'C', 'B') > 0,
      (s) =>
        `frames decoded: A←C ${frames(s, 'A', 'C')}, B←C ${frames(s, 'B', 'C')}, C←A ${frames(s, 'C', 'A')}, C←B ${frames(s, 'C', 'B')}`,
    );
    await screenshots('-three');
  });

  it('tiles go away when their participant leaves', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!byLabel('C')) return t.skip('needs the previous test');
    await byLabel('C').page.evaluate(() => window.__roomcast?.session.leave());
    await waitFor(
      "C's tile disappears on A and B",
      ['A', 'B'],
      (s) => !s.A.remoteTileNames?.includes('C') && !s.B.remoteTileNames?.includes('C'),
      (s) => `tiles: A ${JSON.stringify(s.A.remoteTileNames)}, B ${JSON.stringify(s.B.remoteTileNames)}`,
      10000,
    );
    // The others still see each other.
    const before = await waitFor('A still decodes B', ['A'], (s) => frames(s, 'A', 'B') > 0, () => 'no frames of B on A', 10000);
    await sleep(1500);
    await waitFor(
      'A keeps decoding B after C left',
      ['A', 'B'],
      (s) => frames(s, 'A', 'B') > frames(before, 'A', 'B') && s.A.phase === 'joined' && s.B.phase === 'joined',
      (s) => `A←B frames ${frames(before, 'A', 'B')} → ${frames(s, 'A', 'B')}; phases A ${s.A.phase}, B ${s.B.phase}`,
      10000,
    );
    await screenshots('-after-leave');
  });

  it('after everyone else left, a newcomer is still seen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!byLabel('B')) return t.skip('needs the first test');
    await byLabel('B').page.evaluate(() => window.__roomcast?.session.leave());
    await waitFor('B leaves A alone', ['A'], (s) => (s.A.remoteTileNames ?? []).length === 0, (s) => `A still shows ${JSON.stringify(s.A.remoteTileNames)}`, 10000);
    await sleep(1500); // the subscribe renegotiation for B's departure settles
    await joinAs('D');
    await waitFor(
      'A and D decode each other',
      ['A', 'D'],
      (s) => frames(s, 'A', 'D') > 0 && frames(s, 'D', 'A') > 0,
      (s) => `A←D ${frames(s, 'A', 'D')} frames, D←A ${frames(s, 'D', 'A')}; A phase ${s.A.phase} (${s.A.endReason ?? ''})`,
    );
    await screenshots('-newcomer');
  });
});
