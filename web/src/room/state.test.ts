import { describe, expect, it } from 'vitest';
import type { ServerMessage } from '../signaling';
import { cleanName, guestName, parseRoomParams } from './params';
import { MAX_NOTICES, initialRoomState, midsByParticipant, remoteTiles, roomReducer, type RoomAction, type RoomState } from './state';

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
    expect(remoteTiles(s)).toEqual([
      { participantId: 'p-a', name: 'Ada', hasVideo: true, hasAudio: false },
      { participantId: 'p-b', name: 'Grace', hasVideo: true, hasAudio: true },
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

describe('room params', () => {
  it('reads ?name and ?autojoin', () => {
    expect(parseRoomParams('?name=A&autojoin=1')).toEqual({ name: 'A', autojoin: true });
    expect(parseRoomParams('?name=%20%20')).toEqual({ name: null, autojoin: false });
    expect(parseRoomParams('')).toEqual({ name: null, autojoin: false });
  });
  it('cleans names and makes guest names', () => {
    expect(cleanName('  Ada \n Lovelace ')).toBe('Ada Lovelace');
    expect(cleanName('x'.repeat(100))).toHaveLength(64);
    expect(guestName(() => 0)).toBe('Guest 100');
    expect(guestName(() => 0.999)).toBe('Guest 999');
  });
});
