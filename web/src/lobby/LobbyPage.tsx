import { useState, type FormEvent } from 'react';
import { createRoom } from '../api';
import { generatePassphrase, withKey } from '../e2ee/passphrase';
import { invitePath } from '../room/invite';
import { navigate, roomPath, watchPath } from '../routes';
import { parseRoomLink } from './roomLink';

export function LobbyPage() {
  const [roomName, setRoomName] = useState('');
  const [e2ee, setE2ee] = useState(false);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);
  const [link, setLink] = useState('');
  const [linkError, setLinkError] = useState<string | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setCreating(true);
    setCreateError(null);
    try {
      // The passphrase is made here and lives only in the link's fragment: the server never sees it.
      const key = e2ee ? generatePassphrase() : null;
      const room = await createRoom(roomName.trim() || 'Room', { e2ee });
      navigate(withKey(roomPath(room.id), key));
    } catch (err) {
      setCreateError(err instanceof Error ? err.message : String(err));
      setCreating(false);
    }
  };

  const open = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseRoomLink(link);
    if (!parsed) {
      setLinkError('That does not look like a room link. Paste something like https://…/room/abc123');
      return;
    }
    setLinkError(null);
    if (parsed.page === 'watch') navigate(watchPath(parsed.roomId));
    else navigate(withKey(parsed.invite ? invitePath(parsed.roomId, parsed.invite) : roomPath(parsed.roomId), parsed.key ?? null));
  };

  return (
    <main className="page narrow">
      <h1>Roomcast</h1>
      <p className="muted">Meet in a room; everyone else watches the live broadcast.</p>

      <form className="card stack" onSubmit={create} aria-labelledby="create-title">
        <h2 id="create-title">Create a room</h2>
        <label htmlFor="room-name">Room name</label>
        <input
          id="room-name"
          value={roomName}
          placeholder="Standup"
          maxLength={100}
          onChange={(e) => setRoomName(e.target.value)}
        />
        <label className="check">
          <input type="checkbox" checked={e2ee} onChange={(e) => setE2ee(e.target.checked)} data-testid="e2ee-option" />
          End-to-end encrypted
        </label>
        {e2ee && (
          <p className="hint" id="e2ee-hint">
            Your browsers encrypt the video and sound with a key that goes in the room link (after the #) and never
            reaches the server. Share the whole link. An encrypted room cannot be broadcast.
          </p>
        )}
        <button type="submit" className="primary" disabled={creating}>
          {creating ? 'Creating…' : 'Create room'}
        </button>
        {createError && (
          <p className="error" role="alert">
            {createError}
          </p>
        )}
      </form>

      <form className="card stack" onSubmit={open} aria-labelledby="join-title">
        <h2 id="join-title">Join with a link</h2>
        <label htmlFor="room-link">Room link or id</label>
        <input
          id="room-link"
          value={link}
          placeholder="https://…/room/abc123"
          onChange={(e) => setLink(e.target.value)}
          aria-invalid={linkError ? true : undefined}
          aria-describedby={linkError ? 'room-link-error' : undefined}
        />
        <button type="submit">Open</button>
        {linkError && (
          <p className="error" id="room-link-error" role="alert">
            {linkError}
          </p>
        )}
      </form>
    </main>
  );
}
