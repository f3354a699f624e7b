import { describe, expect, it } from 'vitest';
import type { ServerMessage } from '../signaling';
import { cleanName, guestName, parseRoomParams } from './params';
import {
  MAX_NOTICES,
  REACTION_MS,
  initialRoomState,
  midsByParticipant,
  remoteTiles,
  roomReducer,
  screenKey,
  unreadCount,
  videoRoles,
  type RoomAction,
  type RoomState,
} from './state';

const server = (message: ServerMessage): RoomAction => ({ type: 'server', message });
const run = (actions: RoomAction[], s: RoomState = initialRoomState('r-1')) => actions.reduce(roomReducer, s);

const welcome: ServerMessage = {
  type: 'welcome',
  protocol: 1,
  room_id: 'r-1',
  participant_id: 'p-me',
  participants: [
    { id: 'p-me', name: 'Me' },
    { id: 'p-a', name: 'Ada' },
  ],
  producers: [
    { id: 'p-a:0', participant_id: 'p-a', kind: 'video' },
    { id: 'p-me:0', participant_id: 'p-me', kind: 'video' },
  ],
  broadcast: 'stopped',
};

describe('roomReducer', () => {
  it('welcome: joined, without ourselves in the remote lists', () => {
    const s = run([{ type: 'joining', name: 'Me' }, server(welcome)]);
    expect(s.phase).toBe('joined');
    expect(s.selfId).toBe('p-me');
    expect(s.participants.map((p) => p.id)).toEqual(['p-a']);
    expect(s.producers.map((p) => p.id)).toEqual(['p-a:0']);
  });

  it('participants come and go, in join order, and leaving drops their tracks', () => {
    const s = run([
      server(welcome),
      server({ type: 'participant_joined', participant: { id: 'p-b', name: 'Grace' } }),
      server({ type: 'participant_joined', participant: { id: 'p-me', name: 'Me' } }),
      {
        type: 'tracks_applied',
        tracks: [
          { mid: '0', producer_id: 'p-a:0', participant_id: 'p-a', kind: 'video' },
          { mid: '1', producer_id: 'p-b:0', participant_id: 'p-b', kind: 'video' },
          { mid: '2', producer_id: 'p-b:1', participant_id: 'p-b', kind: 'audio' },
        ],
      },
    ]);
    expect(remoteTiles(s).map((t) => [t.participantId, t.name, t.kind, t.hasVideo, t.hasAudio, t.mids])).toEqual([
      ['p-a', 'Ada', 'camera', true, false, ['0']],
      ['p-b', 'Grace', 'camera', true, true, ['1', '2']],
    ]);
    expect(midsByParticipant(s.tracks).get('p-b')).toEqual(['1', '2']);
    const after = roomReducer(s, server({ type: 'participant_left', participant_id: 'p-b' }));
    expect(remoteTiles(after).map((t) => t.participantId)).toEqual(['p-a']);
    expect(after.tracks.map((t) => t.mid)).toEqual(['0']);
  });

  it('producers are added and removed', () => {
    const s = run([
      server(welcome),
      server({ type: 'producer_added', producer: { id: 'p-a:1', participant_id: 'p-a', kind: 'audio' } }),
      server({ type: 'producer_removed', producer_id: 'p-a:0', participant_id: 'p-a' }),
    ]);
    expect(s.producers.map((p) => p.id)).toEqual(['p-a:1']);
  });

  it('errors become notices; only fatal ones end the session', () => {
    let s = run([server(welcome), server({ type: 'error', code: 'bad_sdp', message: 'nope', fatal: false })]);
    expect(s.phase).toBe('joined');
    expect(s.notices.map((n) => n.code)).toEqual(['bad_sdp']);
    for (let i = 0; i < 10; i++) s = roomReducer(s, { type: 'notice', code: `n${i}`, message: 'x' });
    expect(s.notices).toHaveLength(MAX_NOTICES);
    s = roomReducer(s, { type: 'dismiss_notice', id: s.notices[0].id });
    expect(s.notices).toHaveLength(MAX_NOTICES - 1);
    s = roomReducer(s, server({ type: 'error', code: 'room_closed', message: 'bye', fatal: true }));
    expect(s.phase).toBe('failed');
    expect(s.wasJoined).toBe(true);
    expect(s.endReason).toBe('bye');
    expect(s.notices.map((n) => n.code)).not.toContain('room_closed');
    expect(roomReducer(s, { type: 'ended', phase: 'disconnected', reason: 'x' }).phase).toBe('failed');
  });
});

describe('room features', () => {
  it('mute state: from welcome, then from media_state messages; our own is ignored', () => {
    let s = run([
      server({ ...welcome, participants: [{ id: 'p-a', name: 'Ada', audio_muted: true, video_muted: false }] }),
    ]);
    expect(remoteTiles(s)[0]).toMatchObject({ audioMuted: true, videoMuted: false });
    s = roomReducer(s, server({ type: 'media_state', participant_id: 'p-a', audio_muted: false, video_muted: true }));
    expect(remoteTiles(s)[0]).toMatchObject({ audioMuted: false, videoMuted: true });
    expect(roomReducer(s, server({ type: 'media_state', participant_id: 'p-me', audio_muted: true, video_muted: true }))).toBe(s);
    expect(roomReducer(s, server({ type: 'media_state', participant_id: 'p-zz', audio_muted: true, video_muted: true }))).toBe(s);
    // A later participant_joined without flags keeps nothing stale: flags come with it.
    s = roomReducer(s, server({ type: 'participant_joined', participant: { id: 'p-c', name: 'Cy', audio_muted: true } }));
    expect(remoteTiles(s)[1]).toMatchObject({ participantId: 'p-c', audioMuted: true, videoMuted: false });
  });

  it('chat: kept in order, ours marked, unread counts only others', () => {
    const s = run([
      server(welcome),
      server({ type: 'chat', participant_id: 'p-a', name: 'Ada', text: 'hi', ts: 1 }),
      server({ type: 'chat', participant_id: 'p-me', name: 'Me', text: 'hello', ts: 2 }),
      server({ type: 'chat', participant_id: 'p-a', name: 'Ada', text: 'how are you', ts: 3 }),
    ]);
    expect(s.chat.map((m) => [m.name, m.text, m.self])).toEqual([
      ['Ada', 'hi', false],
      ['Me', 'hello', true],
      ['Ada', 'how are you', false],
    ]);
    expect(unreadCount(s.chat, 0)).toBe(2);
    expect(unreadCount(s.chat, s.chat[1].id)).toBe(1);
  });

  it('reactions expire', () => {
    let s = run([server(welcome), { type: 'server', message: { type: 'reaction', participant_id: 'p-a', emoji: '👏' }, at: 1000 }]);
    expect(s.reactions.map((r) => r.emoji)).toEqual(['👏']);
    expect(roomReducer(s, { type: 'expire_reactions', now: 1000 + REACTION_MS - 1 })).toBe(s);
    s = roomReducer(s, { type: 'expire_reactions', now: 1000 + REACTION_MS });
    expect(s.reactions).toEqual([]);
  });

  it('broadcast state: from welcome and broadcast_state', () => {
    let s = run([server({ ...welcome, broadcast: 'live' })]);
    expect(s.broadcast).toBe('live');
    s = roomReducer(s, server({ type: 'broadcast_state', state: 'restarting' }));
    expect(s.broadcast).toBe('restarting');
  });

  it('screen shares: a later video producer of a participant is a separate screen tile', () => {
    const producers = [
      { id: 'p-a:0', participant_id: 'p-a', kind: 'video' as const },
      { id: 'p-a:1', participant_id: 'p-a', kind: 'audio' as const },
      { id: 'p-a:2', participant_id: 'p-a', kind: 'video' as const },
    ];
    expect([...videoRoles(producers)]).toEqual([
      ['p-a:0', 'camera'],
      ['p-a:2', 'screen'],
    ]);
    // Numeric order, not string order or arrival order.
    expect(videoRoles([{ id: 'p-a:10', participant_id: 'p-a', kind: 'video' }, { id: 'p-a:9', participant_id: 'p-a', kind: 'video' }]).get('p-a:9')).toBe('camera');
    let s = run([
      server({ ...welcome, producers }),
      {
        type: 'tracks_applied',
        tracks: [
          { mid: '0', producer_id: 'p-a:0', participant_id: 'p-a', kind: 'video' },
          { mid: '1', producer_id: 'p-a:1', participant_id: 'p-a', kind: 'audio' },
          { mid: '2', producer_id: 'p-a:2', participant_id: 'p-a', kind: 'video' },
        ],
      },
    ]);
    expect(remoteTiles(s).map((t) => [t.key, t.kind, t.mids])).toEqual([
      ['p-a', 'camera', ['0', '1']],
      [screenKey('p-a', 'p-a:2'), 'screen', ['2']],
    ]);
    // Each tile knows the producer of its video (simulcast layer preferences).
    expect(remoteTiles(s).map((t) => t.videoProducerId)).toEqual(['p-a:0', 'p-a:2']);
    // The share stops: the producer goes and the next offer no longer maps its mid.
    s = roomReducer(s, server({ type: 'producer_removed', producer_id: 'p-a:2', participant_id: 'p-a' }));
    s = roomReducer(s, { type: 'tracks_applied', tracks: s.tracks.filter((t) => t.mid !== '2') });
    expect(remoteTiles(s).map((t) => t.key)).toEqual(['p-a']);
  });

  it('reconnect: "reconnecting" drops the media view, the next welcome restores the room', () => {
    let s = run([
      server(welcome),
      { type: 'tracks_applied', tracks: [{ mid: '0', producer_id: 'p-a:0', participant_id: 'p-a', kind: 'video' }] },
      server({ type: 'chat', participant_id: 'p-a', name: 'Ada', text: 'hi', ts: 1 }),
      server({ type: 'reconnect', reason: 'the media server restarted; reconnecting' }),
    ]);
    expect(s.phase).toBe('reconnecting');
    expect(s.tracks).toEqual([]);
    expect(s.reconnect?.reason).toContain('media server');
    s = roomReducer(s, server({ ...welcome, participant_id: 'p-me2' }));
    expect(s.phase).toBe('joined');
    expect(s.selfId).toBe('p-me2');
    expect(s.reconnect).toBeNull();
    expect(s.reconnects).toBe(1);
    expect(s.chat).toHaveLength(1); // the conversation survives
    // Client-side retries: attempt numbers and the next retry time are shown.
    s = roomReducer(s, { type: 'reconnecting', attempt: 2, reason: 'lost', retryAt: 5000 });
    expect(s.reconnect).toEqual({ attempt: 2, reason: 'lost', retryAt: 5000 });
    s = roomReducer(s, { type: 'ended', phase: 'disconnected', reason: 'gave up' });
    expect(s.phase).toBe('disconnected');
    expect(roomReducer(s, { type: 'reconnecting', attempt: 3, reason: 'x', retryAt: 1 }).phase).toBe('disconnected');
  });
});

describe('ICE restart', () => {
  it('"reconnecting" during an ICE restart keeps the tiles; recovered brings "joined" back, same id', () => {
    const tracks = [{ mid: '0', producer_id: 'p-a:0', participant_id: 'p-a', kind: 'video' as const }];
    let s = run([server(welcome), { type: 'tracks_applied', tracks }]);
    const id = s.selfId;
    s = roomReducer(s, { type: 'ice_restarting', reason: 'The receiving media connection failed; restoring it.' });
    expect(s.phase).toBe('reconnecting');
    expect(s.reconnect).toEqual({ attempt: 0, reason: 'The receiving media connection failed; restoring it.', retryAt: null, iceRestart: true });
    expect(s.tracks).toEqual(tracks);
    expect(remoteTiles(s).map((t) => t.hasVideo)).toEqual([true]);
    s = roomReducer(s, { type: 'ice_recovered' });
    expect(s.phase).toBe('joined');
    expect(s.reconnect).toBeNull();
    expect(s.selfId).toBe(id);
    expect(s.iceRestarts).toBe(1);
    expect(s.reconnects).toBe(0);
  });

  it('the fallback re-join takes over; a late "recovered" does not end a re-join', () => {
    let s = run([server(welcome), { type: 'ice_restarting', reason: 'lost' }]);
    s = roomReducer(s, { type: 'reconnecting', attempt: 1, reason: 'did not come back', retryAt: 100 });
    expect(roomReducer(s, { type: 'ice_recovered' })).toBe(s);
    // Only a joined room starts an ICE restart.
    expect(roomReducer(s, { type: 'ice_restarting', reason: 'x' })).toBe(s);
    s = roomReducer(s, server({ ...welcome, participant_id: 'p-me2' }));
    expect(s.phase).toBe('joined');
    expect(s.reconnects).toBe(1);
  });
});

describe('room params', () => {
  it('reads ?name and ?autojoin', () => {
    expect(parseRoomParams('?name=A&autojoin=1')).toEqual({ name: 'A', autojoin: true, preset: null });
    expect(parseRoomParams('?name=%20%20')).toEqual({ name: null, autojoin: false, preset: null });
    expect(parseRoomParams('')).toEqual({ name: null, autojoin: false, preset: null });
    expect(parseRoomParams('?preset=low').preset).toBe('low');
  });
  it('cleans names and makes guest names', () => {
    expect(cleanName('  Ada \n Lovelace ')).toBe('Ada Lovelace');
    expect(cleanName('x'.repeat(100))).toHaveLength(64);
    expect(guestName(() => 0)).toBe('Guest 100');
    expect(guestName(() => 0.999)).toBe('Guest 999');
  });
});

describe('host role, e2ee and removal', () => {
  it('keeps the role and e2ee flag of the join response', () => {
    const s = run([{ type: 'joining', name: 'Me' }, { type: 'joined_http', participantId: 'p-me', role: 'host', e2ee: true }, server(welcome)]);
    expect(s.role).toBe('host');
    expect(s.e2ee).toBe(true);
    expect(run([{ type: 'joined_http', participantId: 'p-me' }]).role).toBeNull();
  });

  it('removed: ends the session with the reason; no reconnect or later end overrides it', () => {
    const s = run([
      { type: 'joining', name: 'Me' },
      server(welcome),
      server({ type: 'removed', reason: 'the host removed you from the room' }),
      { type: 'reconnecting', attempt: 1, reason: 'socket closed', retryAt: 0 },
      { type: 'ended', phase: 'disconnected', reason: 'lost' },
    ]);
    expect(s.phase).toBe('removed');
    expect(s.endReason).toBe('the host removed you from the room');
    expect(s.participants).toEqual([]);
    expect(remoteTiles(s)).toEqual([]);
    expect(run([server(welcome), server({ type: 'removed', reason: '' })]).endReason).toMatch(/host removed you/);
  });
});
