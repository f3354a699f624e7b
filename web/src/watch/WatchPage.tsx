import { useEffect, useRef, useState } from 'react';
import type Hls from 'hls.js';
import { navigate, roomPath } from '../routes';
import { useStore, Store } from '../store';
import { WatchPlayer, playlistUrl, type WatchState, type WatchStatus } from './player';

declare global {
  interface Window {
    __watch?: { readonly hls: Hls | null; readonly video: HTMLVideoElement; readonly state: WatchState };
  }
}

const STATUS_TEXT: Record<WatchStatus, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  buffering: 'Live · buffering…',
  offline: 'Offline: the broadcast has not started or has ended. This page will start playing when it goes live.',
  unsupported: 'This browser cannot play the broadcast (no HLS or Media Source Extensions support).',
};

const idle = new Store<WatchState>({
  status: 'connecting',
  muted: true,
  needsPlay: false,
  latency: null,
  recoveries: 0,
  fatalErrors: 0,
  lastError: null,
});

export function WatchPage({ roomId }: { roomId: string }) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const [player, setPlayer] = useState<WatchPlayer | null>(null);
  const state = useStore(player?.state ?? idle);

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
    };
    setPlayer(p);
    p.start();
    return () => {
      p.stop();
      if (window.__watch?.video === video) delete window.__watch;
    };
  }, [roomId]);

  const live = state.status === 'live' || state.status === 'buffering';
  return (
    <main className="page watch">
      <header className="room-header">
        <h1>
          Watching <code>{roomId}</code>
        </h1>
        <span className={`live-pill ${live ? 'on' : 'off'}`} aria-hidden="true">
          {live ? 'LIVE' : 'OFFLINE'}
        </span>
      </header>
      <div className="player">
        <video ref={videoRef} muted autoPlay playsInline aria-label="Broadcast" />
        {!live && (
          <div className="player-overlay" role="status" aria-live="polite">
            {STATUS_TEXT[state.status]}
          </div>
        )}
      </div>
      <p className="sr-only" role="status" aria-live="polite">
        {live ? STATUS_TEXT[state.status] : ''}
      </p>
      <div className="controls" role="toolbar" aria-label="Player controls">
        {state.needsPlay && (
          <button type="button" className="primary" onClick={() => player?.play()}>
            Play
          </button>
        )}
        <button type="button" className={state.muted ? 'primary' : undefined} onClick={() => player?.setMuted(!state.muted)} disabled={!live}>
          {state.muted ? 'Unmute' : 'Mute'}
        </button>
        <button type="button" onClick={() => player?.goLive()} disabled={!live}>
          Go to live
        </button>
        {state.latency !== null && <span className="muted">{state.latency.toFixed(1)} s behind live</span>}
      </div>
      <p className="muted">
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
