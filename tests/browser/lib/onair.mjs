// What the audience sees, tile by tile: Chromium publishers each with a solid-colour camera
// (a canvas `captureStream()` put in place of the camera by an init script, so the real room
// page code runs: presets, simulcast, renegotiation, keyframes only when asked), and a reader
// that decodes the newest picture the gateway serves as LL-HLS and names the colour of every
// grid tile.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Publisher colours (RGB), far from each other and from the placeholder (0x2b2f3a). */
export const COLOURS = [
  { name: 'red', rgb: [220, 40, 40] },
  { name: 'green', rgb: [40, 200, 60] },
  { name: 'blue', rgb: [40, 70, 230] },
  { name: 'yellow', rgb: [235, 215, 40] },
  { name: 'magenta', rgb: [215, 50, 205] },
  { name: 'cyan', rgb: [40, 210, 215] },
];
/** The compositor's named placeholder and empty slot (compositor/src/pipeline.rs). */
export const PLACEHOLDER_RGB = [0x2b, 0x2f, 0x3a];
/** VP8/H.264 and two YUV round trips move a solid colour by a few levels; ours differ by > 150. */
const TOLERANCE = 60;

/**
 * An init script: `getUserMedia` asks the real (fake-device) microphone for audio and gets
 * video from a canvas painted `rgb` at the requested size and frame rate, with a small moving
 * square along the top edge so the encoder has motion to code (the tile centre stays solid).
 */
export function canvasCameraScript(rgb) {
  return `(() => {
    const md = navigator.mediaDevices;
    if (!md || md.__roomcastCanvas) return;
    md.__roomcastCanvas = true;
    const real = md.getUserMedia.bind(md);
    const num = (v, d) => (typeof v === 'number' ? v : v?.exact ?? v?.ideal ?? v?.max ?? d);
    md.getUserMedia = async (c = {}) => {
      const audio = c.audio ? await real({ audio: c.audio }) : null;
      const tracks = audio ? audio.getAudioTracks() : [];
      if (c.video) {
        const v = typeof c.video === 'object' ? c.video : {};
        const w = num(v.width, 640), h = num(v.height, 360), fps = num(v.frameRate, 30);
        const canvas = document.createElement('canvas');
        canvas.width = w; canvas.height = h;
        const g = canvas.getContext('2d');
        let x = 0;
        const paint = () => {
          g.fillStyle = 'rgb(${rgb.join(',')})';
          g.fillRect(0, 0, w, h);
          g.fillStyle = '#fff';
          g.fillRect(x, 0, Math.round(w / 16), Math.round(h / 16));
          x = (x + Math.round(w / 64)) % w;
        };
        paint();
        const stream = canvas.captureStream(fps);
        const track = stream.getVideoTracks()[0];
        const timer = setInterval(paint, Math.round(1000 / fps));
        const stop = track.stop.bind(track);
        track.stop = () => { clearInterval(timer); stop(); };
        tracks.push(track);
      }
      return new MediaStream(tracks);
    };
  })();`;
}

/** The compositor's grid (compositor/src/layout.rs): the slot rectangles for `n` participants. */
export function gridSlots(n, width = 1280, height = 720) {
  const count = Math.max(n, 1);
  let cols = 1;
  while (cols * cols < count) cols += 1;
  const rows = Math.ceil(count / cols);
  const gap = Math.max(Math.floor(width / 160), 2) & ~1;
  const availW = width - gap * (cols + 1);
  const availH = height - gap * (rows + 1);
  let tileW = Math.max(Math.min(Math.trunc(availW / cols), Math.trunc((Math.trunc(availH / rows) * 16) / 9)), 2) & ~1;
  const tileH = Math.max(Math.trunc((tileW * 9) / 16), 2) & ~1;
  const x0 = Math.trunc((width - (cols * tileW + (cols - 1) * gap)) / 2) & ~1;
  const y0 = Math.trunc((height - (rows * tileH + (rows - 1) * gap)) / 2) & ~1;
  const slots = [];
  for (let r = 0; r < rows; r += 1) for (let c = 0; c < cols; c += 1) slots.push({ x: x0 + c * (tileW + gap), y: y0 + r * (tileH + gap), w: tileW, h: tileH });
  return slots.slice(0, n);
}

function parsePlaylist(text, base) {
  const lines = text.split('\n').map((l) => l.trim());
  const map = lines.find((l) => l.startsWith('#EXT-X-MAP:'));
  const uri = (l) => /URI="([^"]+)"/.exec(l)?.[1];
  // Discontinuities so far (one per compositor restart): the sequence plus the tags listed;
  // each part knows how many came before it.
  const discSeq = Number(lines.find((l) => l.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:'))?.split(':')[1] ?? 0);
  let disc = discSeq;
  const parts = [];
  for (const l of lines) {
    if (l === '#EXT-X-DISCONTINUITY') disc += 1;
    if (l.startsWith('#EXT-X-PART:')) parts.push({ url: new URL(uri(l), base).href, independent: /INDEPENDENT=YES/.test(l), disc });
  }
  const hint = lines.find((l) => l.startsWith('#EXT-X-PRELOAD-HINT:'));
  return { init: map ? new URL(uri(map), base).href : null, parts, ended: lines.includes('#EXT-X-ENDLIST'), disc, next: hint ? uri(hint) : null };
}

async function bytes(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url} → ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Decodes fMP4 bytes with ffmpeg to `w`x`h` RGB frames; returns the last one. */
function lastFrame(mp4, w, h) {
  const dir = mkdtempSync(join(tmpdir(), 'roomcast-onair-'));
  const file = join(dir, 'part.mp4');
  writeFileSync(file, mp4);
  return new Promise((ok, fail) => {
    // The cheapest decode that still gives each tile's colour (one thread, no deblocking,
    // nearest-pixel scaling): these looks run beside the browsers on the same two cores.
    const ff = spawn(
      'ffmpeg',
      ['-v', 'error', '-threads', '1', '-skip_loop_filter', 'all', '-i', file, '-an', '-vf', `scale=${w}:${h}:flags=neighbor`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = [];
    let err = '';
    ff.stdout.on('data', (d) => out.push(d));
    ff.stderr.on('data', (d) => (err += d));
    ff.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      const all = Buffer.concat(out);
      const size = w * h * 3;
      if (all.length < size) return fail(new Error(`ffmpeg (exit ${code}) decoded no frame: ${err.slice(0, 300)}`));
      ok(all.subarray(all.length - size));
    });
  });
}

/** Average colour of the middle fifth of a rectangle (in 1280x720 coordinates) of a `w`-wide frame. */
function sample(frame, w, scale, rect) {
  const cx = (rect.x + rect.w / 2) / scale;
  const cy = (rect.y + rect.h / 2) / scale;
  const rx = Math.max(1, Math.floor(rect.w / scale / 10));
  const ry = Math.max(1, Math.floor(rect.h / scale / 10));
  const sum = [0, 0, 0];
  let n = 0;
  for (let y = Math.round(cy - ry); y <= Math.round(cy + ry); y += 1) {
    for (let x = Math.round(cx - rx); x <= Math.round(cx + rx); x += 1) {
      const i = (y * w + x) * 3;
      for (let k = 0; k < 3; k += 1) sum[k] += frame[i + k];
      n += 1;
    }
  }
  return sum.map((s) => Math.round(s / n));
}

export function nameOf(rgb) {
  const near = (c) => c.every((v, i) => Math.abs(v - rgb[i]) <= TOLERANCE);
  const hit = COLOURS.find((c) => near(c.rgb));
  if (hit) return hit.name;
  if (near(PLACEHOLDER_RGB)) return 'placeholder';
  return `other(${rgb.join(',')})`;
}

/**
 * When each part was first listed in the playlist, as an LL-HLS player learns it: a blocking
 * playlist reload (`_HLS_msn`/`_HLS_part`) for the part after the newest one, answered as soon
 * as that part is published. A look at the picture is much slower than a part (an ffmpeg
 * decode beside the browsers on two cores: 0.4–2.7 s), so it tells what is served, and these
 * times tell when it was first served. Stop with `stop()`.
 */
export function partArrivals(base, roomId) {
  const playlistUrl = `${base}/hls/${encodeURIComponent(roomId)}/index.m3u8`;
  const firstListed = new Map();
  let running = true;
  const loop = (async () => {
    let next = null;
    while (running) {
      const m = next && /part-(\d+)\.(\d+)\.m4s/.exec(next);
      const url = m ? `${playlistUrl}?_HLS_msn=${m[1]}&_HLS_part=${m[2]}` : playlistUrl;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
        const at = Date.now();
        if (!res.ok) throw new Error(`playlist → ${res.status}`);
        const pl = parsePlaylist(await res.text(), playlistUrl);
        for (const p of pl.parts) if (!firstListed.has(p.url)) firstListed.set(p.url, at);
        if (pl.ended) break;
        next = pl.next;
      } catch {
        next = null;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  return {
    at: (url) => firstListed.get(url),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** The tiles of the last picture of `init` + `parts`. */
async function tilesOf(init, parts, n) {
  const body = Buffer.concat([await bytes(init), ...(await Promise.all(parts.map((p) => bytes(p.url))))]);
  const W = 256;
  const H = 144;
  const frame = await lastFrame(body, W, H);
  return gridSlots(n).map((slot) => nameOf(sample(frame, W, 1280 / W, slot)));
}

/**
 * The newest picture the gateway serves for `roomId` (from the last independent part to the
 * newest part), as the colour name of each of the `n` grid tiles, in slot order; with the
 * playlist it came from (`pl`).
 * @returns {Promise<{ at: number, tiles: string[], parts: number, ended: boolean, disc: number, pl?: object }>}
 */
export async function servedTiles(base, roomId, n) {
  const playlistUrl = `${base}/hls/${encodeURIComponent(roomId)}/index.m3u8`;
  const res = await fetch(playlistUrl, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`playlist → ${res.status}`);
  const at = Date.now();
  const pl = parsePlaylist(await res.text(), playlistUrl);
  let start = -1;
  pl.parts.forEach((p, i) => {
    if (p.independent) start = i;
  });
  if (!pl.init || start < 0) return { at, tiles: [], parts: 0, ended: pl.ended, disc: pl.disc };
  const chosen = pl.parts.slice(start);
  const tiles = await tilesOf(pl.init, chosen, n);
  return { at, tiles, parts: chosen.length, ended: pl.ended, disc: pl.disc, pl };
}

/**
 * The first part of `pl` whose picture shows `expected`, among the parts of discontinuity
 * `minDisc` or later listed after `after` (a part URL; when it is not listed, all of them) up to
 * the newest, which does: a binary search, each look decoding from that part's last independent
 * part. Assumes that once shown, it stays.
 */
async function firstPartShowing(pl, n, expected, after, minDisc) {
  let lo = Math.max(pl.parts.findIndex((p) => p.url === after) + 1, pl.parts.findIndex((p) => p.disc >= minDisc), 0);
  let hi = pl.parts.length - 1;
  const shows = async (k) => {
    let start = k;
    while (start > 0 && !pl.parts[start].independent && pl.parts[start - 1].disc === pl.parts[k].disc) start -= 1;
    if (!pl.parts[start].independent) return false;
    return tilesMatch(await tilesOf(pl.init, pl.parts.slice(start, k + 1), n), expected);
  };
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await shows(mid)) hi = mid;
    else lo = mid + 1;
  }
  return pl.parts[hi];
}

/** Do the served tiles show exactly these colour names (any order)? */
export function tilesMatch(tiles, expected) {
  if (tiles.length !== expected.length) return false;
  const a = [...tiles].sort();
  const b = [...expected].sort();
  return a.every((t, i) => t === b[i]);
}

/**
 * Polls the served picture until its tiles show `expected` (colour names and 'placeholder',
 * any order); returns when that was first seen and the history of what was seen before.
 * `at`: when the first part showing it was first listed in the playlist (what a player
 * following the live edge could have had; see `partArrivals`), or, when that is not known,
 * the look that saw it. `seenAt`: the look that saw it (later by up to one look, `pollMs`).
 */
export async function waitTiles(base, roomId, expected, { timeoutMs = 30000, intervalMs = 250, minDisc = 0 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const seen = [];
  const started = Date.now();
  const arrivals = partArrivals(base, roomId);
  let polls = 0;
  let lastNewest = null;
  try {
    for (;;) {
      polls += 1;
      let got;
      try {
        got = await servedTiles(base, roomId, expected.length);
      } catch (e) {
        got = { at: Date.now(), tiles: [], error: String(e.message ?? e) };
      }
      const last = seen[seen.length - 1];
      const key = JSON.stringify(got.tiles) + (got.error ?? '');
      if (!last || last.key !== key) seen.push({ key, at: got.at, tiles: got.tiles, error: got.error });
      // `minDisc`: only a picture from after that many discontinuities (a restarted compositor's).
      // `pollMs`: the mean time between two looks at the served picture (how coarse `seenAt` is).
      if ((got.disc ?? 0) >= minDisc && tilesMatch(got.tiles, expected)) {
        // The earliest part that shows it, among those listed since the previous look (a part
        // of an earlier discontinuity never counts).
        let at = got.at;
        try {
          const first = await firstPartShowing(got.pl, expected.length, expected, lastNewest, minDisc);
          at = Math.min(arrivals.at(first.url) ?? got.at, got.at);
        } catch {
          // the look's time stands
        }
        return { at, seenAt: got.at, seen, disc: got.disc, pollMs: Math.round((Date.now() - started) / polls) };
      }
      lastNewest = got.pl?.parts.at(-1)?.url ?? lastNewest;
      if (Date.now() > deadline) {
        const err = new Error(`the served picture never showed ${JSON.stringify(expected)} within ${timeoutMs} ms; seen: ${seen.map((s) => `${new Date(s.at).toISOString().slice(11, 23)} ${s.error ?? JSON.stringify(s.tiles)}`).join(' | ')}`);
        err.seen = seen;
        throw err;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    await arrivals.stop();
  }
}

/** p50/p95/max of a list of numbers. */
export function summary(values) {
  const v = [...values].sort((a, b) => a - b);
  const q = (p) => v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)];
  return v.length ? { n: v.length, p50: q(0.5), p95: q(0.95), max: v[v.length - 1] } : { n: 0 };
}
