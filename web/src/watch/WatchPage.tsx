import { useEffect, useRef, useState } from 'react';
import type Hls from 'hls.js';
import { navigate, roomPath } from '../routes';
import { useStore, Store } from '../store';
import { FullscreenIcon, SpeakerIcon } from '../room/icons';
import { WatchPlayer, playlistUrl, type WatchState, type WatchStatus } from './player';
import { formatSeconds } from './readout';

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

  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    const p = new WatchPlayer(video, playlistUrl(roomId));
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
      if (window.__watch?.video === video) delete window.__watch;
    };
  }, [roomId]);

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
        <span className={`live-pill ${live ? 'on' : 'off'}`} data-testid="watch-status" data-status={state.status}>
          {live ? 'LIVE' : state.status === 'connecting' ? 'CONNECTING' : 'OFFLINE'}
        </span>
      </header>
      <div className="player" ref={playerRef}>
        <video ref={videoRef} muted autoPlay playsInline aria-label="Broadcast" onDoubleClick={canFullscreen ? toggleFullscreen : undefined} />
        {!live && (
          <div className="player-overlay" role="status" aria-live="polite">
            {STATUS_TEXT[state.status]}
          </div>
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
