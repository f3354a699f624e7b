// Simulcast (issue 4 "Quality"): A publishes its 1280×720 fake camera with the HD preset as
// three simulcast layers (rids q/h/f: 180p/360p/720p); B tells the SFU how tall A's tile is
// (`layer_preference`, from the tile's rendered size) and receives the layer that fits: a large
// tile gets ≥ 360p, a small one ≤ 180p while frames keep coming, large again brings it back; a
// hidden video (max_height 0) stops; a preset change mid-call re-maps the layers; after B
// re-joins, its preference is sent again.
// Prints the frame heights of every phase.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { roomFixture, sleep } from './lib/room.mjs';

const SWITCH_TIMEOUT_MS = Number(process.env.ROOMCAST_LAYER_SWITCH_TIMEOUT_MS ?? 10000);
const LARGE = { width: 1600, height: 1200 };
const SMALL = { width: 520, height: 420 };

/** Runs in the publisher's page: outbound video per rid, and the camera sender's encodings. */
async function outboundLayers() {
  const rc = window.__roomcast;
  const out = {};
  if (!rc?.publishPc) return { layers: out, encodings: [] };
  const stats = await rc.publishPc.getStats();
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      out[r.rid ?? '-'] = {
        mid: r.mid,
        framesEncoded: r.framesEncoded ?? 0,
        frameWidth: r.frameWidth ?? 0,
        frameHeight: r.frameHeight ?? 0,
        bytesSent: r.bytesSent ?? 0,
        active: r.active,
        limitation: r.qualityLimitationReason,
      };
    }
  });
  const cam = rc.publishPc.getSenders().find((s) => s.track?.kind === 'video' && s.track.label.startsWith('fake_device'));
  const encodings = (cam?.getParameters().encodings ?? []).map((e) => ({ rid: e.rid, active: e.active, scale: e.scaleResolutionDownBy, maxBitrate: e.maxBitrate }));
  return { layers: out, encodings };
}

/** Runs in the subscriber's page: what it receives of `name`'s camera and what it told the SFU. */
async function inboundOf(name) {
  const rc = window.__roomcast;
  const s = rc?.state;
  const who = s?.participants.find((p) => p.name === name);
  if (!who || !rc.subscribePc) return { found: false };
  const videos = s.producers.filter((p) => p.participant_id === who.id && p.kind === 'video').map((p) => p.id);
  const num = (id) => Number(/:(\d+)$/.exec(id)?.[1] ?? Infinity);
  const producerId = videos.sort((a, b) => num(a) - num(b))[0];
  const track = s.tracks.find((t) => t.producer_id === producerId);
  let inbound = null;
  if (track) {
    const stats = await rc.subscribePc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.mid === track.mid) {
        inbound = { framesDecoded: r.framesDecoded ?? 0, frameWidth: r.frameWidth ?? 0, frameHeight: r.frameHeight ?? 0, keyFramesDecoded: r.keyFramesDecoded ?? 0 };
      }
    });
  }
  const tile = [...document.querySelectorAll('[data-testid="remote-tile"]')].find((e) => e.querySelector('.tile-name')?.textContent === name);
  return {
    found: true,
    phase: s.phase,
    selfId: rc.participantId,
    producerId,
    mid: track?.mid ?? null,
    framesDecoded: inbound?.framesDecoded ?? 0,
    frameWidth: inbound?.frameWidth ?? 0,
    frameHeight: inbound?.frameHeight ?? 0,
    keyFramesDecoded: inbound?.keyFramesDecoded ?? 0,
    tileVideoHeight: tile?.querySelector('video')?.clientHeight ?? null,
    dpr: window.devicePixelRatio,
    sent: rc.layerPreferences,
    // The server's error answers about layer_preference (the page stops sending it on unknown_type).
    errors: rc.log.filter((e) => e.dir === 'in' && e.text.includes('"error"') && e.text.includes('layer')).map((e) => e.text),
  };
}

describe('simulcast', () => {
  const fx = roomFixture('simulcast');
  const done = new Set();
  const needs = (t, step) => {
    if (!done.has(step)) {
      t.skip(`needs "${step}"`);
      return false;
    }
    return true;
  };
  const heights = {};
  let A;
  let B;

  /** Polls B's view of A's camera until `ok(v)`; fails with diagnostics after `timeoutMs`. */
  const waitB = async (title, ok, timeoutMs = SWITCH_TIMEOUT_MS) => {
    const deadline = Date.now() + timeoutMs;
    let v;
    for (;;) {
      v = await B.page.evaluate(inboundOf, 'A').catch((e) => ({ error: e.message }));
      if (v && !v.error && ok(v)) return v;
      if (Date.now() >= deadline) break;
      await sleep(300);
    }
    const pub = await A.page.evaluate(outboundLayers).catch((e) => ({ error: e.message }));
    await fx.screenshots('-failed');
    console.error(await fx.diagnostics(`${title}: not true after ${timeoutMs} ms`));
    assert.fail(`${title}: B sees ${JSON.stringify(v)}; A sends ${JSON.stringify(pub)} (diagnostics above)`);
  };

  before(() => fx.setup());
  after(async () => {
    console.log(`simulcast frame heights per phase: ${JSON.stringify(heights)}`);
    await fx.teardown();
  });

  it('A publishes its 720p camera as three simulcast layers q/h/f', async () => {
    A = await fx.joinAs('A', { preset: 'hd' });
    B = await fx.open('B', { viewport: LARGE });
    await B.page.goto(fx.roomUrl('?name=B&autojoin=1&preset=low'));
    const deadline = Date.now() + 30000;
    let pub;
    for (;;) {
      pub = await A.page.evaluate(outboundLayers);
      if (['q', 'h', 'f'].every((rid) => (pub.layers[rid]?.framesEncoded ?? 0) > 0)) break;
      if (Date.now() >= deadline) {
        console.error(await fx.diagnostics('A does not send q/h/f'));
        assert.fail(`A's outbound video per rid: ${JSON.stringify(pub)}`);
      }
      await sleep(500);
    }
    await sleep(3000); // let the bandwidth estimate grow
    pub = await A.page.evaluate(outboundLayers);
    console.log(`A sends: ${JSON.stringify(pub)}`);
    heights.sent = Object.fromEntries(Object.entries(pub.layers).map(([rid, l]) => [rid, `${l.frameWidth}x${l.frameHeight}`]));
    assert.deepEqual(
      pub.encodings.map((e) => e.rid),
      ['q', 'h', 'f'],
      'the camera sender has the layers lowest first',
    );
    assert.deepEqual(
      pub.encodings.map((e) => e.maxBitrate),
      [150000, 500000, 1500000],
      'every layer is capped',
    );
    // The layers are ordered by size (CPU adaptation may shrink all of them together).
    const h = (rid) => pub.layers[rid].frameHeight;
    assert.ok(h('q') > 0 && h('q') < h('h') && h('h') < h('f'), `layer heights q < h < f: ${JSON.stringify(heights.sent)}`);
    assert.ok(h('f') >= 360, `the full layer is at least 360p: ${JSON.stringify(heights.sent)}`);
    done.add('publish');
  });

  it('a large tile receives a high layer (≥ 360p)', async (t) => {
    if (!needs(t, 'publish')) return;
    const v = await waitB('B receives A at ≥ 360p in a large tile', (v) => v.framesDecoded > 0 && v.frameHeight >= 360, 30000);
    console.log(`large tile: ${JSON.stringify(v)}`);
    heights.large = v.frameHeight;
    assert.ok(v.tileVideoHeight > 360, `the tile is large: ${v.tileVideoHeight}px`);
    assert.ok((v.sent[v.producerId] ?? 0) >= 720, `B asked for ≥ 720: ${JSON.stringify(v.sent)}`);
    assert.deepEqual(v.errors, [], 'the server took layer_preference');
    done.add('large');
  });

  it('a small tile gets the lowest layer (≤ 180p) and keeps decoding', async (t) => {
    if (!needs(t, 'large')) return;
    await B.page.setViewportSize(SMALL);
    let v = await waitB('B asks for a small layer after the resize', (v) => v.tileVideoHeight !== null && v.sent[v.producerId] !== undefined && v.sent[v.producerId] <= 180, 5000).catch(
      () => null,
    );
    if (!v) {
      // Headless layout did not give a small enough tile: say it through the test hook instead.
      const now = await B.page.evaluate(inboundOf, 'A');
      console.log(`resize gave tile height ${now.tileVideoHeight}px, sent ${JSON.stringify(now.sent)}: pinning 180 through __roomcast.setLayerPreference`);
      await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, 180), now.producerId);
    }
    v = await waitB('B receives A at ≤ 180p in a small tile', (v) => v.frameHeight > 0 && v.frameHeight <= 180);
    const before = v.framesDecoded;
    await sleep(2000);
    v = await waitB('B keeps decoding the small layer', (v) => v.framesDecoded > before + 10 && v.frameHeight <= 180);
    console.log(`small tile: ${JSON.stringify(v)}`);
    heights.small = v.frameHeight;
    done.add('small');
  });

  it('large again brings the high layer back', async (t) => {
    if (!needs(t, 'small')) return;
    await B.page.setViewportSize(LARGE);
    const { producerId } = await B.page.evaluate(inboundOf, 'A');
    await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, null), producerId);
    const v = await waitB('B receives A at ≥ 360p again', (v) => v.frameHeight >= 360 && (v.sent[v.producerId] ?? 0) >= 720);
    console.log(`large again: ${JSON.stringify(v)}`);
    heights.largeAgain = v.frameHeight;
    done.add('large-again');
  });

  it('max_height 0 stops the video; a size brings it back', async (t) => {
    if (!needs(t, 'large-again')) return;
    const { producerId } = await B.page.evaluate(inboundOf, 'A');
    await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, 0), producerId);
    await sleep(1500);
    const a = await B.page.evaluate(inboundOf, 'A');
    await sleep(3000);
    const b = await B.page.evaluate(inboundOf, 'A');
    console.log(`hidden: frames ${a.framesDecoded} → ${b.framesDecoded} in 3 s`);
    heights.hiddenFramesIn3s = b.framesDecoded - a.framesDecoded;
    assert.ok(b.framesDecoded - a.framesDecoded <= 3, `no frames while max_height is 0: ${a.framesDecoded} → ${b.framesDecoded}`);
    await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, null), producerId);
    const back = await waitB('frames come back after max_height 0', (v) => v.framesDecoded > b.framesDecoded + 10);
    // The SFU may start low after the pause (its bandwidth estimate of B grows again) and climb.
    const t0 = Date.now();
    const v = await waitB('the high layer comes back after max_height 0', (v) => v.frameHeight >= 360, 30000);
    console.log(`after hidden: frames back at ${back.frameHeight}p, ≥ 360p after ${Date.now() - t0} ms`);
    heights.afterHidden = `${back.frameHeight} → ${v.frameHeight}`;
    done.add('hidden');
  });

  // The browser encodes at most 2 layers of a 360p camera and drops them from the top, so SD's
  // two layers go on the first two encodings: q 180p, h 360p, f off.
  it('a preset change mid-call re-maps the layers (HD → SD: q 180p, h 360p, f off) and back', async (t) => {
    if (!needs(t, 'large')) return;
    const layersOfA = () => A.page.evaluate(outboundLayers);
    const waitA = async (title, ok) => {
      const deadline = Date.now() + 15000;
      let pub;
      for (;;) {
        pub = await layersOfA();
        if (ok(pub)) return pub;
        if (Date.now() >= deadline) assert.fail(`${title}: ${JSON.stringify(pub)}`);
        await sleep(400);
      }
    };
    await A.page.evaluate(() => window.__roomcast.session.changeSettings({ preset: 'sd' }));
    const sd = await waitA('A sends SD layers', (p) => p.layers.h?.frameHeight === 360 && p.layers.q?.frameHeight === 180 && p.encodings[2]?.active === false);
    const before = await B.page.evaluate(inboundOf, 'A');
    const v = await waitB('B keeps decoding A after the preset change', (v) => v.framesDecoded > before.framesDecoded + 10 && v.frameHeight === 360, 30000);
    console.log(`SD: A sends ${JSON.stringify(sd.encodings)}; B gets ${v.frameWidth}x${v.frameHeight}`);
    heights.sdPreset = v.frameHeight;
    await A.page.evaluate(() => window.__roomcast.session.changeSettings({ preset: 'hd' }));
    await waitA('A sends HD layers again', (p) => p.layers.f?.frameHeight === 720 && p.encodings.every((e) => e.active));
    const back = await waitB('B gets 720p after going back to HD', (v) => v.frameHeight === 720, 30000);
    heights.hdAgain = back.frameHeight;
  });

  it('after a re-join, B tells the SFU its tile size again', async (t) => {
    if (!needs(t, 'large')) return;
    const before = await B.page.evaluate(inboundOf, 'A');
    const since = Date.now();
    await B.page.evaluate(() => window.__roomcast.session.dropConnectionForTest());
    const v = await waitB(
      'B decodes A again after re-joining',
      (v) => v.selfId !== before.selfId && v.phase === 'joined' && v.framesDecoded > 10 && v.sent[v.producerId] >= 720,
      30000,
    );
    const sentAgain = B.wsFrames.filter((f) => f.dir === 'out' && f.at >= since && f.text.includes('"layer_preference"')).map((f) => f.text);
    console.log(`after re-join: ${JSON.stringify(v)}; layer_preference sent: ${sentAgain.join(' ')}`);
    assert.ok(sentAgain.some((x) => JSON.parse(x).producer_id === v.producerId), 'layer_preference went out on the new connection');
    heights.afterRejoin = v.frameHeight;
  });
});
