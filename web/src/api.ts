// HTTP API of the gateway (see docs/protocol.md, "HTTP").

export interface Room {
  id: string;
  name: string;
  /** Given to the creator only (gateways with host roles): joining with it makes a host. */
  host_key?: string;
  /** The browsers encrypt the room's media end to end (the key is not the server's business). */
  e2ee?: boolean;
}

export interface JoinResponse {
  token: string;
  participant_id: string;
  ws_url: string;
  ice_servers: RTCIceServer[];
  /** 'host' | 'publisher' … when the gateway says. */
  role: string | null;
  /** Seconds the token is valid (gateways that refresh tokens over signaling). */
  expires_in: number | null;
  /** The room is end-to-end encrypted: media must be encrypted with the room key. */
  e2ee: boolean;
}

/** An HTTP error from the gateway: `{"error": code, "message": ...}` with a status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

async function request<T>(method: string, path: string, body?: unknown, token?: string | null): Promise<T> {
  let res: Response;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the server (${String(e)}).`);
  }
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const obj = (data ?? {}) as { error?: unknown; message?: unknown };
    const code = typeof obj.error === 'string' ? obj.error : `http_${res.status}`;
    const message =
      typeof obj.message === 'string' && obj.message ? obj.message : `${method} ${path} failed with HTTP ${res.status}`;
    throw new ApiError(res.status, code, message);
  }
  if (data === undefined) throw new ApiError(res.status, 'bad_response', `${method} ${path}: response is not JSON`);
  return data as T;
}

export async function createRoom(name: string, options: { e2ee?: boolean } = {}): Promise<Room> {
  // e2ee only when asked for: older gateways refuse unknown fields.
  const room = await request<Room>('POST', '/api/rooms', options.e2ee ? { name, e2ee: true } : { name });
  if (typeof room.host_key === 'string' && room.host_key) rememberHostKey(room.id, room.host_key);
  return room;
}

const hostKeyItem = (roomId: string) => `roomcast.host.${roomId}`;

/** The creator's host key of a room, kept in this browser so a (re)join makes a host. */
export function rememberHostKey(roomId: string, key: string): void {
  try {
    window.localStorage.setItem(hostKeyItem(roomId), key);
  } catch {
    // private mode: the creator joins as a normal participant
  }
}

export function hostKey(roomId: string): string | null {
  try {
    return window.localStorage.getItem(hostKeyItem(roomId));
  } catch {
    return null;
  }
}

export function getRoom(id: string): Promise<Room & { participants?: unknown[]; broadcast?: string }> {
  return request('GET', `/api/rooms/${encodeURIComponent(id)}`);
}

export async function joinRoom(roomId: string, name: string, key: string | null = hostKey(roomId)): Promise<JoinResponse> {
  // host_key only when there is one: older gateways refuse unknown fields.
  const body = key ? { name, host_key: key } : { name };
  return joinResponse(await request<Partial<JoinResponse>>('POST', `/api/rooms/${encodeURIComponent(roomId)}/join`, body));
}

/**
 * Joins with an invite link's invite (no API key needed; the token gets the invite's role).
 * `rejoin`: the join token this page had (a reconnect), so the server does not count a new use.
 */
export async function redeemInvite(roomId: string, invite: string, name: string, rejoin: string | null = null): Promise<JoinResponse> {
  const body = rejoin ? { invite, name, rejoin } : { invite, name };
  return joinResponse(await request<Partial<JoinResponse>>('POST', `/api/rooms/${encodeURIComponent(roomId)}/join`, body));
}

function joinResponse(res: Partial<JoinResponse>): JoinResponse {
  if (typeof res.token !== 'string') throw new ApiError(200, 'bad_response', 'join: response has no token');
  return {
    token: res.token,
    participant_id: typeof res.participant_id === 'string' ? res.participant_id : '',
    ws_url: typeof res.ws_url === 'string' ? res.ws_url : '/ws',
    ice_servers: Array.isArray(res.ice_servers) ? res.ice_servers : [],
    role: typeof res.role === 'string' ? res.role : null,
    expires_in: typeof res.expires_in === 'number' && res.expires_in > 0 ? res.expires_in : null,
    e2ee: res.e2ee === true,
  };
}

/** What the gateway tells browsers about itself (`GET /api/config`). */
export interface GatewayConfig {
  /** Joining needs an invite link (the gateway has an API key). */
  invite_required: boolean;
}

/** The gateway's config; null when it cannot say (an older gateway, or the network). */
export async function getConfig(): Promise<GatewayConfig | null> {
  try {
    const c = await request<Partial<GatewayConfig>>('GET', '/api/config');
    return { invite_required: c.invite_required === true };
  } catch {
    return null;
  }
}

export interface InviteInfo {
  role: string;
  expires_at: number;
  max_uses: number | null;
  uses: number;
}

/** Whether an invite would let us in now, without using it (throws the ApiError a join would get). */
export function checkInvite(roomId: string, invite: string): Promise<InviteInfo> {
  return request('POST', `/api/rooms/${encodeURIComponent(roomId)}/invites/check`, { invite });
}

export interface MintedInvite {
  invite: string;
  /** `/room/{id}?invite=…` */
  url: string;
  role: string;
  expires_at: number;
}

/** Mints an invite link (`token`: a host token of the room, on gateways with an API key). */
export function mintInvite(roomId: string, token: string | null, body: { role?: string; ttl_secs?: number; max_uses?: number }): Promise<MintedInvite> {
  return request('POST', `/api/rooms/${encodeURIComponent(roomId)}/invites`, body, token);
}

export interface BroadcastStart {
  state: string;
  hls_url?: string;
  watch_url?: string;
}

/** Starts the room's broadcast (`POST /api/rooms/{id}/broadcast`); 409 when it already runs. */
/** `token`: our join token (a host token may control the broadcast on gateways with an API key). */
export function startBroadcast(roomId: string, token: string | null): Promise<BroadcastStart> {
  return request('POST', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, {}, token);
}

/** Stops the room's broadcast (`DELETE /api/rooms/{id}/broadcast`); 409 when it is not running. */
export function stopBroadcast(roomId: string, token: string | null): Promise<{ state: string }> {
  return request('DELETE', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, undefined, token);
}
