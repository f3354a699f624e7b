import { describe, expect, it } from 'vitest';
import { REMINT_MARGIN_SECS, inviteFresh, inviteFromSearch, inviteLinkMode, invitePath, inviteProblem, joinPath } from './invite';

const INVITE = 'inv1.eyJpZCI6IngifQ.c2lnbmF0dXJl-_';

describe('inviteFromSearch', () => {
  it('reads ?invite= next to other parameters', () => {
    expect(inviteFromSearch(`?invite=${INVITE}`)).toBe(INVITE);
    expect(inviteFromSearch(`?name=Ada&invite=${INVITE}&autojoin=1`)).toBe(INVITE);
    expect(inviteFromSearch(`invite=${encodeURIComponent(` ${INVITE} `)}`)).toBe(INVITE);
  });

  it('is null without one', () => {
    expect(inviteFromSearch('')).toBeNull();
    expect(inviteFromSearch('?name=Ada')).toBeNull();
    expect(inviteFromSearch('?invite=')).toBeNull();
    expect(inviteFromSearch('?invite=%20%20')).toBeNull();
  });

  it('round-trips through invitePath', () => {
    const path = invitePath('r-1', INVITE);
    expect(path).toBe(`/room/r-1?invite=${INVITE}`);
    expect(inviteFromSearch(path.slice(path.indexOf('?')))).toBe(INVITE);
    expect(inviteFromSearch(invitePath('r 2', 'a+b/c=').split('?')[1])).toBe('a+b/c=');
  });
});

describe('joinPath', () => {
  it('uses the invite whenever the link has one', () => {
    expect(joinPath(INVITE, true)).toBe('invite');
    expect(joinPath(INVITE, false)).toBe('invite');
    expect(joinPath(INVITE, null)).toBe('invite');
  });

  it('joins directly on an open gateway, or while it is not known', () => {
    expect(joinPath(null, false)).toBe('direct');
    expect(joinPath(null, null)).toBe('direct');
  });

  it('says an invite is needed when the gateway wants one', () => {
    expect(joinPath(null, true)).toBe('needs_invite');
  });
});

describe('inviteProblem', () => {
  it('explains each invite error and says to ask the host', () => {
    for (const code of ['invite_invalid', 'invite_wrong_room', 'invite_expired', 'invite_exhausted', 'needs_invite', 'room_not_found']) {
      const p = inviteProblem(code);
      expect(p, code).not.toBeNull();
      expect(p!.code).toBe(code);
      expect(p!.title.length).toBeGreaterThan(10);
      expect(`${p!.title} ${p!.detail}`.toLowerCase()).toContain('ask the host');
    }
    expect(inviteProblem('invite_expired')!.title).toMatch(/expired/);
    expect(inviteProblem('invite_exhausted')!.title).toMatch(/used up/);
    expect(inviteProblem('invite_invalid')!.title).toMatch(/not valid/);
    expect(inviteProblem('invite_wrong_room')!.title).toMatch(/another room/);
  });

  it('leaves other errors alone', () => {
    for (const code of ['network', 'room_full', 'rate_limited', 'unauthorized', 'http_500', 'not_found']) {
      expect(inviteProblem(code), code).toBeNull();
    }
  });
});

describe('inviteLinkMode', () => {
  it('copies the room address on an open gateway', () => {
    expect(inviteLinkMode(false, 'publisher')).toBe('plain');
    expect(inviteLinkMode(false, 'host')).toBe('plain');
    expect(inviteLinkMode(null, null)).toBe('plain');
  });

  it('mints for the host on a gateway that needs invites, and nobody else', () => {
    expect(inviteLinkMode(true, 'host')).toBe('mint');
    expect(inviteLinkMode(true, 'publisher')).toBe('host_only');
    expect(inviteLinkMode(true, 'subscriber')).toBe('host_only');
    expect(inviteLinkMode(true, null)).toBe('host_only');
  });
});

describe('inviteFresh', () => {
  const exp = 1_800_000_000;
  it('re-mints some minutes before the invite expires', () => {
    expect(inviteFresh(exp, (exp - REMINT_MARGIN_SECS - 1) * 1000)).toBe(true);
    expect(inviteFresh(exp, (exp - REMINT_MARGIN_SECS) * 1000)).toBe(false);
    expect(inviteFresh(exp, exp * 1000)).toBe(false);
    expect(inviteFresh(null, 0)).toBe(false);
  });
});
