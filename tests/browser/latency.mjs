// Latency probe for the Rust `latency-bench` (tests/src/bin/latency-bench.rs): opens the watch
// page in headless Chromium (hls.js, low-latency mode) and, on every requestVideoFrameCallback,
// draws one patch of the video into a canvas and reads its mean colour. Each time the colour
// changes it prints one JSON line on stdout:
//   {"event":"colour","wall":<Date.now() in the callback>,"display_wall":<wall clock of the
//    frame's expectedDisplayTime>,"rgb":[r,g,b],"media_time":s,"latency":s,"rate":x}
// plus {"event":"playing"} once frames come, {"event":"stats",...} every second (hls.js's own
// latency estimate, target latency, playback rate, buffer, stalls since playing and their total
// time) and {"event":"error"|"log"}.
// It runs until stdin closes (the bench ends) or --seconds pass.
//
//   node latency.mjs --url http://127.0.0.1:PORT/watch/ROOM --patch X,Y,W,H [--seconds 600]
//       [--player hlsjs|shaka]
//
// `--player shaka`: instead of the watch page, a bare page with Shaka Player (npm
// `shaka-player`, low-latency mode) plays the same room's playlist: a second player we did not
// write. The page and the library are served by Playwright at the gateway's origin.
// Not a test (no *.test.mjs): `npm test` does not run it.
import { fileURLToPath } from 'node:url';
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
const player = opt('player', 'hlsjs');
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
  if (player === 'shaka') await openShaka(page, url);
  else await page.goto(url);
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
    // Stalls once playing: each `waiting` event, and the time until the next `playing`.
    let stalls = 0;
    let stalledMs = 0;
    let waitingSince = null;
    video.addEventListener('waiting', () => {
      if (!playing || waitingSince !== null) return;
      stalls += 1;
      waitingSince = performance.now();
    });
    video.addEventListener('playing', () => {
      if (waitingSince !== null) stalledMs += performance.now() - waitingSince;
      waitingSince = null;
    });
    const hlsInfo = () => {
      const hls = window.__watch?.hls;
      const shaka = window.__watch?.shaka;
      if (shaka) {
        // Shaka: the distance from the end of the seekable range (its live edge).
        const edge = shaka.seekRange?.().end;
        return { latency: Number.isFinite(edge) ? edge - video.currentTime : null, target_latency: null, rate: video.playbackRate };
      }
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
        stalls,
        stalled_ms: Math.round(stalledMs + (waitingSince === null ? 0 : performance.now() - waitingSince)),
        ...hlsInfo(),
      });
    }, 1000);
  }, patch);
  emit({ event: 'ready', player });
} catch (e) {
  emit({ event: 'error', message: String(e?.stack ?? e) });
  await finish(1);
}

/**
 * A page at the gateway's origin (so the playlist and parts are same-origin) with a video and
 * Shaka Player in low-latency mode playing the room of `watchUrl`; sets `window.__watch` as the
 * watch page does (`video`, and `shaka` for its live edge).
 */
async function openShaka(page, watchUrl) {
  const u = new URL(watchUrl);
  const room = decodeURIComponent(u.pathname.split('/').pop());
  const lib = fileURLToPath(new URL('./node_modules/shaka-player/dist/shaka-player.compiled.js', import.meta.url));
  await page.route(`${u.origin}/__shaka/player.js`, (r) => r.fulfill({ path: lib, contentType: 'text/javascript' }));
  await page.route(`${u.origin}/__shaka/`, (r) =>
    r.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline style="width:1280px;height:720px"></video>
<script src="/__shaka/player.js"></script>
<script>
  (async () => {
    shaka.polyfill.installAll();
    const video = document.getElementById('v');
    const player = new shaka.Player();
    await player.attach(video);
    player.configure({ streaming: { lowLatencyMode: true } });
    player.addEventListener('error', (e) => console.error('shaka error ' + e.detail?.code));
    await player.load('/hls/${encodeURIComponent(room)}/index.m3u8');
    window.__watch = { video, shaka: player };
    video.play().catch(() => undefined);
  })().catch((e) => console.error('shaka: ' + (e?.code ?? e)));
</script>`,
    }),
  );
  await page.goto(`${u.origin}/__shaka/`);
}
