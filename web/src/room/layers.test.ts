import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LAYER_DEBOUNCE_MS, LayerPreferences, clampMaxHeight, heightBucket } from './layers';

describe('heightBucket', () => {
  it('rounds the device-pixel height up to 180/360/720/1080/2160', () => {
    expect(heightBucket(1)).toBe(180);
    expect(heightBucket(180)).toBe(180);
    expect(heightBucket(180.4)).toBe(360);
    expect(heightBucket(300)).toBe(360);
    expect(heightBucket(361)).toBe(720);
    expect(heightBucket(720)).toBe(720);
    expect(heightBucket(900)).toBe(1080);
    expect(heightBucket(1500)).toBe(2160);
    expect(heightBucket(5000)).toBe(2160);
  });

  it('multiplies by devicePixelRatio', () => {
    expect(heightBucket(170, 2)).toBe(360);
    expect(heightBucket(300, 2)).toBe(720);
    expect(heightBucket(90, 2)).toBe(180);
    expect(heightBucket(300, 0)).toBe(360); // a nonsense ratio counts as 1
    expect(heightBucket(300, Number.NaN)).toBe(360);
  });

  it('is 0 when the video is not shown', () => {
    expect(heightBucket(400, 1, false)).toBe(0);
    expect(heightBucket(0)).toBe(0);
    expect(heightBucket(-3)).toBe(0);
    expect(heightBucket(Number.NaN)).toBe(0);
  });

  it('clamps to the protocol range', () => {
    expect(clampMaxHeight(-1)).toBe(0);
    expect(clampMaxHeight(99999)).toBe(4320);
    expect(clampMaxHeight(359.6)).toBe(360);
    expect(clampMaxHeight(Number.NaN)).toBe(0);
  });
});

describe('LayerPreferences', () => {
  let sent: [string, number][];
  let subscribed: Set<string>;
  let socketOpen: boolean;
  const make = () =>
    new LayerPreferences({
      send: (id, h) => {
        if (!socketOpen) return false;
        sent.push([id, h]);
        return true;
      },
      canSend: (id) => subscribed.has(id),
    });

  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    subscribed = new Set(['p-a:0', 'p-b:0']);
    socketOpen = true;
  });
  afterEach(() => vi.useRealTimers());

  it('sends after the debounce, only the last value of a burst', () => {
    const l = make();
    l.set('p-a:0', 180);
    l.set('p-a:0', 360);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS - 1);
    l.set('p-a:0', 720); // still resizing: the quiet time starts again
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS - 1);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([['p-a:0', 720]]);
    expect(l.current.get('p-a:0')).toBe(720);
  });

  it('sends only when the bucket changes', () => {
    const l = make();
    l.set('p-a:0', 360);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    l.set('p-a:0', 360);
    l.set('p-a:0', 720);
    l.set('p-a:0', 360); // back where the server is: nothing to say
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS * 3);
    expect(sent).toEqual([['p-a:0', 360]]);
    l.set('p-a:0', 0); // hidden
    l.set('p-b:0', 180);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    expect(sent).toEqual([
      ['p-a:0', 360],
      ['p-a:0', 0],
      ['p-b:0', 180],
    ]);
  });

  it('waits until the producer is subscribed, then sends on flush', () => {
    const l = make();
    l.set('p-c:0', 720);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    expect(sent).toEqual([]);
    subscribed.add('p-c:0'); // the subscribe answer went out
    l.flush();
    expect(sent).toEqual([['p-c:0', 720]]);
  });

  it('tries again when the socket could not send', () => {
    const l = make();
    socketOpen = false;
    l.set('p-a:0', 720);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    expect(l.current.size).toBe(0);
    socketOpen = true;
    l.flush();
    expect(sent).toEqual([['p-a:0', 720]]);
  });

  it('sends everything again after a reconnect (reset + flush)', () => {
    const l = make();
    l.set('p-a:0', 720);
    l.set('p-b:0', 180);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    expect(sent).toHaveLength(2);
    l.reset();
    l.flush();
    expect(sent.slice(2)).toEqual([
      ['p-a:0', 720],
      ['p-b:0', 180],
    ]);
  });

  it('a pinned value wins over the tile and is sent at once; unpinning restores the tile', () => {
    const l = make();
    l.set('p-a:0', 720);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    l.pin('p-a:0', 180);
    expect(sent.at(-1)).toEqual(['p-a:0', 180]);
    l.set('p-a:0', 1080);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    expect(sent.at(-1)).toEqual(['p-a:0', 180]);
    l.pin('p-a:0', null);
    expect(sent.at(-1)).toEqual(['p-a:0', 1080]);
    expect(l.wantedFor('p-a:0')).toBe(1080);
  });

  it('forgets a producer whose tile went away; cancel stops a pending send', () => {
    const l = make();
    l.set('p-a:0', 720);
    l.forget('p-a:0');
    l.set('p-b:0', 360);
    l.cancel();
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS * 2);
    expect(sent).toEqual([]);
    l.flush();
    expect(sent).toEqual([['p-b:0', 360]]);
  });

  it('sends nothing more once disabled (a server without layer_preference)', () => {
    const l = make();
    l.set('p-a:0', 720);
    l.disable();
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    l.set('p-a:0', 180);
    l.pin('p-b:0', 360);
    vi.advanceTimersByTime(LAYER_DEBOUNCE_MS);
    l.flush();
    expect(sent).toEqual([]);
  });
});
