// Repeats on-air runs and prints the distributions the issue asks for:
//   go-live → every tile shows its publisher, and late join → its tile (p50, p95, max),
// for each (publishers, preset), plus how many runs had a tile that never showed.
//   node --experimental-websocket onair-bench.mjs [runs=20] [publishers=3,5] [presets=hd,low]
// The gateway binary and web app as for the tests (README). Each run uses a fresh room and
// fresh browser contexts in one gateway and one Chromium.
import { launchChromium } from './lib/browser.mjs';
import { startGateway } from './lib/gateway.mjs';
import { summary } from './lib/onair.mjs';
import { onAirRun } from './lib/onair-scenario.mjs';

const runs = Number(process.argv[2] ?? 20);
const counts = (process.argv[3] ?? '3,5').split(',').map(Number);
const presets = (process.argv[4] ?? 'hd,low').split(',');
const timeoutMs = Number(process.env.ROOMCAST_ONAIR_STEP_TIMEOUT_MS ?? 30000);

const gw = await startGateway({ name: 'onair-bench' });
const browser = await launchChromium();
const table = [];
try {
  for (const n of counts) {
    for (const preset of presets) {
      const goLive = [];
      const late = [];
      const goLiveSeen = [];
      const lateSeen = [];
      let missing = 0;
      for (let i = 0; i < runs; i += 1) {
        try {
          const r = await onAirRun({ browser, gw, publishers: n, preset, lateJoin: true, timeoutMs });
          goLive.push(r.goLiveMs);
          late.push(r.lateJoinMs);
          goLiveSeen.push(r.goLiveSeenMs);
          lateSeen.push(r.lateJoinSeenMs);
          console.log(`${n} ${preset} run ${i + 1}/${runs}: go-live ${r.goLiveMs} ms (seen ${r.goLiveSeenMs}), late join ${r.lateJoinMs} ms (seen ${r.lateJoinSeenMs})`);
        } catch (e) {
          missing += 1;
          console.log(`${n} ${preset} run ${i + 1}/${runs}: FAILED ${String(e.message).split('\n')[0].slice(0, 600)}`);
        }
      }
      table.push({ publishers: n, preset, goLive: summary(goLive), lateJoin: summary(late), goLiveSeen: summary(goLiveSeen), lateSeen: summary(lateSeen), failedRuns: missing });
    }
  }
} finally {
  await browser.close().catch(() => undefined);
  await gw.stop();
}
// Times until the first part showing it was listed in the playlist (what a player at the live
// edge could have had); in brackets, until one of the test's looks at the picture saw it
// (later by up to one look: an ffmpeg decode on the loaded host).
console.log('\n| publishers | preset | go-live → all tiles p50 / p95 / max (ms) | late join → its tile p50 / p95 / max (ms) | runs | runs with a missing tile |');
console.log('|---|---|---|---|---|---|');
for (const r of table) {
  const f = (s) => (s.n ? `${s.p50} / ${s.p95} / ${s.max}` : '-');
  console.log(`| ${r.publishers} | ${r.preset} | ${f(r.goLive)} (seen ${f(r.goLiveSeen)}) | ${f(r.lateJoin)} (seen ${f(r.lateSeen)}) | ${r.goLive.n + r.failedRuns} | ${r.failedRuns} |`);
}
