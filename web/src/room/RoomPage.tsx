import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { ApiError, checkInvite, getConfig, getRoom, mintInvite, startBroadcast, stopBroadcast, type GatewayConfig } from '../api';
import { keyFromHash, withKey } from '../e2ee/passphrase';
import { decryptState } from '../e2ee/status';
import type { BroadcastState } from '../signaling';
import { navigate, roomPath, watchPath } from '../routes';
import { useStore } from '../store';
import { ChatPanel } from './ChatPanel';
import { DevicePickers, useDevices } from './DevicePickers';
import { PAGE_INVITE, inviteFresh, inviteFromSearch, inviteLinkMode, inviteProblem, joinPath, type InviteProblem } from './invite';
import { BroadcastIcon, CameraIcon, ChatIcon, LeaveIcon, LinkIcon, MicIcon, ScreenIcon, SettingsIcon, SmileIcon } from './icons';
import { gridLayout, orderTiles } from './layout';
import { loadSettings, type MediaSettings } from './media';
import { cleanName, guestName, parseRoomParams, rememberName, rememberedName } from './params';
import { PreJoin, type JoinChoice } from './PreJoin';
import { RoomSession, SELF_KEY, type RoomDebugHandle } from './session';
import { REACTION_MS, remoteTiles, unreadCount, type RoomState, type TileModel } from './state';
import { VideoTile } from './VideoTile';
import { DecryptBanner, E2eeBadge, KeyPrompt } from './E2eeUi';

declare global {
  interface Window {
    __roomcast?: RoomDebugHandle<RoomSession>;
  }
}

export const REACTIONS = ['👍', '👏', '😂', '❤️', '🎉', '😮'];

export function RoomPage({ roomId, search }: { roomId: string; search: string }) {
  const params = parseRoomParams(search);
  const [name, setName] = useState(() => params.name ?? rememberedName() ?? guestName());
  const [settings, setSettings] = useState<MediaSettings>(() => {
    const s = loadSettings();
    return params.preset ? { ...s, preset: params.preset } : s;
  });
  const [session, setSession] = useState<RoomSession | null>(null);
  const autojoined = useRef(false);
  // The e2ee passphrase lives in the fragment (#key=…), which the browser never sends to the server.
  const [passphrase, setPassphrase] = useState<string | null>(() => keyFromHash(window.location.hash));
  /** Whether the room is end-to-end encrypted (null while asking the server). */
  const [e2ee, setE2ee] = useState<boolean | null>(null);
  // An invite link (`?invite=…`): checked at once (without using it), so a bad one is said
  // before the join screen; joins then exchange it for a token.
  const invite = inviteFromSearch(search);
  const [inviteState, setInviteState] = useState<'checking' | 'ok' | InviteProblem>(invite ? 'checking' : 'ok');
  /** What the gateway says about itself ('loading' until it answers; null: it could not say). */
  const [config, setConfig] = useState<GatewayConfig | null | 'loading'>('loading');
  const inviteRequired = config === 'loading' || config === null ? null : config.invite_required;
  const path = joinPath(invite, inviteRequired);

  useEffect(() => {
    let alive = true;
    void getConfig().then((c) => alive && setConfig(c));
    return () => {
      alive = false;
    };
  }, []);

  useEffect(() => {
    if (!invite) return;
    let alive = true;
    checkInvite(roomId, invite)
      .then(() => alive && setInviteState('ok'))
      .catch((e) => {
        // Anything but a verdict on the invite (an older gateway, the network): the join says.
        if (alive) setInviteState((e instanceof ApiError && inviteProblem(e.code)) || 'ok');
      });
    return () => {
      alive = false;
    };
  }, [roomId, invite]);

  useEffect(() => {
    let alive = true;
    // A room we cannot look up is joined as before: the join then says what is wrong.
    getRoom(roomId)
      .then((r) => alive && setE2ee(r.e2ee === true))
      .catch(() => alive && setE2ee(false));
    return () => {
      alive = false;
    };
  }, [roomId]);

  useEffect(() => {
    const onHash = () => setPassphrase(keyFromHash(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const applyKey = (key: string) => {
    // replaceState: the key stays in the address (to share or reload) without a navigation.
    window.history.replaceState(null, '', withKey(window.location.pathname + window.location.search, key));
    setPassphrase(key);
  };

  const join = useCallback(
    (displayName: string, choice: JoinChoice | null, key: string | null = passphrase) => {
      const clean = cleanName(displayName) || guestName();
      rememberName(clean);
      // A rejoin keeps the devices chosen during the call.
      const current = session?.settings.get() ?? settings;
      const s = new RoomSession(roomId, current);
      window.__roomcast = s.debugHandle();
      setSession(s); // the effect below leaves the previous session
      void s.join({
        name: clean,
        settings: current,
        media: choice?.media,
        audioMuted: choice?.audioMuted,
        videoMuted: choice?.videoMuted,
        passphrase: key,
        invite,
        previousToken: session?.token ?? null,
      });
    },
    [roomId, settings, session, passphrase, invite],
  );

  const needsKey = e2ee === true && !passphrase;
  const canJoin = inviteState === 'ok' && config !== 'loading' && path !== 'needs_invite';
  useEffect(() => {
    // Autojoin is a page-load decision, taken once we know whether the room needs a key, and
    // whether this gateway (and the link's invite) lets us in.
    if (params.autojoin && !autojoined.current && e2ee !== null && !needsKey && canJoin) {
      autojoined.current = true;
      join(name, null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [e2ee, needsKey, canJoin]);

  // Leave cleanly when the tab closes or the route changes (the server frees the seat at once).
  useEffect(() => {
    if (!session) return;
    const onHide = () => session.leave();
    window.addEventListener('pagehide', onHide);
    return () => {
      window.removeEventListener('pagehide', onHide);
      session.leave();
    };
  }, [session]);

  if (!session && typeof inviteState === 'object') return <InviteErrorPage problem={inviteState} />;
  if (!session && path === 'needs_invite') return <InviteErrorPage problem={inviteProblem('needs_invite')!} />;
  if (!session && needsKey) return <KeyPrompt roomId={roomId} onKey={applyKey} />;
  if (!session) {
    return (
      <PreJoin
        e2ee={e2ee === true}
        roomId={roomId}
        name={name}
        setName={setName}
        settings={settings}
        setSettings={setSettings}
        onJoin={(choice) => join(name, choice)}
      />
    );
  }
  return (
    <RoomView
      session={session}
      passphrase={passphrase}
      inviteRequired={inviteRequired}
      onRejoin={() => join(name, null)}
      onNewKey={(key) => {
        applyKey(key);
        join(name, null, key);
      }}
    />
  );
}

const PHASE_TEXT: Record<RoomState['phase'], string> = {
  idle: 'Not joined',
  joining: 'Joining…',
  joined: 'In the room',
  reconnecting: 'Reconnecting…',
  disconnected: 'Disconnected',
  left: 'You left the room',
  removed: 'You were removed from the room by the host',
  failed: 'Could not join',
};

function phaseText(state: RoomState): string {
  if (state.phase === 'failed' && state.wasJoined) return 'You are no longer in the room';
  return PHASE_TEXT[state.phase];
}

const BROADCAST_TEXT: Record<BroadcastState, string> = {
  stopped: 'Not live',
  starting: 'Going live…',
  live: 'Live',
  restarting: 'Live · recovering…',
  failed: 'Broadcast failed',
};

interface Tile {
  key: string;
  kind: 'camera' | 'screen';
  local: boolean;
  model?: TileModel;
}

/** The grid's size, for the layout. */
function useSize(ref: React.RefObject<HTMLElement | null>): { width: number; height: number } {
  const [size, setSize] = useState({ width: 0, height: 0 });
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const update = () => setSize({ width: el.clientWidth, height: el.clientHeight });
    update();
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref]);
  return size;
}

/** A refused invite link (or none where one is needed): what happened and what to do. */
function InviteErrorPage({ problem }: { problem: InviteProblem }) {
  return (
    <main className="page narrow">
      <InviteErrorCard problem={problem} />
    </main>
  );
}

function InviteErrorCard({ problem }: { problem: InviteProblem }) {
  return (
    <div className="card stack ended" role="alert" data-testid="invite-error" data-code={problem.code}>
      <strong>{problem.title}</strong>
      <span>{problem.detail}</span>
      <div className="row">
        <button type="button" className="primary" onClick={() => navigate('/')}>
          Go to the start page
        </button>
      </div>
    </div>
  );
}

function RoomView(props: {
  session: RoomSession;
  passphrase: string | null;
  inviteRequired: boolean | null;
  onRejoin: () => void;
  onNewKey: (key: string) => void;
}) {
  const { session, passphrase, inviteRequired, onRejoin, onNewKey } = props;
  const state = useStore(session.state);
  const local = useStore(session.localStream);
  const screen = useStore(session.screenStream);
  const remote = useStore(session.remoteStreams);
  const live = useStore(session.live);
  const settings = useStore(session.settings);
  const [audioBlocked, setAudioBlocked] = useState(false);
  const [panel, setPanel] = useState<'none' | 'chat' | 'settings'>('none');
  const [chatSeen, setChatSeen] = useState(0);
  const stageRef = useRef<HTMLDivElement>(null);
  const size = useSize(stageRef);
  const remoteModels = remoteTiles(state);
  const inRoom = state.phase === 'joining' || state.phase === 'joined' || state.phase === 'reconnecting';
  const inviteFailure = state.phase === 'failed' ? session.inviteFailure : null;

  // Reactions fade out.
  useEffect(() => {
    if (state.reactions.length === 0) return;
    const t = window.setTimeout(() => session.expireReactions(), REACTION_MS / 4);
    return () => window.clearTimeout(t);
  }, [state.reactions, session]);

  // The chat counts as read while it is open.
  const lastChatId = state.chat.length ? state.chat[state.chat.length - 1].id : 0;
  useEffect(() => {
    if (panel === 'chat') setChatSeen(lastChatId);
  }, [panel, lastChatId]);
  const unread = panel === 'chat' ? 0 : unreadCount(state.chat, chatSeen);

  const tiles: Tile[] = orderTiles([
    { key: SELF_KEY, kind: 'camera' as const, local: true },
    ...(screen ? [{ key: 'self/screen', kind: 'screen' as const, local: true }] : []),
    ...remoteModels.map((m) => ({ key: m.key, kind: m.kind, local: false, model: m })),
  ]);
  const layout = gridLayout(tiles.length, size.width, size.height);
  const reactionsOf = (pid: string | null) =>
    pid ? state.reactions.filter((r) => r.participantId === pid).map((r) => ({ id: r.id, emoji: r.emoji })) : [];

  const isHost = state.role === 'host';
  const decryptOf = (key: string) => {
    const c = live.decrypt.get(key);
    return c ? { decrypt: decryptState(c), decryptFailures: c.failed } : state.e2ee ? { decrypt: 'waiting' as const } : {};
  };
  const failingNames = state.e2ee
    ? remoteModels.filter((m) => m.kind === 'camera' && decryptOf(m.key).decrypt === 'failing').map((m) => m.name)
    : [];
  const watchUrl = `${window.location.origin}${watchPath(state.roomId)}`;
  const onVideoHeight = useCallback((producerId: string, maxHeight: number | null) => session.setVideoHeight(producerId, maxHeight), [session]);

  return (
    <main className={`room-page ${panel !== 'none' ? 'with-panel' : ''}`}>
      <header className="room-header">
        <div className="room-title">
          <h1>
            Room <code>{state.roomId}</code> {state.e2ee && <E2eeBadge />}
          </h1>
          <p className="muted" role="status" aria-live="polite" data-testid="room-status">
            {phaseText(state)}
            {state.phase === 'joined' && ` · ${remoteModels.filter((t) => t.kind === 'camera').length + 1} in the room`}
          </p>
        </div>
        {state.phase !== 'removed' && (
          <div className="row">
            <BroadcastControls session={session} state={state} />
            <InviteLinkButton session={session} state={state} inviteRequired={inviteRequired} passphrase={passphrase} />
            {!state.e2ee && <CopyButton text={watchUrl} label="Copy watch link" />}
          </div>
        )}
      </header>

      {state.phase === 'reconnecting' && <ReconnectBanner session={session} state={state} />}

      <Notices session={session} state={state} />

      {state.phase === 'joined' && failingNames.length > 0 && <DecryptBanner names={failingNames} onKey={onNewKey} />}

      {audioBlocked && (
        <div className="banner" role="alert">
          Your browser blocked sound.{' '}
          <button type="button" className="primary" onClick={() => setAudioBlocked(false)}>
            Turn sound on
          </button>
        </div>
      )}

      {state.phase === 'removed' && (
        <div className="card stack ended" role="alert" data-testid="removed">
          <strong>You were removed from the room by the host</strong>
          <span>You can no longer see or hear the others, and they no longer see or hear you.</span>
          <div className="row">
            <button type="button" className="primary" onClick={() => navigate('/')}>
              Back to the lobby
            </button>
          </div>
        </div>
      )}

      {inviteFailure && <InviteErrorCard problem={inviteFailure} />}

      {!inRoom && state.phase !== 'removed' && !inviteFailure && (
        <div className="card stack ended" role="alert">
          <strong>{phaseText(state)}</strong>
          {state.endReason && <span>{state.endReason}</span>}
          <div className="row">
            <button type="button" className="primary" onClick={onRejoin}>
              {state.phase === 'left' ? 'Join again' : 'Rejoin'}
            </button>
            <button type="button" onClick={() => navigate('/')}>
              Back to the start page
            </button>
          </div>
        </div>
      )}

      {inRoom && (
        <div className="room-body">
          <div className="stage" ref={stageRef}>
            <section
              className="grid"
              aria-label="Participants"
              style={{
                gridTemplateColumns: `repeat(${Math.max(1, layout.columns)}, ${layout.tileWidth ? `${layout.tileWidth}px` : 'minmax(0, 1fr)'})`,
              }}
            >
              {tiles.map((t) => {
                const sizeStyle = layout.tileWidth ? { width: layout.tileWidth, height: layout.tileHeight } : undefined;
                if (t.local && t.kind === 'camera') {
                  return (
                    <VideoTile
                      key={t.key}
                      stream={local}
                      name={state.selfName}
                      suffix="(you)"
                      muted
                      mirrored
                      placeholder={state.camera === 'pending' ? 'Starting camera…' : state.camera === 'unavailable' ? 'No camera' : 'Camera off'}
                      audioMuted={state.mic === 'off' || state.mic === 'unavailable'}
                      videoMuted={state.camera === 'off'}
                      speaking={live.speaker === SELF_KEY}
                      quality={live.quality.get(SELF_KEY) ?? null}
                      reactions={reactionsOf(state.selfId)}
                      testId="local-tile"
                      participantId={state.selfId ?? undefined}
                      style={sizeStyle}
                    />
                  );
                }
                if (t.local) {
                  return (
                    <VideoTile
                      key={t.key}
                      stream={screen}
                      name={state.selfName}
                      suffix="· your screen"
                      muted
                      screen
                      placeholder="Starting screen share…"
                      testId="local-screen-tile"
                      style={sizeStyle}
                    />
                  );
                }
                const m = t.model!;
                return (
                  <VideoTile
                    key={t.key}
                    stream={remote.get(m.key) ?? null}
                    name={m.name}
                    suffix={m.kind === 'screen' ? '· screen' : undefined}
                    muted={audioBlocked || m.kind === 'screen'}
                    screen={m.kind === 'screen'}
                    placeholder={state.phase === 'reconnecting' ? 'Reconnecting…' : m.hasVideo ? 'Connecting…' : 'No video'}
                    audioMuted={m.kind === 'camera' ? m.audioMuted : undefined}
                    videoMuted={m.kind === 'camera' ? m.videoMuted : undefined}
                    speaking={m.kind === 'camera' && live.speaker === m.participantId}
                    quality={live.quality.get(m.key) ?? null}
                    reactions={m.kind === 'camera' ? reactionsOf(m.participantId) : undefined}
                    sinkId={settings.speakerId}
                    onAutoplayBlocked={() => setAudioBlocked(true)}
                    testId={m.kind === 'screen' ? 'screen-tile' : 'remote-tile'}
                    participantId={m.participantId}
                    style={sizeStyle}
                    {...decryptOf(m.key)}
                    onRemove={isHost && m.kind === 'camera' && state.phase === 'joined' ? () => session.removeParticipant(m.participantId) : undefined}
                    videoProducerId={m.videoProducerId}
                    onVideoHeight={onVideoHeight}
                  />
                );
              })}
            </section>
            {remoteModels.length === 0 && state.phase === 'joined' && (
              <p className="muted alone">Nobody else is here yet. Share the invite link.</p>
            )}
          </div>
          {panel === 'chat' && (
            <ChatPanel messages={state.chat} onSend={(t) => session.sendChat(t)} onClose={() => setPanel('none')} disabled={state.phase !== 'joined'} />
          )}
          {panel === 'settings' && <SettingsPanel session={session} settings={settings} onClose={() => setPanel('none')} />}
        </div>
      )}

      {inRoom && <Controls session={session} state={state} panel={panel} setPanel={setPanel} unread={unread} />}
    </main>
  );
}

function ReconnectBanner({ session, state }: { session: RoomSession; state: RoomState }) {
  const info = state.reconnect;
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(t);
  }, []);
  const wait = info?.retryAt ? Math.max(0, Math.ceil((info.retryAt - now) / 1000)) : null;
  return (
    <div className="banner reconnecting" role="alert" data-testid="reconnecting">
      <span className="spinner" aria-hidden="true" />
      <span>
        <strong>Reconnecting…</strong> {info?.reason}
        {info && info.attempt > 0 && ` (attempt ${info.attempt}${wait ? `, next try in ${wait} s` : ''})`}
      </span>
      {wait !== null && wait > 0 && (
        <button type="button" onClick={() => session.retryNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}

function BroadcastControls({ session, state }: { session: RoomSession; state: RoomState }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const running = state.broadcast !== 'stopped' && state.broadcast !== 'failed';
  if (state.e2ee) {
    // The compositor would need the key to see the video: encrypted rooms are not broadcast.
    const reason = 'No broadcast: this room is end-to-end encrypted, so the server cannot see the video to broadcast it.';
    return (
      <div className="broadcast-controls row">
        <button type="button" disabled title={reason} aria-describedby="broadcast-e2ee-reason" data-testid="go-live">
          <BroadcastIcon /> Go live
        </button>
        <span className="hint" id="broadcast-e2ee-reason" data-testid="broadcast-unavailable">
          Not broadcastable (end-to-end encrypted)
        </span>
      </div>
    );
  }
  const toggle = async () => {
    setBusy(true);
    setError(null);
    try {
      if (running) {
        await stopBroadcast(state.roomId, session.token);
        session.setBroadcastState('stopped');
      } else {
        const r = await startBroadcast(state.roomId, session.token);
        if (state.broadcast === 'stopped' || state.broadcast === 'failed') {
          session.setBroadcastState(r.state === 'live' ? 'live' : 'starting');
        }
      }
    } catch (e) {
      // 409: someone else started/stopped it meanwhile; the broadcast_state message corrects us.
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) setError('Only the room’s host can start or stop the broadcast.');
      else if (e instanceof ApiError && e.code === 'e2ee_room') setError('This room is end-to-end encrypted and cannot be broadcast.');
      else if (!(e instanceof ApiError && e.status === 409)) setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="broadcast-controls row">
      <span className={`live-pill ${state.broadcast}`} data-testid="broadcast-state" data-state={state.broadcast}>
        {BROADCAST_TEXT[state.broadcast]}
      </span>
      <button type="button" className={running ? 'danger' : 'primary'} disabled={busy || state.phase !== 'joined'} onClick={() => void toggle()}>
        <BroadcastIcon /> {running ? 'Stop broadcast' : 'Go live'}
      </button>
      {error && (
        <span className="error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

function SettingsPanel({ session, settings, onClose }: { session: RoomSession; settings: MediaSettings; onClose: () => void }) {
  const local = useStore(session.localStream);
  const devices = useDevices(local);
  return (
    <aside className="side-panel" aria-label="Settings" data-testid="settings-panel">
      <header className="side-header">
        <h2>Settings</h2>
        <button type="button" className="link" aria-label="Close settings" onClick={onClose}>
          ×
        </button>
      </header>
      <DevicePickers settings={settings} devices={devices} onChange={(next) => void session.changeSettings(next)} idPrefix="call" />
    </aside>
  );
}

function Controls(props: {
  session: RoomSession;
  state: RoomState;
  panel: 'none' | 'chat' | 'settings';
  setPanel: (p: 'none' | 'chat' | 'settings') => void;
  unread: number;
}) {
  const { session, state, panel, setPanel, unread } = props;
  const [picker, setPicker] = useState(false);
  const pickerRef = useRef<HTMLDivElement>(null);
  const reactButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (picker) pickerRef.current?.querySelector('button')?.focus();
  }, [picker]);
  const closePicker = () => {
    setPicker(false);
    reactButton.current?.focus();
  };
  const micOn = state.mic === 'ok';
  const camOn = state.camera === 'ok';
  const sharing = state.screen !== 'off';
  const canShare = typeof navigator.mediaDevices?.getDisplayMedia === 'function';
  const joined = state.phase === 'joined';

  // Keyboard shortcuts (not while typing): m = microphone, v = camera.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const el = e.target as HTMLElement | null;
      if (e.ctrlKey || e.metaKey || e.altKey || el?.closest('input, textarea, select')) return;
      if (e.key === 'm' && (state.mic === 'ok' || state.mic === 'off')) session.setMicEnabled(state.mic !== 'ok');
      if (e.key === 'v' && (state.camera === 'ok' || state.camera === 'off')) void session.setCameraEnabled(state.camera !== 'ok');
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [session, state.mic, state.camera]);

  return (
    <div className="controls" role="toolbar" aria-label="Call controls">
      <button
        type="button"
        className={`toggle ${micOn ? '' : 'off'}`}
        aria-pressed={!micOn}
        aria-keyshortcuts="m"
        title="Mute / unmute (m)"
        disabled={state.mic !== 'ok' && state.mic !== 'off'}
        onClick={() => session.setMicEnabled(!micOn)}
      >
        <MicIcon off={!micOn} /> {micOn ? 'Mute' : 'Unmute'}
      </button>
      <button
        type="button"
        className={`toggle ${camOn ? '' : 'off'}`}
        aria-pressed={!camOn}
        aria-keyshortcuts="v"
        title="Camera on / off (v)"
        disabled={state.camera !== 'ok' && state.camera !== 'off'}
        onClick={() => void session.setCameraEnabled(!camOn)}
      >
        <CameraIcon off={!camOn} /> {camOn ? 'Stop camera' : 'Start camera'}
      </button>
      {canShare && (
        <button
          type="button"
          className={sharing ? 'toggle active' : 'toggle'}
          aria-pressed={sharing}
          disabled={!joined || state.screen === 'starting'}
          onClick={() => void (sharing ? session.stopScreenShare() : session.startScreenShare())}
        >
          <ScreenIcon /> {sharing ? 'Stop sharing' : 'Share screen'}
        </button>
      )}
      <div
        className="reaction-picker-wrap"
        onKeyDown={(e) => {
          if (e.key === 'Escape' && picker) closePicker();
        }}
      >
        <button ref={reactButton} type="button" aria-expanded={picker} aria-haspopup="true" disabled={!joined} onClick={() => setPicker(!picker)}>
          <SmileIcon /> React
        </button>
        {picker && (
          <div className="reaction-picker" role="group" aria-label="Reactions" ref={pickerRef}>
            {REACTIONS.map((emoji) => (
              <button
                key={emoji}
                type="button"
                aria-label={`React with ${emoji}`}
                onClick={() => {
                  session.sendReaction(emoji);
                  closePicker();
                }}
              >
                {emoji}
              </button>
            ))}
          </div>
        )}
      </div>
      <button type="button" aria-pressed={panel === 'chat'} onClick={() => setPanel(panel === 'chat' ? 'none' : 'chat')}>
        <ChatIcon /> Chat
        {unread > 0 && (
          <span className="count" aria-label={`${unread} unread`} data-testid="unread">
            {unread}
          </span>
        )}
      </button>
      <button type="button" aria-pressed={panel === 'settings'} onClick={() => setPanel(panel === 'settings' ? 'none' : 'settings')}>
        <SettingsIcon /> Settings
      </button>
      <button type="button" className="danger" onClick={() => session.leave()}>
        <LeaveIcon /> Leave
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
          <button type="button" className="link" aria-label="Dismiss message" onClick={() => session.dismissNotice(n.id)}>
            ×
          </button>
        </li>
      ))}
    </ul>
  );
}

/**
 * "Copy invite link": the room's address on an open gateway (with the key of an e2ee room in
 * its fragment: whoever has the link can decrypt); on a gateway that needs invites, an invite
 * the host mints (re-minted before it expires); others there cannot make one.
 */
function InviteLinkButton(props: { session: RoomSession; state: RoomState; inviteRequired: boolean | null; passphrase: string | null }) {
  const { session, state, inviteRequired, passphrase } = props;
  const mode = inviteLinkMode(inviteRequired, state.role);
  const [minted, setMinted] = useState<{ path: string; expiresAt: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = state.e2ee ? passphrase : null;
  const joined = state.phase === 'joined';
  const roomId = state.roomId;

  const mint = useCallback(async (): Promise<string | null> => {
    try {
      const m = await mintInvite(roomId, session.token, PAGE_INVITE);
      setMinted({ path: m.url, expiresAt: m.expires_at });
      setError(null);
      return m.url;
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      return null;
    }
  }, [roomId, session]);

  useEffect(() => {
    if (mode === 'mint' && joined && !minted) void mint();
  }, [mode, joined, minted, mint]);

  const full = (path: string) => `${window.location.origin}${withKey(path, key)}`;
  if (mode === 'plain') return <CopyButton text={full(roomPath(roomId))} label="Copy invite link" testId="copy-invite" />;
  if (mode === 'host_only') {
    return <CopyButton text={null} label="Copy invite link" testId="copy-invite" disabledReason="On this server only the host can make invite links." />;
  }
  const fresh = minted && inviteFresh(minted.expiresAt, Date.now()) ? full(minted.path) : null;
  return (
    <CopyButton
      text={fresh}
      label="Copy invite link"
      testId="copy-invite"
      getText={async () => {
        const path = await mint();
        return path ? full(path) : null;
      }}
      disabledReason={!joined ? 'Invite links can be made once you are in the room.' : undefined}
      problem={error ? `Could not make an invite link: ${error}` : undefined}
    />
  );
}

function CopyButton(props: {
  /** What to copy; null: ask `getText` when clicked. */
  text: string | null;
  label: string;
  getText?: () => Promise<string | null>;
  testId?: string;
  /** Set: the button is disabled and says why. */
  disabledReason?: string;
  problem?: string;
}) {
  const { text, label, getText, testId, disabledReason, problem } = props;
  const [done, setDone] = useState(false);
  const copy = async () => {
    const value = text ?? (getText ? await getText() : null);
    if (!value) return;
    try {
      await navigator.clipboard.writeText(value);
      setDone(true);
      window.setTimeout(() => setDone(false), 1500);
    } catch {
      window.prompt('Copy this link:', value);
    }
  };
  return (
    <button
      type="button"
      onClick={() => void copy()}
      title={disabledReason ?? problem ?? text ?? label}
      disabled={disabledReason !== undefined}
      data-testid={testId}
      data-link={text ?? undefined}
    >
      <LinkIcon /> {done ? 'Copied' : label}
    </button>
  );
}
