import { describe, expect, it } from 'vitest';
import { parseServerMessage, resolveWsUrl, type ClientMessage } from './signaling';

describe('parseServerMessage', () => {
  it('parses the welcome example of docs/protocol.md', () => {
    const r = parseServerMessage(
      JSON.stringify({
        type: 'welcome',
        protocol: 1,
        room_id: 'r-3f2a',
        participant_id: 'p-81c0',
        participants: [{ id: 'p-11aa', name: 'Ada' }],
        producers: [{ id: 'p-11aa:0', participant_id: 'p-11aa', kind: 'video' }],
      }),
    );
    expect(r.ok).toBe(true);
    if (r.ok && r.message.type === 'welcome') {
      expect(r.message.participants).toEqual([{ id: 'p-11aa', name: 'Ada' }]);
      expect(r.message.producers[0].kind).toBe('video');
    }
  });

  it('parses a subscribe_offer with its tracks', () => {
    const r = parseServerMessage(
      JSON.stringify({
        type: 'subscribe_offer',
        sdp: 'v=0\r\n',
        tracks: [{ mid: '0', producer_id: 'p-11aa:0', participant_id: 'p-11aa', kind: 'video' }],
      }),
    );
    expect(r).toEqual({
      ok: true,
      message: {
        type: 'subscribe_offer',
        sdp: 'v=0\r\n',
        tracks: [{ mid: '0', producer_id: 'p-11aa:0', participant_id: 'p-11aa', kind: 'video' }],
      },
    });
  });

  it('keeps errors non-fatal unless fatal is true', () => {
    const r = parseServerMessage('{"type":"error","code":"bad_sdp","message":"x"}');
    expect(r).toEqual({ ok: true, message: { type: 'error', code: 'bad_sdp', message: 'x', fatal: false } });
  });

  it('rejects junk without throwing', () => {
    expect(parseServerMessage('not json').ok).toBe(false);
    expect(parseServerMessage('[]').ok).toBe(false);
    expect(parseServerMessage('{"type":"nope"}').ok).toBe(false);
    expect(parseServerMessage('{"type":"candidate","pc":"other","candidate":""}').ok).toBe(false);
    expect(parseServerMessage('{"type":"subscribe_offer","sdp":"x","tracks":[{"mid":1}]}').ok).toBe(false);
  });

  it('accepts a candidate without sdp_mid', () => {
    const r = parseServerMessage('{"type":"candidate","pc":"subscribe","candidate":"candidate:1 1 udp 1 127.0.0.1 4000 typ host"}');
    expect(r.ok && r.message.type === 'candidate' && r.message.sdp_mid).toBe(null);
  });
});

describe('resolveWsUrl', () => {
  const page = 'http://127.0.0.1:8080/room/r-1?name=A';
  it('keeps a full ws:// URL', () => {
    expect(resolveWsUrl('ws://127.0.0.1:9000/ws?token=abc', 'abc', page)).toBe('ws://127.0.0.1:9000/ws?token=abc');
  });
  it('resolves a path against the page and switches the scheme', () => {
    expect(resolveWsUrl('/ws?token=abc', 'abc', page)).toBe('ws://127.0.0.1:8080/ws?token=abc');
    expect(resolveWsUrl('/ws', 'abc', 'https://example.test/room/x')).toBe('wss://example.test/ws?token=abc');
  });
  it('adds the token when the URL has none', () => {
    expect(resolveWsUrl('ws://h/ws', 't 1', page)).toBe('ws://h/ws?token=t+1');
    expect(resolveWsUrl('', 'abc', page)).toBe('ws://127.0.0.1:8080/ws?token=abc');
  });
  it('turns an http URL into ws', () => {
    expect(resolveWsUrl('http://h:1/ws?token=a', 'a', page)).toBe('ws://h:1/ws?token=a');
  });
});

describe('protocol additions', () => {
  it('parses token, reconnect, media_state, chat, reaction and broadcast_state', () => {
    const ok = (v: unknown) => {
      const r = parseServerMessage(JSON.stringify(v));
      expect(r.ok).toBe(true);
      return r.ok ? r.message : null;
    };
    expect(ok({ type: 'token', token: 'eyJ', expires_in: 600 })).toEqual({ type: 'token', token: 'eyJ', expires_in: 600 });
    expect(ok({ type: 'reconnect', reason: 'x' })).toEqual({ type: 'reconnect', reason: 'x' });
    expect(ok({ type: 'media_state', participant_id: 'p', audio_muted: true, video_muted: false })).toMatchObject({ audio_muted: true });
    expect(ok({ type: 'chat', participant_id: 'p', name: 'Ada', text: 'hi', ts: 5 })).toMatchObject({ name: 'Ada', text: 'hi', ts: 5 });
    expect(ok({ type: 'reaction', participant_id: 'p', emoji: '👏' })).toMatchObject({ emoji: '👏' });
    expect(ok({ type: 'broadcast_state', state: 'live' })).toEqual({ type: 'broadcast_state', state: 'live' });
    // A state a newer server invents reads as stopped rather than breaking the page.
    expect(ok({ type: 'broadcast_state', state: 'paused' })).toEqual({ type: 'broadcast_state', state: 'stopped' });
    expect(ok({ type: 'welcome', participant_id: 'p', participants: [{ id: 'a', name: 'A', audio_muted: true }], producers: [], broadcast: 'live' })).toMatchObject({
      broadcast: 'live',
      participants: [{ id: 'a', name: 'A', audio_muted: true }],
    });
  });

  it('refuses malformed additions', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'token' })).ok).toBe(false);
    expect(parseServerMessage(JSON.stringify({ type: 'media_state', participant_id: 'p' })).ok).toBe(false);
    expect(parseServerMessage(JSON.stringify({ type: 'chat', participant_id: 'p' })).ok).toBe(false);
  });
});

describe('host removes a participant', () => {
  it('parses removed (the reason is optional) and the errors a refused remove gets', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'removed', reason: 'the host removed you from the room' }))).toEqual({
      ok: true,
      message: { type: 'removed', reason: 'the host removed you from the room' },
    });
    expect(parseServerMessage(JSON.stringify({ type: 'removed' }))).toEqual({ ok: true, message: { type: 'removed', reason: '' } });
    for (const code of ['forbidden', 'unknown_participant']) {
      expect(parseServerMessage(JSON.stringify({ type: 'error', code, message: 'm' }))).toEqual({
        ok: true,
        message: { type: 'error', code, message: 'm', fatal: false },
      });
    }
  });

  it('serialises remove_participant as docs/protocol.md shows it', () => {
    const msg: ClientMessage = { type: 'remove_participant', participant_id: 'p-22bb' };
    expect(JSON.parse(JSON.stringify(msg))).toEqual({ type: 'remove_participant', participant_id: 'p-22bb' });
  });
});

describe('simulcast layer preference', () => {
  it('serialises layer_preference as docs/protocol.md shows it', () => {
    const msg: ClientMessage = { type: 'layer_preference', producer_id: 'p-11aa:0', max_height: 360 };
    expect(JSON.stringify(msg)).toBe('{"type":"layer_preference","producer_id":"p-11aa:0","max_height":360}');
    const off: ClientMessage = { type: 'layer_preference', producer_id: 'p-11aa:0', max_height: 0 };
    expect(JSON.parse(JSON.stringify(off))).toEqual({ type: 'layer_preference', producer_id: 'p-11aa:0', max_height: 0 });
  });
});

describe('ICE restart', () => {
  it('serialises ice_restart as docs/protocol.md shows it', () => {
    const msg: ClientMessage = { type: 'ice_restart' };
    expect(JSON.stringify(msg)).toBe('{"type":"ice_restart"}');
  });
});
