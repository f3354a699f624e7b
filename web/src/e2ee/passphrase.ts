// The room passphrase travels in the link's fragment (`/room/{id}#key=…`): browsers never send
// the fragment to the server, so the gateway that forwards the media never learns the key.

/** A fresh passphrase: 16 random bytes (128 bits), base64url without padding (22 characters). */
export function generatePassphrase(random: (buf: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)): string {
  const buf = random(new Uint8Array(16));
  let bin = '';
  for (const b of buf) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The `key` of a location hash (`#key=abc` or `key=abc&…`); null when absent or empty. */
export function keyFromHash(hash: string): string | null {
  const text = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!text) return null;
  const key = new URLSearchParams(text).get('key');
  return key && key.trim() ? key.trim() : null;
}

/** `path` with `#key=…` (replacing any fragment it had). */
export function withKey(path: string, key: string | null): string {
  const base = path.split('#')[0];
  return key ? `${base}#${new URLSearchParams({ key }).toString()}` : base;
}
