// Invite links (`/room/{id}?invite=…`): on a gateway with an API key, a browser joins only with
// an invite the host (or the operator) minted. Pure decisions here; the calls are in api.ts.
import { roomPath } from '../routes';

/** The `invite` query parameter of a room URL, trimmed; null when absent or empty. */
export function inviteFromSearch(search: string): string | null {
  const invite = new URLSearchParams(search).get('invite');
  return invite && invite.trim() ? invite.trim() : null;
}

/** The room page's path with an invite. */
export function invitePath(roomId: string, invite: string): string {
  return `${roomPath(roomId)}?${new URLSearchParams({ invite }).toString()}`;
}

/**
 * How this page joins:
 * - `invite`: exchange the link's invite for a join token (`POST …/join {"invite"}`);
 * - `direct`: an open gateway, join as always (`POST …/join {"name"}`);
 * - `needs_invite`: the gateway wants an invite and the link has none: say so, do not try.
 * `inviteRequired` is null while the page does not know yet (or could not ask): join directly,
 * and the server's answer says what is wrong.
 */
export type JoinPath = 'invite' | 'direct' | 'needs_invite';

export function joinPath(invite: string | null, inviteRequired: boolean | null): JoinPath {
  if (invite) return 'invite';
  return inviteRequired === true ? 'needs_invite' : 'direct';
}

/** What went wrong with an invite, for the error page: a headline and what to do. */
export interface InviteProblem {
  code: string;
  title: string;
  detail: string;
}

const ASK = 'Ask the host for a new invite link.';

/**
 * The problem an API error code means for someone holding an invite link, or null when the
 * error is not about the invite (network trouble, a full room …: shown as usual).
 */
export function inviteProblem(code: string): InviteProblem | null {
  switch (code) {
    case 'invite_invalid':
      return {
        code,
        title: 'This invite link is not valid',
        detail: `It may have been cut off or changed when it was copied. Open the link exactly as you got it, or: ${ASK.toLowerCase()}`,
      };
    case 'invite_wrong_room':
      return { code, title: 'This invite link is for another room', detail: `Open the link exactly as you got it. ${ASK}` };
    case 'invite_expired':
      return { code, title: 'This invite link has expired', detail: ASK };
    case 'invite_exhausted':
      return { code, title: 'This invite link has been used up', detail: `It let in as many people as it allows. ${ASK}` };
    case 'needs_invite':
      return {
        code,
        title: 'You need an invite link to join this room',
        detail: 'This server only lets people in with an invite link. Ask the host to send you one.',
      };
    case 'room_not_found':
      return { code, title: 'This room does not exist (or was closed)', detail: ASK };
    default:
      return null;
  }
}

/**
 * What the "Copy invite link" button copies:
 * - `plain`: the room's address (an open gateway: anyone with it may join);
 * - `mint`: a fresh invite the host mints (a gateway that needs invites);
 * - `host_only`: nothing: on such a gateway only the host may mint invites.
 */
export type InviteLinkMode = 'plain' | 'mint' | 'host_only';

export function inviteLinkMode(inviteRequired: boolean | null, role: string | null): InviteLinkMode {
  if (inviteRequired !== true) return 'plain';
  return role === 'host' ? 'mint' : 'host_only';
}

/** What the room page asks for when it mints an invite for its "Copy invite link" button. */
export const PAGE_INVITE = { role: 'publisher', ttl_secs: 24 * 60 * 60 } as const;

/** A minted invite is re-minted this long before it expires (seconds). */
export const REMINT_MARGIN_SECS = 10 * 60;

/** Whether a minted invite (expiring at `expiresAt`, unix seconds) is still good to hand out at `nowMs`. */
export function inviteFresh(expiresAt: number | null, nowMs: number): boolean {
  return expiresAt !== null && nowMs / 1000 < expiresAt - REMINT_MARGIN_SECS;
}
