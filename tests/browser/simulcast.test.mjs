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

/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);
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

  before(() => fx.setup(), { timeout: TEST_TIMEOUT_MS });
  after(async () => {
    console.log(`simulcast frame heights per phase: ${JSON.stringify(heights)}`);
    await fx.teardown();
  });

  it('A publishes its 720p camera as three simulcast layers q/h/f', { timeout: TEST_TIMEOUT_MS }, async () => {
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
    // Heights ordered q < h < f and the full layer ≥ 360p, polled: the bandwidth estimate grows
    // and CPU adaptation ('balanced') may shrink all layers together for a while.
    const h = (p, rid) => p.layers[rid]?.frameHeight ?? 0;
    const ordered = (p) => h(p, 'q') > 0 && h(p, 'q') < h(p, 'h') && h(p, 'h') < h(p, 'f') && h(p, 'f') >= 360;
    const t0 = Date.now();
    for (;;) {
      pub = await A.page.evaluate(outboundLayers);
      if (ordered(pub) || Date.now() - t0 >= 30000) break;
      await sleep(500);
    }
    console.log(`A sends (after ${Date.now() - t0} ms): ${JSON.stringify(pub)}`);
    heights.sent = Object.fromEntries(Object.entries(pub.layers).map(([rid, l]) => [rid, `${l.frameWidth}x${l.frameHeight}`]));
    heights.sentLimitation = Object.fromEntries(Object.entries(pub.layers).map(([rid, l]) => [rid, l.limitation]));
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
    assert.ok(h(pub, 'q') > 0 && h(pub, 'q') < h(pub, 'h') && h(pub, 'h') < h(pub, 'f'), `layer heights q < h < f within 30 s: ${JSON.stringify(heights.sent)} (limitation ${JSON.stringify(heights.sentLimitation)})`);
    assert.ok(h(pub, 'f') >= 360, `the full layer is at least 360p within 30 s: ${JSON.stringify(heights.sent)} (limitation ${JSON.stringify(heights.sentLimitation)})`);
    done.add('publish');
  });

  it('a large tile receives a high layer (≥ 360p)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'publish')) return;
    // Polled together: the first frames may arrive before B has laid out the tile and told the
    // SFU its size (layer_preference goes out once the tile is rendered).
    const v = await waitB(
      'B asks for ≥ 720 for its large tile and receives A at ≥ 360p',
      (v) => v.framesDecoded > 0 && v.frameHeight >= 360 && v.tileVideoHeight > 360 && (v.sent[v.producerId] ?? 0) >= 720,
      30000,
    );
    console.log(`large tile: ${JSON.stringify(v)}`);
    heights.large = v.frameHeight;
    assert.ok(v.tileVideoHeight > 360, `the tile is large: ${v.tileVideoHeight}px`);
    assert.ok((v.sent[v.producerId] ?? 0) >= 720, `B asked for ≥ 720: ${JSON.stringify(v.sent)}`);
    assert.deepEqual(v.errors, [], 'the server took layer_preference');
    done.add('large');
  });

  it('a small tile gets the lowest layer (≤ 180p) and keeps decoding', { timeout: TEST_TIMEOUT_MS }, async (t) => {
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

  it('large again brings the high layer back', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'small')) return;
    await B.page.setViewportSize(LARGE);
    const { producerId } = await B.page.evaluate(inboundOf, 'A');
    await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, null), producerId);
    // After the 180p phase the SFU's bandwidth estimate of B climbs again: up to 30 s.
    const v = await waitB('B receives A at ≥ 360p again', (v) => v.frameHeight >= 360 && (v.sent[v.producerId] ?? 0) >= 720, 30000);
    console.log(`large again: ${JSON.stringify(v)}`);
    heights.largeAgain = v.frameHeight;
    done.add('large-again');
  });

  it('max_height 0 stops the video; a size brings it back', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'large-again')) return;
    const { producerId } = await B.page.evaluate(inboundOf, 'A');
    await B.page.evaluate((id) => window.__roomcast.setLayerPreference(id, 0), producerId);
    // Frames in flight (jitter buffer, the SFU's queue) still arrive for a moment: wait until the
    // count has not moved for 1 s (within 10 s), then measure a 3 s window.
    const tStop = Date.now();
    let a = await B.page.evaluate(inboundOf, 'A');
    let stillSince = Date.now();
    for (;;) {
      await sleep(250);
      const now = await B.page.evaluate(inboundOf, 'A');
      if (now.framesDecoded !== a.framesDecoded) stillSince = Date.now();
      a = now;
      if (Date.now() - stillSince >= 1000) break;
      if (Date.now() - tStop >= 10000) {
        console.error(await fx.diagnostics('max_height 0: frames keep coming'));
        assert.fail(`no frames while max_height is 0: B still decodes A 10 s after asking for 0 (${a.framesDecoded} frames, ${a.frameHeight}p)`);
      }
    }
    const stoppedMs = stillSince - tStop;
    await sleep(3000);
    const b = await B.page.evaluate(inboundOf, 'A');
    console.log(`hidden: frames stopped ≤ ${stoppedMs} ms after max_height 0; then ${a.framesDecoded} → ${b.framesDecoded} in 3 s`);
    heights.hiddenStoppedMs = stoppedMs;
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
  it('a preset change mid-call re-maps the layers (HD → SD: q and h on, f off) and back', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'large')) return;
    const layersOfA = () => A.page.evaluate(outboundLayers);
    const waitA = async (title, ok) => {
      const deadline = Date.now() + 30000;
      let pub;
      for (;;) {
        pub = await layersOfA();
        if (ok(pub)) return pub;
        if (Date.now() >= deadline) {
          console.error(await fx.diagnostics(`${title}: not true after 30000 ms`));
          assert.fail(`${title}: ${JSON.stringify(pub)}`);
        }
        await sleep(400);
      }
    };
    // Heights are compared with what A actually sends: Chromium's CPU-overuse adaptation
    // ('balanced') may scale every layer down on a busy machine.
    const sizes = (p) => `${Object.entries(p.layers).map(([rid, l]) => `${rid} ${l.frameWidth}x${l.frameHeight} (${l.limitation})`).join(', ')}`;
    const hBefore = (await layersOfA()).layers.h?.framesEncoded ?? 0;
    await A.page.evaluate(() => window.__roomcast.session.changeSettings({ preset: 'sd' }));
    const sd = await waitA(
      'A sends SD layers (f off, h above q)',
      (p) => p.encodings[2]?.active === false && (p.layers.h?.framesEncoded ?? 0) > hBefore + 10 && (p.layers.h?.frameHeight ?? 0) > (p.layers.q?.frameHeight ?? 0) && p.layers.q?.frameHeight > 0,
    );
    console.log(`SD: A sends ${sizes(sd)}; encodings ${JSON.stringify(sd.encodings)}`);
    /** Polls B's view of A together with what A sends, until `ok(v, pub)`. */
    const waitBA = async (title, ok, timeoutMs = 30000) => {
      const deadline = Date.now() + timeoutMs;
      let v;
      let pub;
      for (;;) {
        [v, pub] = await Promise.all([B.page.evaluate(inboundOf, 'A').catch((e) => ({ error: e.message })), layersOfA().catch((e) => ({ error: e.message }))]);
        if (v && !v.error && pub && !pub.error && ok(v, pub)) return { v, pub };
        if (Date.now() >= deadline) break;
        await sleep(300);
      }
      await fx.screenshots('-failed');
      console.error(await fx.diagnostics(`${title}: not true after ${timeoutMs} ms`));
      assert.fail(`${title}: B sees ${JSON.stringify(v)}; A sends ${JSON.stringify(pub)} (diagnostics above)`);
    };
    const before = await B.page.evaluate(inboundOf, 'A');
    const { v, pub: sdNow } = await waitBA(
      "B keeps decoding A after the preset change, at A's h layer",
      (v, p) => v.framesDecoded > before.framesDecoded + 10 && v.frameHeight > 0 && v.frameHeight === p.layers.h?.frameHeight,
    );
    console.log(`SD: B gets ${v.frameWidth}x${v.frameHeight}; A's h layer ${sdNow.layers.h.frameWidth}x${sdNow.layers.h.frameHeight} (${sdNow.layers.h.limitation})`);
    heights.sdPreset = v.frameHeight;
    heights.sdSent = sizes(sdNow);
    const fBefore = sdNow.layers.f?.framesEncoded ?? 0;
    await A.page.evaluate(() => window.__roomcast.session.changeSettings({ preset: 'hd' }));
    const hd = await waitA('A sends HD layers again (all on, f ≥ 360p)', (p) => p.encodings.length === 3 && p.encodings.every((e) => e.active) && (p.layers.f?.framesEncoded ?? 0) > fBefore && p.layers.f.frameHeight >= 360);
    console.log(`HD again: A sends ${sizes(hd)}`);
    const beforeHd = await B.page.evaluate(inboundOf, 'A');
    const { v: back, pub: hdNow } = await waitBA('B gets ≥ 360p after going back to HD', (v) => v.frameHeight >= 360 && v.framesDecoded > beforeHd.framesDecoded + 10);
    console.log(`HD again: B gets ${back.frameWidth}x${back.frameHeight}; A sends ${sizes(hdNow)}`);
    heights.hdAgain = back.frameHeight;
  });

  it('after a re-join, B tells the SFU its tile size again', { timeout: TEST_TIMEOUT_MS }, async (t) => {
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

  it('Low → HD mid-call: the camera is published again with three layers, and others get the high one', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'large')) return;
    const C = await fx.joinAs('C'); // the low preset: one encoding, no simulcast
    const poll = async (title, read, ok, timeoutMs = 30000) => {
      const deadline = Date.now() + timeoutMs;
      let v;
      for (;;) {
        v = await read().catch((e) => ({ error: e.message }));
        if (v && !v.error && ok(v)) return v;
        if (Date.now() >= deadline) break;
        await sleep(300);
      }
      await fx.screenshots('-failed');
      console.error(await fx.diagnostics(`${title}: not true after ${timeoutMs} ms`));
      assert.fail(`${title}: ${JSON.stringify(v)}`);
    };
    const ofC = () => B.page.evaluate(inboundOf, 'C');
    const sendsC = () => C.page.evaluate(outboundLayers);
    const low = await poll('B decodes C (low preset)', ofC, (v) => v.found && v.framesDecoded > 5);
    const lowSent = await sendsC();
    assert.equal(lowSent.encodings.length, 1, `low preset: one encoding, got ${JSON.stringify(lowSent.encodings)}`);
    await C.page.evaluate(() => window.__roomcast.session.changeSettings({ preset: 'hd' }));
    const hd = await poll(
      'C publishes its camera again as q/h/f',
      sendsC,
      (p) => p.encodings.length === 3 && p.encodings.every((e) => e.active) && (p.layers.f?.frameHeight ?? 0) >= 360 && (p.layers.q?.framesEncoded ?? 0) > 0,
    );
    const back = await poll(
      "B decodes C's new camera producer at ≥ 360p",
      ofC,
      (v) => v.producerId !== low.producerId && v.frameHeight >= 360 && v.framesDecoded > 10,
    );
    console.log(
      `Low → HD: C sent ${JSON.stringify(lowSent.encodings)}, now ${Object.entries(hd.layers).map(([rid, l]) => `${rid} ${l.frameWidth}x${l.frameHeight}`).join(', ')}; ` +
        `B gets ${back.frameWidth}x${back.frameHeight} from ${back.producerId} (was ${low.producerId} at ${low.frameWidth}x${low.frameHeight})`,
    );
    heights.lowToHd = back.frameHeight;
  });
});
