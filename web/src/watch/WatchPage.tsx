import { useEffect, useRef, useState } from 'react';
import type Hls from 'hls.js';
import { navigate, roomPath } from '../routes';
import { useStore, Store } from '../store';
import { FullscreenIcon, SpeakerIcon } from '../room/icons';
import { WatchPlayer, playlistUrl, type WatchState, type WatchStatus } from './player';
import { formatSeconds } from './readout';
import { ACCESS_TEXT, accessProblem, refreshDelayMs, viewersText, viewerTokenFromSearch, type AccessProblem } from './access';
import { fetchHlsUrl, fetchViewers, viewerId } from './watchApi';

declare global {
  interface Window {
    __watch?: { readonly hls: Hls | null; readonly video: HTMLVideoElement; readonly state: WatchState; readonly player: WatchPlayer };
  }
}

const STATUS_TEXT: Record<WatchStatus, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  buffering: 'Live · buffering…',
  offline: 'Offline: the broadcast has not started or has ended. This page will start playing when it goes live.',
  unsupported: 'This browser cannot play the broadcast (no HLS or Media Source Extensions support).',
};

/** Behind the live edge by more than this: offer "Go to live". */
const BEHIND_MS = 4000;
/** How often the viewer count is read. */
const VIEWERS_POLL_MS = 4000;
/** Retry after the server could not be reached for the stream's URL. */
const ACCESS_RETRY_MS = 2000;

interface Access {
  /** The stream's URL is known: the player may start. */
  ready: boolean;
  problem: AccessProblem | null;
}

/**
 * The stream's URL from `GET /api/rooms/{id}/hls-url` (with the link's viewer token): the
 * plain one for a public room; for a private room a signed one, fetched again before it
 * expires (kept in `src`, which the player reads on every request).
 */
function useStreamAccess(roomId: string, token: string | null, src: React.MutableRefObject<string>): Access {
  const [access, setAccess] = useState<Access>({ ready: false, problem: null });
  useEffect(() => {
    let stopped = false;
    let timer: number | null = null;
    let expiresAt: number | null = null;
    const later = (ms: number) => {
      timer = window.setTimeout(() => void get(), ms);
    };
    const get = async () => {
      timer = null;
      const r = await fetchHlsUrl(roomId, token);
      if (stopped) return;
      if (r.ok) {
        src.current = r.url.hls_url;
        setAccess({ ready: true, problem: null });
        expiresAt = r.url.private && r.url.expires_at ? r.url.expires_at : null;
        if (expiresAt !== null) later(refreshDelayMs(expiresAt, Date.now()));
        return;
      }
      const problem = accessProblem(r.status, token !== null);
      if (problem === 'unavailable') {
        // A blip while playing: keep playing on the current URL and try again.
        if (expiresAt === null) setAccess({ ready: false, problem });
        later(expiresAt === null ? ACCESS_RETRY_MS : refreshDelayMs(expiresAt, Date.now()));
        return;
      }
      console.warn('[watch] no access to the stream:', r.status, r.message);
      setAccess({ ready: false, problem });
    };
    setAccess({ ready: false, problem: null });
    void get();
    return () => {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
    };
  }, [roomId, token, src]);
  return access;
}

/** The broadcast's audience, polled; null until known. */
function useViewerCount(roomId: string): number | null {
  const [viewers, setViewers] = useState<number | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: number | null = null;
    const poll = async () => {
      const n = await fetchViewers(roomId);
      if (stopped) return;
      setViewers(n);
      timer = window.setTimeout(() => void poll(), VIEWERS_POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
    };
  }, [roomId]);
  return viewers;
}

const idle = new Store<WatchState>({
  status: 'connecting',
  muted: true,
  needsPlay: false,
  latency: null,
  delay: null,
  recoveries: 0,
  fatalErrors: 0,
  lastError: null,
});

function useFullscreen(el: React.RefObject<HTMLElement | null>): [boolean, () => void, boolean] {
  const [on, setOn] = useState(false);
  useEffect(() => {
    const update = () => setOn(document.fullscreenElement !== null && document.fullscreenElement === el.current);
    document.addEventListener('fullscreenchange', update);
    return () => document.removeEventListener('fullscreenchange', update);
  }, [el]);
  const supported = typeof document !== 'undefined' && document.fullscreenEnabled;
  const toggle = () => {
    if (document.fullscreenElement) void document.exitFullscreen().catch(() => undefined);
    else void el.current?.requestFullscreen().catch(() => undefined);
  };
  return [on, toggle, supported];
}

export function WatchPage({ roomId }: { roomId: string }) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const playerRef = useRef<HTMLDivElement>(null);
  const [player, setPlayer] = useState<WatchPlayer | null>(null);
  const state = useStore(player?.state ?? idle);
  const [fullscreen, toggleFullscreen, canFullscreen] = useFullscreen(playerRef);
  const [token] = useState(() => viewerTokenFromSearch(window.location.search));
  const src = useRef(playlistUrl(roomId));
  const access = useStreamAccess(roomId, token, src);
  const viewers = useViewerCount(roomId);

  useEffect(() => {
    const video = videoRef.current;
    if (!video || !access.ready) return;
    const p = new WatchPlayer(video, () => src.current, viewerId());
    window.__watch = {
      get hls() {
        return p.hls;
      },
      video,
      get state() {
        return p.state.get();
      },
      player: p,
    };
    setPlayer(p);
    p.start();
    return () => {
      p.stop();
      setPlayer(null);
      if (window.__watch?.video === video) delete window.__watch;
    };
  }, [roomId, access.ready]);

  const live = state.status === 'live' || state.status === 'buffering';

  // Keyboard: f = fullscreen, m = sound on/off (not while typing anywhere).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || (e.target as HTMLElement | null)?.closest('input, textarea, select')) return;
      if (e.key === 'f' && canFullscreen) toggleFullscreen();
      if (e.key === 'm' && live) player?.setMuted(!state.muted);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const behind = state.latency !== null && state.latency * 1000 > BEHIND_MS;
  const delayTitle =
    state.delay !== null ? `The picture is ${formatSeconds(state.delay)} behind real time (from the stream's program date time).` : undefined;

  return (
    <main className="page watch">
      <header className="room-header">
        <h1>
          Watching <code>{roomId}</code>
        </h1>
        <span className={`live-pill ${live ? 'on' : 'off'}`} data-testid="watch-status" data-status={access.problem ?? state.status}>
          {live ? 'LIVE' : access.problem === 'private' || access.problem === 'link_invalid' ? 'PRIVATE' : state.status === 'connecting' ? 'CONNECTING' : 'OFFLINE'}
        </span>
        {viewers !== null && (live || viewers > 0) && (
          <span className="muted viewer-count" data-testid="viewer-count" data-viewers={viewers}>
            {viewersText(viewers)}
          </span>
        )}
      </header>
      <div className="player" ref={playerRef}>
        <video ref={videoRef} muted autoPlay playsInline aria-label="Broadcast" onDoubleClick={canFullscreen ? toggleFullscreen : undefined} />
        {access.problem ? (
          <div className="player-overlay" role="status" aria-live="polite" data-testid="watch-access" data-problem={access.problem}>
            {ACCESS_TEXT[access.problem]}
          </div>
        ) : (
          !live && (
            <div className="player-overlay" role="status" aria-live="polite">
              {STATUS_TEXT[state.status]}
            </div>
          )
        )}
        {state.needsPlay && (
          <div className="player-overlay">
            <button type="button" className="primary big" onClick={() => player?.play()}>
              Play
            </button>
          </div>
        )}
        <div className="player-bar" role="toolbar" aria-label="Player controls">
          <button
            type="button"
            onClick={() => player?.setMuted(!state.muted)}
            disabled={!live}
            aria-pressed={!state.muted}
            aria-keyshortcuts="m"
          >
            <SpeakerIcon off={state.muted} /> {state.muted ? 'Unmute' : 'Mute'}
          </button>
          {live && behind && (
            <button type="button" onClick={() => player?.goLive()}>
              Go to live
            </button>
          )}
          <span className="spacer" />
          {live && state.latency !== null && (
            <span className="latency" data-testid="latency" title={delayTitle}>
              {formatSeconds(state.latency)} behind live
              {state.delay !== null && ` · ${formatSeconds(state.delay)} delay`}
            </span>
          )}
          {canFullscreen && (
            <button type="button" onClick={toggleFullscreen} aria-pressed={fullscreen} aria-keyshortcuts="f">
              <FullscreenIcon /> {fullscreen ? 'Exit full screen' : 'Full screen'}
            </button>
          )}
        </div>
      </div>
      <p className="sr-only" role="status" aria-live="polite">
        {live ? STATUS_TEXT[state.status] : ''}
      </p>
      <p className="muted watch-foot">
        Want to be on screen?{' '}
        <a
          href={roomPath(roomId)}
          onClick={(e) => {
            e.preventDefault();
            navigate(roomPath(roomId));
          }}
        >
          Join the room
        </a>
      </p>
    </main>
  );
}
