// HTTP API of the gateway (see docs/protocol.md, "HTTP").

export interface Room {
  id: string;
  name: string;
}

export interface JoinResponse {
  token: string;
  participant_id: string;
  ws_url: string;
  ice_servers: RTCIceServer[];
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

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? undefined : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
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

export function createRoom(name: string): Promise<Room> {
  return request<Room>('POST', '/api/rooms', { name });
}

export function getRoom(id: string): Promise<Room & { participants?: unknown[]; broadcast?: string }> {
  return request('GET', `/api/rooms/${encodeURIComponent(id)}`);
}

export async function joinRoom(roomId: string, name: string): Promise<JoinResponse> {
  const res = await request<Partial<JoinResponse>>('POST', `/api/rooms/${encodeURIComponent(roomId)}/join`, { name });
  if (typeof res.token !== 'string') throw new ApiError(200, 'bad_response', 'join: response has no token');
  return {
    token: res.token,
    participant_id: typeof res.participant_id === 'string' ? res.participant_id : '',
    ws_url: typeof res.ws_url === 'string' ? res.ws_url : '/ws',
    ice_servers: Array.isArray(res.ice_servers) ? res.ice_servers : [],
  };
}

export interface BroadcastStart {
  state: string;
  hls_url?: string;
  watch_url?: string;
}

/** Starts the room's broadcast (`POST /api/rooms/{id}/broadcast`); 409 when it already runs. */
export function startBroadcast(roomId: string): Promise<BroadcastStart> {
  return request('POST', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, {});
}

/** Stops the room's broadcast (`DELETE /api/rooms/{id}/broadcast`); 409 when it is not running. */
export function stopBroadcast(roomId: string): Promise<{ state: string }> {
  return request('DELETE', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`);
}
