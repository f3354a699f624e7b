// Starts a real `roomcast serve` on a free loopback port and stops it (by PID) afterwards.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, createWriteStream, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..', '..');
export const OUT_DIR = resolve(here, '..', 'out');
export const DEFAULT_BIN = '/var/tmp/roomcast-target/debug/roomcast';

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `port` and `dataDir` let a test start a gateway again where the last one was (a restart, as in
 * a deploy): stop that one with `stop({ keepData: true })`.
 * @param {{ bin?: string, webDir?: string, extraArgs?: string[], name?: string, port?: number, dataDir?: string }} [opts]
 * @returns {Promise<{ url: string, port: number, pid: number, dataDir: string, logTail: (n?: number) => string, stop: (o?: { keepData?: boolean }) => Promise<void> }>}
 */
export async function startGateway(opts = {}) {
  const bin = opts.bin ?? process.env.ROOMCAST_BIN ?? DEFAULT_BIN;
  const webDir = opts.webDir ?? process.env.ROOMCAST_WEB_DIR ?? join(REPO, 'web', 'dist');
  if (!existsSync(bin)) {
    throw new Error(`gateway binary not found at ${bin}: build it (cargo build -p roomcast) or set ROOMCAST_BIN`);
  }
  if (!existsSync(join(webDir, 'index.html'))) {
    throw new Error(`${webDir}/index.html is missing: run "npm ci && npm run build" in web/ first`);
  }
  mkdirSync(OUT_DIR, { recursive: true });
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'roomcast-browser-'));
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--udp-port', '0',
    '--data-dir', dataDir,
    '--web-dir', webDir,
    ...(opts.extraArgs ?? []),
  ];
  const logPath = join(OUT_DIR, `gateway-${opts.name ?? 'test'}.log`);
  const logFile = createWriteStream(logPath);
  const lines = [];
  const partial = { stdout: '', stderr: '' };
  const keep = (stream) => (chunk) => {
    logFile.write(chunk);
    const parts = (partial[stream] + chunk.toString()).split('\n');
    partial[stream] = parts.pop() ?? '';
    for (const l of parts) if (l) lines.push(l);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  // Its own session, as a service manager starts it (systemd: its own cgroup), so the priority
  // it gives its media work (`--nice`, gateway/src/priority.rs) counts against the browsers'
  // session too, not only within the test runner's.
  const child = spawn(bin, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', NO_COLOR: '1' },
  });
  child.stdout.on('data', keep('stdout'));
  child.stderr.on('data', keep('stderr'));
  let exited = null;
  const exitPromise = new Promise((r) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      r(exited);
    }),
  );
  const logTail = (n = 60) => [...lines, partial.stdout, partial.stderr].filter(Boolean).slice(-n).join('\n');

  const stop = async ({ keepData = false } = {}) => {
    if (!exited && child.pid) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const t = setTimeout(() => {
        if (!exited && child.pid) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }, 5000);
      await exitPromise;
      clearTimeout(t);
    }
    logFile.end();
    if (!keepData) rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + Number(process.env.ROOMCAST_START_TIMEOUT_MS ?? 30000);
  let lastErr = '';
  while (Date.now() < deadline) {
    if (exited) {
      await stop();
      throw new Error(
        `gateway exited during start-up (code ${exited.code}, signal ${exited.signal})\n` +
          `command: ${bin} ${args.join(' ')}\n--- gateway log ---\n${logTail(80)}`,
      );
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return { url, port, pid: child.pid, dataDir, logTail, logPath, stop };
      lastErr = `HTTP ${res.status}`;
    } catch (e) {
      lastErr = String(e?.cause?.code ?? e);
    }
    await sleep(200);
  }
  await stop();
  throw new Error(`gateway did not answer /healthz with 200 in time (last: ${lastErr})\n--- gateway log ---\n${logTail(80)}`);
}

/** POST/GET JSON against the gateway; throws with the body on a non-2xx status. */
export async function api(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A JSON call with an optional bearer token; never throws on a status: `{ status, body }`. */
export async function apiCall(base, method, path, { token, body } = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/**
 * Fault injection (a gateway with `--fault-injection`): drops every UDP datagram to and from
 * that participant's PeerConnections for `ms` (a later call overwrites it: `ms` 1 ends it).
 * Signaling is not touched. Returns when it took effect (`Date.now()`).
 */
export async function blackhole(base, room, participantId, ms) {
  const { status, body } = await apiCall(base, 'POST', '/api/ops/faults/blackhole', { body: { room, participant_id: participantId, ms } });
  if (status !== 204) {
    throw new Error(`POST /api/ops/faults/blackhole → ${status} ${JSON.stringify(body)} (does this gateway have --fault-injection / ROOMCAST_FAULT_INJECTION?)`);
  }
  return Date.now();
}
