import { useEffect, useRef, useState } from 'react';
import { describeQuality, type Quality } from './quality';
import type { TileQuality } from './stats';
import { MicIcon, SignalBars } from './icons';
import type { DecryptState } from '../e2ee/status';
import { heightBucket } from './layers';

export interface VideoTileProps {
  stream: MediaStream | null;
  name: string;
  /** Extra text after the name, e.g. "(you)" or "· screen". */
  suffix?: string;
  /** Play without sound (our own tiles, screen shares, or autoplay blocked). */
  muted: boolean;
  mirrored?: boolean;
  /** A screen share: the whole picture is shown (contain), not cropped. */
  screen?: boolean;
  /** What to say when there is no picture. */
  placeholder: string;
  /** The participant says its microphone is muted / camera is off. */
  audioMuted?: boolean;
  videoMuted?: boolean;
  speaking?: boolean;
  quality?: TileQuality | null;
  /** Emojis to float over the tile. */
  reactions?: { id: number; emoji: string }[];
  /** Audio output device (setSinkId). */
  sinkId?: string | null;
  /** Called when the browser refused to play with sound; the tile falls back to muted. */
  onAutoplayBlocked?: () => void;
  testId?: string;
  participantId?: string;
  style?: React.CSSProperties;
  /** E2EE rooms: whether this tile's media decrypts, and how many frames failed. */
  decrypt?: DecryptState;
  decryptFailures?: number;
  /** The host's "Remove" action (asks for confirmation first). */
  onRemove?: () => void;
  /** Remote tiles: the producer of the video shown, whose simulcast layer follows the tile's size. */
  videoProducerId?: string | null;
  /**
   * Called with the `max_height` the video needs (its rendered height × devicePixelRatio, rounded
   * up to a bucket; 0 while it is off-screen or the camera is off), and null when the tile stops
   * showing that producer.
   */
  onVideoHeight?: (producerId: string, maxHeight: number | null) => void;
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
    const update = () => setHas(stream.getVideoTracks().some((t) => t.readyState === 'live' && !t.muted && t.enabled));
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

/** The video element's rendered height (CSS pixels) and whether any of it is on screen. */
function useRendered(ref: React.RefObject<HTMLElement | null>, enabled: boolean): { height: number; visible: boolean } {
  const [rendered, setRendered] = useState({ height: 0, visible: true });
  useEffect(() => {
    const el = ref.current;
    if (!el || !enabled) return;
    const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(() => setRendered((r) => (r.height === el.clientHeight ? r : { ...r, height: el.clientHeight }))) : null;
    ro?.observe(el);
    setRendered((r) => ({ ...r, height: el.clientHeight }));
    const io =
      typeof IntersectionObserver === 'function'
        ? new IntersectionObserver((entries) => {
            const e = entries[entries.length - 1];
            if (e) setRendered((r) => (r.visible === e.isIntersecting ? r : { ...r, visible: e.isIntersecting }));
          })
        : null;
    io?.observe(el);
    return () => {
      ro?.disconnect();
      io?.disconnect();
    };
  }, [ref, enabled]);
  return rendered;
}

const BARS: Record<Quality, number> = { good: 3, fair: 2, poor: 1, unknown: 0 };

export function VideoTile(props: VideoTileProps) {
  const { stream, name, suffix, muted, mirrored, screen, placeholder, audioMuted, videoMuted, speaking, quality, reactions } = props;
  const { sinkId, onAutoplayBlocked, testId, participantId, style, decrypt, decryptFailures, onRemove, videoProducerId, onVideoHeight } = props;
  const [confirming, setConfirming] = useState(false);
  const cannotDecrypt = decrypt === 'failing';
  const ref = useRef<HTMLVideoElement>(null);
  const hasPicture = useHasPicture(stream) && !videoMuted;
  const blockedRef = useRef(onAutoplayBlocked);
  blockedRef.current = onAutoplayBlocked;
  const heightRef = useRef(onVideoHeight);
  heightRef.current = onVideoHeight;
  const rendered = useRendered(ref, Boolean(videoProducerId && onVideoHeight));
  const maxHeight = heightBucket(rendered.height, window.devicePixelRatio, rendered.visible && !videoMuted);

  // Simulcast: tell the session how big this producer's video is shown (it debounces).
  useEffect(() => {
    if (videoProducerId) heightRef.current?.(videoProducerId, maxHeight);
  }, [videoProducerId, maxHeight]);
  useEffect(() => {
    if (!videoProducerId) return;
    return () => heightRef.current?.(videoProducerId, null);
  }, [videoProducerId]);

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

  useEffect(() => {
    const video = ref.current as (HTMLVideoElement & { setSinkId?: (id: string) => Promise<void> }) | null;
    if (!video || muted || !video.setSinkId) return;
    video.setSinkId(sinkId ?? '').catch((e: unknown) => console.warn('[roomcast] setSinkId failed:', e));
  }, [sinkId, muted]);

  const q = quality?.quality ?? 'unknown';
  const qualityText = describeQuality(q, quality?.sample ?? null);
  const classes = ['tile', screen ? 'screen' : '', speaking ? 'speaking' : ''].filter(Boolean).join(' ');
  return (
    <figure
      className={classes}
      data-testid={testId}
      data-participant-id={participantId}
      data-audio-muted={audioMuted ? 'true' : 'false'}
      data-video-muted={videoMuted ? 'true' : 'false'}
      data-speaking={speaking ? 'true' : 'false'}
      data-quality={q}
      data-e2ee={decrypt}
      data-decrypt-failures={decryptFailures}
      style={style}
    >
      <video ref={ref} className={mirrored ? 'mirrored' : undefined} autoPlay playsInline aria-label={`Video of ${name}${suffix ? ` ${suffix}` : ''}`} />
      {cannotDecrypt && (
        <div className="tile-placeholder cannot-decrypt" role="status" data-testid="cannot-decrypt">
          <span className="avatar" aria-hidden="true">
            🔒
          </span>
          <span className="placeholder-text">Cannot decrypt — check the room link’s key</span>
          {decryptFailures !== undefined && <span className="placeholder-detail">{decryptFailures} frames failed to decrypt</span>}
        </div>
      )}
      {!hasPicture && !cannotDecrypt && (
        <div className="tile-placeholder" aria-hidden="true">
          <span className="avatar">{initials(name)}</span>
          <span className="placeholder-text">{videoMuted ? 'Camera off' : placeholder}</span>
        </div>
      )}
      {reactions && reactions.length > 0 && (
        <div className="tile-reactions" aria-hidden="true">
          {reactions.map((r) => (
            <span key={r.id} className="reaction-bubble">
              {r.emoji}
            </span>
          ))}
        </div>
      )}
      <figcaption className="tile-label">
        {audioMuted && (
          <span className="tile-muted" role="img" aria-label="Microphone muted" title="Microphone muted" data-testid="muted-icon">
            <MicIcon off />
          </span>
        )}
        <span className="tile-name">{name}</span>
        {suffix && <span className="tile-suffix"> {suffix}</span>}
      </figcaption>
      {onRemove && !confirming && (
        <button type="button" className="tile-remove" onClick={() => setConfirming(true)} aria-label={`Remove ${name} from the room`}>
          Remove
        </button>
      )}
      {onRemove && confirming && (
        <div className="tile-confirm" role="alertdialog" aria-label={`Remove ${name}?`} data-testid="remove-confirm">
          <span>
            Remove <strong>{name}</strong> from the room?
          </span>
          <div className="row">
            <button
              type="button"
              className="danger"
              onClick={() => {
                setConfirming(false);
                onRemove();
              }}
            >
              Remove
            </button>
            <button type="button" onClick={() => setConfirming(false)} autoFocus>
              Cancel
            </button>
          </div>
        </div>
      )}
      {quality !== undefined && (
        <span className={`tile-quality q-${q}`} role="img" aria-label={qualityText} title={qualityText}>
          <SignalBars level={BARS[q]} />
        </span>
      )}
    </figure>
  );
}
