import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { navigate, roomPath, watchPath } from '../routes';
import { useStore } from '../store';
import { cleanName, guestName, parseRoomParams, rememberName, rememberedName } from './params';
import { RoomSession, type RoomDebugHandle } from './session';
import { remoteTiles, type RoomState } from './state';
import { VideoTile } from './VideoTile';

declare global {
  interface Window {
    __roomcast?: RoomDebugHandle;
  }
}

export function RoomPage({ roomId, search }: { roomId: string; search: string }) {
  const params = parseRoomParams(search);
  const [name, setName] = useState(() => params.name ?? rememberedName() ?? guestName());
  const [session, setSession] = useState<RoomSession | null>(null);
  const autojoined = useRef(false);

  const join = useCallback(
    (displayName: string) => {
      const clean = cleanName(displayName) || guestName();
      rememberName(clean);
      const s = new RoomSession(roomId);
      window.__roomcast = s.debugHandle();
      setSession(s); // the effect below leaves the previous session
      void s.join(clean);
    },
    [roomId],
  );

  useEffect(() => {
    if (params.autojoin && !autojoined.current) {
      autojoined.current = true;
      join(name);
    }
    // Only on first render: autojoin is a page-load decision.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // Leave when the page goes away or the route changes.
  useEffect(() => {
    if (!session) return;
    const onHide = () => session.leave();
    window.addEventListener('pagehide', onHide);
    return () => {
      window.removeEventListener('pagehide', onHide);
      session.leave();
    };
  }, [session]);

  if (!session) {
    return <JoinForm roomId={roomId} name={name} setName={setName} onJoin={() => join(name)} />;
  }
  return <RoomView session={session} onRejoin={() => join(name)} />;
}

function JoinForm(props: { roomId: string; name: string; setName: (n: string) => void; onJoin: () => void }) {
  const { roomId, name, setName, onJoin } = props;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onJoin();
  };
  return (
    <main className="page narrow">
      <h1>Join room</h1>
      <p className="muted">
        Room <code>{roomId}</code>
      </p>
      <form onSubmit={submit} className="card stack">
        <label htmlFor="display-name">Your name</label>
        <input
          id="display-name"
          name="name"
          value={name}
          maxLength={64}
          autoComplete="nickname"
          autoFocus
          required
          onChange={(e) => setName(e.target.value)}
        />
        <p className="hint">Your browser will ask to use your camera and microphone.</p>
        <button type="submit" className="primary">
          Join
        </button>
      </form>
      <p>
        <a href={watchPath(roomId)} onClick={linkTo(watchPath(roomId))}>
          Watch the broadcast instead
        </a>
      </p>
    </main>
  );
}

function linkTo(path: string) {
  return (e: React.MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(path);
  };
}

const PHASE_TEXT: Record<RoomState['phase'], string> = {
  idle: 'Not joined',
  joining: 'Joining…',
  joined: 'In the room',
  disconnected: 'Disconnected',
  left: 'You left the room',
  failed: 'Could not join',
};

function phaseText(state: RoomState): string {
  if (state.phase === 'failed' && state.wasJoined) return 'You are no longer in the room';
  return PHASE_TEXT[state.phase];
}

function mediaBadges(state: RoomState): string[] {
  const b: string[] = [];
  if (state.mic === 'off') b.push('mic off');
  if (state.mic === 'unavailable') b.push('no mic');
  if (state.camera === 'off') b.push('camera off');
  return b;
}

function RoomView({ session, onRejoin }: { session: RoomSession; onRejoin: () => void }) {
  const state = useStore(session.state);
  const local = useStore(session.localStream);
  const remote = useStore(session.remoteStreams);
  const [audioBlocked, setAudioBlocked] = useState(false);
  const tiles = remoteTiles(state);
  const active = state.phase === 'joining' || state.phase === 'joined';
  const roomUrl = `${window.location.origin}${roomPath(state.roomId)}`;

  return (
    <main className="page room">
      <header className="room-header">
        <div>
          <h1>
            Room <code>{state.roomId}</code>
          </h1>
          <p className="muted" role="status" aria-live="polite">
            {phaseText(state)}
            {state.phase === 'joined' && ` · ${tiles.length + 1} in the room`}
            {state.phase === 'joined' && state.publishPcState !== 'none' && ` · sending: ${state.publishPcState}`}
          </p>
        </div>
        <nav className="row">
          <CopyButton text={roomUrl} label="Copy invite link" />
          <a className="button" href={watchPath(state.roomId)} target="_blank" rel="noreferrer">
            Open watch page
          </a>
        </nav>
      </header>

      <Notices session={session} state={state} />

      {audioBlocked && (
        <div className="banner" role="alert">
          Your browser blocked sound.{' '}
          <button type="button" className="primary" onClick={() => setAudioBlocked(false)}>
            Turn sound on
          </button>
        </div>
      )}

      {!active && (
        <div className="card stack" role="alert">
          <strong>{phaseText(state)}</strong>
          {state.endReason && <span>{state.endReason}</span>}
          <div className="row">
            <button type="button" className="primary" onClick={onRejoin}>
              {state.phase === 'left' ? 'Join again' : 'Rejoin'}
            </button>
            <button type="button" onClick={() => navigate('/')}>
              Back to lobby
            </button>
          </div>
        </div>
      )}

      {active && (
        <>
          <section className="grid" aria-label="Participants">
            <VideoTile
              stream={local}
              name={state.selfName}
              suffix="(you)"
              muted
              mirrored
              placeholder={state.camera === 'pending' ? 'Starting camera…' : 'Camera off'}
              badges={mediaBadges(state)}
              testId="local-tile"
              participantId={state.selfId ?? undefined}
            />
            {tiles.map((t) => (
              <VideoTile
                key={t.participantId}
                stream={remote.get(t.participantId) ?? null}
                name={t.name}
                muted={audioBlocked}
                placeholder={t.hasVideo ? 'Connecting…' : 'No video'}
                badges={t.hasAudio || !t.hasVideo ? [] : ['no audio']}
                onAutoplayBlocked={() => setAudioBlocked(true)}
                testId="remote-tile"
                participantId={t.participantId}
              />
            ))}
          </section>
          {tiles.length === 0 && state.phase === 'joined' && (
            <p className="muted">Nobody else is here yet. Share the invite link.</p>
          )}
          <Controls session={session} state={state} />
        </>
      )}
    </main>
  );
}

function Controls({ session, state }: { session: RoomSession; state: RoomState }) {
  const micOn = state.mic === 'ok';
  const camOn = state.camera === 'ok';
  return (
    <div className="controls" role="toolbar" aria-label="Call controls">
      <button
        type="button"
        aria-pressed={!micOn}
        disabled={state.mic !== 'ok' && state.mic !== 'off'}
        onClick={() => session.setMicEnabled(!micOn)}
      >
        {micOn ? 'Mute' : 'Unmute'}
      </button>
      <button
        type="button"
        aria-pressed={!camOn}
        disabled={state.camera !== 'ok' && state.camera !== 'off'}
        onClick={() => session.setCameraEnabled(!camOn)}
      >
        {camOn ? 'Stop camera' : 'Start camera'}
      </button>
      <button type="button" className="danger" onClick={() => session.leave()}>
        Leave
      </button>
    </div>
  );
}

function Notices({ session, state }: { session: RoomSession; state: RoomState }) {
  if (state.notices.length === 0) return null;
  return (
    <ul className="notices" aria-live="polite" aria-label="Messages">
      {state.notices.map((n) => (
        <li key={n.id} className="notice" data-code={n.code}>
          <span>{n.message}</span>
          <button
            type="button"
            className="link"
            aria-label="Dismiss message"
            onClick={() => session.dismissNotice(n.id)}
          >
            ×
          </button>
        </li>
      ))}
    </ul>
  );
}

function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      window.setTimeout(() => setDone(false), 1500);
    } catch {
      window.prompt('Copy this link:', text);
    }
  };
  return (
    <button type="button" onClick={() => void copy()}>
      {done ? 'Copied' : label}
    </button>
  );
}
