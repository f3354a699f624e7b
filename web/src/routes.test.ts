import { describe, expect, it } from 'vitest';
import { parseRoomLink } from './lobby/roomLink';
import { parseRoute, roomPath } from './routes';

describe('parseRoute', () => {
  it('knows the three pages', () => {
    expect(parseRoute('/')).toEqual({ page: 'lobby' });
    expect(parseRoute('/room/r-1')).toEqual({ page: 'room', roomId: 'r-1' });
    expect(parseRoute('/room/r-1/')).toEqual({ page: 'room', roomId: 'r-1' });
    expect(parseRoute('/watch/a%20b')).toEqual({ page: 'watch', roomId: 'a b' });
    expect(parseRoute('/room/')).toEqual({ page: 'not_found', path: '/room/' });
    expect(parseRoute('/room/%E0%A4%A')).toEqual({ page: 'not_found', path: '/room/%E0%A4%A' });
    expect(parseRoute('/x/y/z').page).toBe('not_found');
  });
  it('round-trips ids through roomPath', () => {
    expect(parseRoute(roomPath('a/b c'))).toEqual({ page: 'room', roomId: 'a/b c' });
  });
});

describe('parseRoomLink', () => {
  it('reads full links, paths and bare ids', () => {
    expect(parseRoomLink('http://127.0.0.1:8080/room/r-3f2a?x=1')).toEqual({ page: 'room', roomId: 'r-3f2a' });
    expect(parseRoomLink(' https://h/watch/r-1 ')).toEqual({ page: 'watch', roomId: 'r-1' });
    expect(parseRoomLink('/room/r-9')).toEqual({ page: 'room', roomId: 'r-9' });
    expect(parseRoomLink('room/r-9#x')).toEqual({ page: 'room', roomId: 'r-9' });
    expect(parseRoomLink('r-3f2a')).toEqual({ page: 'room', roomId: 'r-3f2a' });
  });
  it('refuses what is not a room link', () => {
    expect(parseRoomLink('')).toBe(null);
    expect(parseRoomLink('https://h/other/r-1')).toBe(null);
    expect(parseRoomLink('hello world')).toBe(null);
  });
});
