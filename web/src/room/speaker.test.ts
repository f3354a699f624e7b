import { describe, expect, it } from 'vitest';
import { NO_SPEAKER, nextActiveSpeaker, type SpeakerState } from './speaker';

const lv = (o: Record<string, number>) => new Map(Object.entries(o));

function run(steps: [number, Record<string, number>][]): (string | null)[] {
  let s: SpeakerState = NO_SPEAKER;
  return steps.map(([t, levels]) => (s = nextActiveSpeaker(lv(levels), s, t)).id);
}

describe('nextActiveSpeaker', () => {
  it('highlights the loudest voice above the threshold', () => {
    expect(run([[0, { a: 0.3, b: 0.1 }]])).toEqual(['a']);
    expect(run([[0, { a: 0.01, b: 0.005 }]])).toEqual([null]);
  });

  it('does not flicker between two similar voices', () => {
    expect(
      run([
        [0, { a: 0.3, b: 0.1 }],
        [500, { a: 0.3, b: 0.35 }],
        [1000, { a: 0.25, b: 0.3 }],
      ]),
    ).toEqual(['a', 'a', 'a']);
  });

  it('a clearly louder voice takes over at once', () => {
    expect(
      run([
        [0, { a: 0.1, b: 0 }],
        [500, { a: 0.1, b: 0.4 }],
      ]),
    ).toEqual(['a', 'b']);
  });

  it('after the speaker stops, the next one takes over once the hold expires', () => {
    expect(
      run([
        [0, { a: 0.3, b: 0 }],
        [500, { a: 0, b: 0.2 }],
        [1300, { a: 0, b: 0.2 }],
      ]),
    ).toEqual(['a', 'a', 'b']);
  });

  it('clears after a long silence, or at once when the speaker left', () => {
    expect(
      run([
        [0, { a: 0.3 }],
        [2000, { a: 0 }],
        [4500, { a: 0 }],
      ]),
    ).toEqual(['a', 'a', null]);
    expect(
      run([
        [0, { a: 0.3, b: 0 }],
        [100, { b: 0 }],
      ]),
    ).toEqual(['a', null]);
  });
});
