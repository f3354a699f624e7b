// Debian's Chromium through playwright-core (never `playwright install`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// As root, Chromium would raise its own threads' priority above the gateway's (see
// chromium-unprivileged.sh); it runs without that privilege, as in a user's session.
const UNPRIVILEGED = fileURLToPath(new URL('./chromium-unprivileged.sh', import.meta.url));
const asRoot = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? (asRoot ? UNPRIVILEGED : '/usr/bin/chromium');

// --allow-loopback-in-peer-connection: without it Chromium gathers no ICE candidates on 127.0.0.1.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/**
 * One browser process; Playwright gives it a fresh temporary profile (--user-data-dir).
 * `extraArgs` replace same-named switches of CHROMIUM_ARGS (e.g.
 * `--use-fake-device-for-media-stream=device-count=2` for two fake cameras).
 */
export function launchChromium(extraArgs = []) {
  const names = new Set(extraArgs.map((a) => a.split('=')[0]));
  const args = [...CHROMIUM_ARGS.filter((a) => !names.has(a.split('=')[0])), ...extraArgs];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * A page in its own context, with its console and errors kept for diagnostics.
 * @param {import('playwright-core').Browser} browser
 * @param {string} label
 */
export async function openPage(browser, label, { viewport = { width: 1100, height: 720 } } = {}) {
  const context = await browser.newContext({
    viewport,
    permissions: ['camera', 'microphone'],
  });
  const page = await context.newPage();
  const consoleLines = [];
  const push = (line) => {
    consoleLines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (consoleLines.length > 400) consoleLines.splice(0, consoleLines.length - 400);
  };
  page.on('console', (m) => push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => push(`[pageerror] ${e.stack ?? e}`));
  page.on('requestfailed', (r) => push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400) push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  // Every signaling frame, in full (the page's own log truncates long SDPs).
  const wsFrames = [];
  page.on('websocket', (ws) => {
    const keep = (dir) => (f) => {
      wsFrames.push({ at: Date.now(), dir, text: typeof f.payload === 'string' ? f.payload : `(binary ${f.payload.length} bytes)` });
      if (wsFrames.length > 300) wsFrames.splice(0, wsFrames.length - 300);
    };
    ws.on('framereceived', keep('in'));
    ws.on('framesent', keep('out'));
    ws.on('close', () => wsFrames.push({ at: Date.now(), dir: 'info', text: 'socket closed' }));
  });
  return { label, context, page, consoleLines, wsFrames };
}
