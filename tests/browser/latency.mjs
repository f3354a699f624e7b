// Latency probe for the Rust `latency-bench` (tests/src/bin/latency-bench.rs): opens the watch
// page in headless Chromium (hls.js, low-latency mode) and, on every requestVideoFrameCallback,
// draws one patch of the video into a canvas and reads its mean colour. Each time the colour
// changes it prints one JSON line on stdout:
//   {"event":"colour","wall":<Date.now() in the callback>,"display_wall":<wall clock of the
//    frame's expectedDisplayTime>,"rgb":[r,g,b],"media_time":s,"latency":s,"rate":x}
// plus {"event":"playing"} once frames come, {"event":"stats",...} every second (hls.js's own
// latency estimate, target latency, playback rate, buffer) and {"event":"error"|"log"}.
// It runs until stdin closes (the bench ends) or --seconds pass.
//
//   node latency.mjs --url http://127.0.0.1:PORT/watch/ROOM --patch X,Y,W,H [--seconds 600]
//
// Not a test (no *.test.mjs): `npm test` does not run it.
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './lib/browser.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const url = opt('url');
const patch = (opt('patch') ?? '0,0,32,32').split(',').map(Number);
const seconds = Number(opt('seconds', '900'));
if (!url) {
  console.error('usage: node latency.mjs --url URL --patch X,Y,W,H [--seconds N]');
  process.exit(2);
}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [...CHROMIUM_ARGS, '--autoplay-policy=no-user-gesture-required'],
});
let done = false;
const finish = async (code) => {
  if (done) return;
  done = true;
  await browser.close().catch(() => undefined);
  process.exit(code);
};
process.stdin.on('end', () => void finish(0));
process.stdin.on('close', () => void finish(0));
process.stdin.resume();
setTimeout(() => void finish(0), seconds * 1000).unref();

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => emit({ event: 'error', message: String(e?.stack ?? e) }));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') emit({ event: 'log', message: `[${m.type()}] ${m.text()}` });
  });
  await page.exposeFunction('__latencyReport', (ev) => emit(ev));
  await page.goto(url);
  await page.waitForFunction(() => window.__watch?.video, null, { timeout: 30000 });
  await page.evaluate(([px, py, pw, ph]) => {
    const video = window.__watch.video;
    video.muted = true;
    const canvas = document.createElement('canvas');
    canvas.width = 8;
    canvas.height = 8;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let last = null;
    let playing = false;
    const hlsInfo = () => {
      const hls = window.__watch?.hls;
      return {
        latency: hls && Number.isFinite(hls.latency) ? hls.latency : null,
        target_latency: hls && Number.isFinite(hls.targetLatency) ? hls.targetLatency : null,
        rate: video.playbackRate,
      };
    };
    const onFrame = (now, meta) => {
      const wall = Date.now();
      if (video.videoWidth > 0) {
        ctx.drawImage(video, px, py, pw, ph, 0, 0, 8, 8);
        const d = ctx.getImageData(0, 0, 8, 8).data;
        let r = 0;
        let g = 0;
        let b = 0;
        for (let i = 0; i < d.length; i += 4) {
          r += d[i];
          g += d[i + 1];
          b += d[i + 2];
        }
        const n = d.length / 4;
        const rgb = [Math.round(r / n), Math.round(g / n), Math.round(b / n)];
        if (!playing) {
          playing = true;
          window.__latencyReport({ event: 'playing', wall, width: video.videoWidth, height: video.videoHeight });
        }
        const moved = !last || rgb.some((v, i) => Math.abs(v - last[i]) > 40);
        if (moved) {
          last = rgb;
          const display = meta.expectedDisplayTime ?? now;
          window.__latencyReport({
            event: 'colour',
            wall,
            display_wall: wall + (display - now),
            rgb,
            media_time: meta.mediaTime,
            ...hlsInfo(),
          });
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    setInterval(() => {
      const b = video.buffered;
      window.__latencyReport({
        event: 'stats',
        wall: Date.now(),
        current_time: video.currentTime,
        buffered_end: b.length ? b.end(b.length - 1) : null,
        dropped: video.getVideoPlaybackQuality?.().droppedVideoFrames ?? null,
        status: window.__watch?.state?.status ?? null,
        ...hlsInfo(),
      });
    }, 1000);
  }, patch);
  emit({ event: 'ready' });
} catch (e) {
  emit({ event: 'error', message: String(e?.stack ?? e) });
  await finish(1);
}
