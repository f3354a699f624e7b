// Issue 11: what the audience sees. Chromium publishers with solid-colour cameras (the real
// room page, keyframes only when asked, simulcast with the HD preset); the served LL-HLS is
// decoded and every grid tile must show its publisher's colour: after go-live, after a late
// join, after a leave, after the compositor is killed (and restarted by the gateway), after a
// publisher's ICE restart (its media path cut by the gateway's fault injection), and a
// placeholder while a camera is off (its colour again when it is on).
// `onair-bench.mjs` repeats these runs and prints the distributions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchChromium } from './lib/browser.mjs';
import { startGateway } from './lib/gateway.mjs';
import { onAirRun } from './lib/onair-scenario.mjs';

const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);
/** Generous per step (a loaded 2-core CI machine); the bench reports the real distribution. */
const STEP_TIMEOUT_MS = Number(process.env.ROOMCAST_ONAIR_STEP_TIMEOUT_MS ?? 15000);

describe('on air: every tile shows its publisher (Chromium publishers, decoded HLS)', () => {
  let gw;
  let browser;
  before(async () => {
    gw = await startGateway({ name: 'onair', extraArgs: ['--fault-injection'] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await gw?.stop();
  });

  it('HD (simulcast), 3 publishers: go-live, late join, leave, compositor restart, ICE restart, camera off/on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await onAirRun({ browser, gw, publishers: 3, preset: 'hd', lateJoin: true, leave: true, compositorRestart: true, iceRestart: true, camera: true, timeoutMs: STEP_TIMEOUT_MS, log: console.log });
    assert.ok(r.goLiveMs <= STEP_TIMEOUT_MS && r.iceRestartMs <= STEP_TIMEOUT_MS && r.cameraOnMs <= STEP_TIMEOUT_MS, JSON.stringify(r));
  });

  it('Low (one encoding), 3 publishers: go-live and late join', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await onAirRun({ browser, gw, publishers: 3, preset: 'low', lateJoin: true, timeoutMs: STEP_TIMEOUT_MS, log: console.log });
    assert.ok(r.lateJoinMs <= STEP_TIMEOUT_MS, JSON.stringify(r));
  });
});
