import { useEffect, useRef, useState } from 'react';

export interface VideoTileProps {
  stream: MediaStream | null;
  name: string;
  /** Extra text after the name, e.g. "(you)". */
  suffix?: string;
  muted: boolean;
  mirrored?: boolean;
  /** What to say when there is no picture. */
  placeholder: string;
  /** Status icons shown next to the name (e.g. mic off). */
  badges?: string[];
  /** Called when the browser refused to play with sound; the tile falls back to muted. */
  onAutoplayBlocked?: () => void;
  testId?: string;
  participantId?: string;
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.slice(0, 2).map((p) => p[0]?.toUpperCase() ?? '');
  return letters.join('') || '?';
}

/** True while the stream has a live, unmuted video track. */
function useHasPicture(stream: MediaStream | null): boolean {
  const [has, setHas] = useState(false);
  useEffect(() => {
    if (!stream) {
      setHas(false);
      return;
    }
    const update = () =>
      setHas(stream.getVideoTracks().some((t) => t.readyState === 'live' && !t.muted && t.enabled));
    update();
    const tracks = stream.getVideoTracks();
    for (const t of tracks) {
      t.addEventListener('mute', update);
      t.addEventListener('unmute', update);
      t.addEventListener('ended', update);
    }
    stream.addEventListener('addtrack', update);
    stream.addEventListener('removetrack', update);
    const timer = window.setInterval(update, 1000); // `enabled` has no event
    return () => {
      for (const t of tracks) {
        t.removeEventListener('mute', update);
        t.removeEventListener('unmute', update);
        t.removeEventListener('ended', update);
      }
      stream.removeEventListener('addtrack', update);
      stream.removeEventListener('removetrack', update);
      window.clearInterval(timer);
    };
  }, [stream]);
  return has;
}

export function VideoTile(props: VideoTileProps) {
  const { stream, name, suffix, muted, mirrored, placeholder, badges, onAutoplayBlocked, testId, participantId } = props;
  const ref = useRef<HTMLVideoElement>(null);
  const hasPicture = useHasPicture(stream);
  const blockedRef = useRef(onAutoplayBlocked);
  blockedRef.current = onAutoplayBlocked;

  useEffect(() => {
    const video = ref.current;
    if (!video) return;
    if (video.srcObject !== stream) video.srcObject = stream;
    if (!stream) return;
    video.muted = muted;
    video.play().catch((e: unknown) => {
      if (e instanceof DOMException && e.name === 'NotAllowedError' && !video.muted) {
        // Autoplay with sound is not allowed before a user gesture: play muted instead.
        video.muted = true;
        blockedRef.current?.();
        video.play().catch(() => undefined);
      }
    });
    // `muted` is applied by the effect below; only a new stream restarts playback.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stream]);

  useEffect(() => {
    const video = ref.current;
    if (!video) return;
    video.muted = muted;
    if (!muted && video.srcObject) video.play().catch(() => undefined);
  }, [muted]);

  return (
    <figure className="tile" data-testid={testId} data-participant-id={participantId}>
      <video ref={ref} className={mirrored ? 'mirrored' : undefined} autoPlay playsInline aria-label={`Video of ${name}`} />
      {!hasPicture && (
        <div className="tile-placeholder" aria-hidden="true">
          <span className="avatar">{initials(name)}</span>
          <span className="placeholder-text">{placeholder}</span>
        </div>
      )}
      <figcaption className="tile-label">
        <span className="tile-name">{name}</span>
        {suffix && <span className="tile-suffix"> {suffix}</span>}
        {badges?.map((b) => (
          <span key={b} className="badge">
            {b}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
