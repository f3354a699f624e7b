import { describe, expect, it } from 'vitest';
import { parseRoomLink } from './roomLink';

describe('parseRoomLink and e2ee keys', () => {
  it('keeps the #key= of a room link', () => {
    expect(parseRoomLink('http://127.0.0.1:8080/room/r-1#key=abc_-1')).toEqual({ page: 'room', roomId: 'r-1', key: 'abc_-1' });
    expect(parseRoomLink('/room/r-1?x=1#key=k2')).toEqual({ page: 'room', roomId: 'r-1', key: 'k2' });
    expect(parseRoomLink('room/r-1#key=k3')).toEqual({ page: 'room', roomId: 'r-1', key: 'k3' });
  });

  it('has no key without one, and none for watch links', () => {
    expect(parseRoomLink('https://h/room/r-1#x')).toStrictEqual({ page: 'room', roomId: 'r-1' });
    expect(parseRoomLink('https://h/watch/r-1#key=k')).toStrictEqual({ page: 'watch', roomId: 'r-1' });
  });
});

describe('parseRoomLink and invite links', () => {
  it('keeps the ?invite= of a room link', () => {
    expect(parseRoomLink('http://127.0.0.1:8080/room/r-1?invite=inv1.abc.def')).toStrictEqual({ page: 'room', roomId: 'r-1', invite: 'inv1.abc.def' });
    expect(parseRoomLink('/room/r-1?name=Ada&invite=inv1.x.y#key=k')).toStrictEqual({ page: 'room', roomId: 'r-1', key: 'k', invite: 'inv1.x.y' });
    expect(parseRoomLink('room/r-1?invite=inv1.x.y')).toStrictEqual({ page: 'room', roomId: 'r-1', invite: 'inv1.x.y' });
  });

  it('has none without one, and none for watch links', () => {
    expect(parseRoomLink('https://h/room/r-1?name=Ada')).toStrictEqual({ page: 'room', roomId: 'r-1' });
    expect(parseRoomLink('https://h/watch/r-1?invite=inv1.x.y')).toStrictEqual({ page: 'watch', roomId: 'r-1' });
  });
});
