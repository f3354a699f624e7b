import { describe, expect, it } from 'vitest';
import { parseServerMessage, resolveWsUrl } from './signaling';

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
