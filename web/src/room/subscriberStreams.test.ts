import { describe, expect, it } from 'vitest';
import { tileStreams, type ReceiveSide } from './subscriberStreams';

type Track = { id: string };
type Stream = { tracks: Track[] };
const streams = (tr: ReceiveSide<Track>[], tiles: { key: string; mids: string[] }[], prev: ReadonlyMap<string, Stream>) =>
  tileStreams<Track, Stream>(tr, tiles, prev, (s) => s.tracks, (t) => t.id, (tracks) => ({ tracks }));
const recv = (mid: string, id: string, dir: RTCRtpTransceiverDirection = 'recvonly'): ReceiveSide<Track> => ({ mid, currentDirection: dir, track: { id } });

describe('tileStreams', () => {
  it("groups each tile's live m-lines into one stream", () => {
    const next = streams([recv('0', 'a-audio'), recv('1', 'a-video'), recv('2', 'b-video')], [{ key: 'a', mids: ['0', '1'] }, { key: 'b', mids: ['2'] }], new Map());
    expect(next?.get('a')?.tracks.map((t) => t.id)).toEqual(['a-audio', 'a-video']);
    expect(next?.get('b')?.tracks.map((t) => t.id)).toEqual(['b-video']);
  });

  it('keeps the stream of a tile whose tracks did not change, and says when nothing changed', () => {
    const tr = [recv('0', 'a-audio'), recv('1', 'a-video')];
    const tiles = [{ key: 'a', mids: ['0', '1'] }];
    const first = streams(tr, tiles, new Map())!;
    expect(streams(tr, tiles, first)).toBeNull();
    const more = streams([...tr, recv('2', 'b-video')], [...tiles, { key: 'b', mids: ['2'] }], first)!;
    expect(more.get('a')).toBe(first.get('a'));
  });

  it('leaves out inactive and stopped m-lines, and tiles without tracks', () => {
    const next = streams([recv('0', 'gone', 'inactive'), recv('1', 'stopped', 'stopped'), recv('2', 'c')], [{ key: 'a', mids: ['0', '1'] }, { key: 'c', mids: ['2'] }], new Map());
    expect([...next!.keys()]).toEqual(['c']);
    // The last tile going away is a change (an empty map replaces the old one).
    expect(streams([], [], next!)?.size).toBe(0);
  });
});
