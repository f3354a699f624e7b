// The room page's end-to-end encryption bits: the badge, the key prompt, the "cannot decrypt" banner.
import { useState, type FormEvent } from 'react';
import { navigate } from '../routes';

export function E2eeBadge() {
  return (
    <span
      className="e2ee-badge"
      data-testid="e2ee-badge"
      title="End-to-end encrypted: the browsers encrypt video and sound with the key in the room link; the server cannot see or hear you."
    >
      <span aria-hidden="true">🔒</span> E2EE
    </span>
  );
}

/** Asks for the room key (an e2ee room opened without `#key=…`, or a key that does not work). */
export function KeyForm({ onKey, submitLabel, initial = '' }: { onKey: (key: string) => void; submitLabel: string; initial?: string }) {
  const [key, setKey] = useState(initial);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (key.trim()) onKey(key.trim());
  };
  return (
    <form className="stack" onSubmit={submit} aria-label="Room key" data-testid="key-form">
      <label htmlFor="e2ee-key">Room key</label>
      <input
        id="e2ee-key"
        value={key}
        autoComplete="off"
        spellCheck={false}
        placeholder="the text after #key= in the room link"
        onChange={(e) => setKey(e.target.value)}
        required
      />
      <button type="submit" className="primary">
        {submitLabel}
      </button>
    </form>
  );
}

export function KeyPrompt({ roomId, onKey }: { roomId: string; onKey: (key: string) => void }) {
  return (
    <main className="page narrow" data-testid="key-prompt">
      <h1>
        Room <code>{roomId}</code> <E2eeBadge />
      </h1>
      <div className="card stack">
        <p>
          This room is <strong>end-to-end encrypted</strong>. Its link has the key after <code>#key=</code>; this link
          does not. Paste the key (or open the full invite link) to join.
        </p>
        <KeyForm onKey={onKey} submitLabel="Use this key" />
        <button type="button" onClick={() => navigate('/')}>
          Back to the start page
        </button>
      </div>
    </main>
  );
}

/** Shown while some tiles cannot be decrypted: most likely our key differs from theirs. */
export function DecryptBanner({ names, onKey }: { names: string[]; onKey: (key: string) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="banner e2ee-failing" role="alert" data-testid="decrypt-banner">
      <span>
        <strong>Cannot decrypt</strong> {names.join(', ')} — check the room link’s key. Everyone needs the same link
        (with the same <code>#key=</code>).
      </span>
      {open ? (
        <KeyForm onKey={onKey} submitLabel="Rejoin with this key" />
      ) : (
        <button type="button" onClick={() => setOpen(true)}>
          Enter another key
        </button>
      )}
    </div>
  );
}
