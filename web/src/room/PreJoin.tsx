// The lobby before joining a room: name, camera + microphone preview with device choosers,
// quality preset. The preview's tracks are handed over to the session on "Join".
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { navigate, watchPath } from '../routes';
import { DevicePickers, useDevices } from './DevicePickers';
import { CameraIcon, MicIcon } from './icons';
import { acquireLocalMedia, saveSettings, type LocalMedia, type MediaSettings } from './media';
import { E2eeBadge } from './E2eeUi';

export interface JoinChoice {
  media: LocalMedia | null;
  audioMuted: boolean;
  videoMuted: boolean;
}

/** Microphone level 0..1 of a stream, for the meter (an AnalyserNode, read each animation frame). */
function useMicLevel(stream: MediaStream | null): number {
  const [level, setLevel] = useState(0);
  useEffect(() => {
    const track = stream?.getAudioTracks()[0];
    if (!track || typeof AudioContext === 'undefined') {
      setLevel(0);
      return;
    }
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    const buf = new Uint8Array(analyser.fftSize);
    let raf = 0;
    let last = 0;
    const tick = (t: number) => {
      raf = requestAnimationFrame(tick);
      if (t - last < 100) return;
      last = t;
      analyser.getByteTimeDomainData(buf);
      let peak = 0;
      for (const v of buf) peak = Math.max(peak, Math.abs(v - 128) / 128);
      setLevel(track.enabled ? peak : 0);
    };
    raf = requestAnimationFrame(tick);
    return () => {
      cancelAnimationFrame(raf);
      source.disconnect();
      void ctx.close();
    };
  }, [stream]);
  return level;
}

export function PreJoin(props: {
  roomId: string;
  name: string;
  setName: (n: string) => void;
  settings: MediaSettings;
  setSettings: (s: MediaSettings) => void;
  onJoin: (choice: JoinChoice) => void;
  /** The room is end-to-end encrypted (and we have its key). */
  e2ee?: boolean;
}) {
  const { e2ee, roomId, name, setName, settings, setSettings, onJoin } = props;
  const [media, setMedia] = useState<LocalMedia | null>(null);
  const [cameraOn, setCameraOn] = useState(true);
  const [micOn, setMicOn] = useState(true);
  const videoRef = useRef<HTMLVideoElement>(null);
  const handedOver = useRef(false);
  const mediaRef = useRef<LocalMedia | null>(null);
  const devices = useDevices(media);
  const level = useMicLevel(media?.stream ?? null);

  // (Re)open the preview when the devices, the preset or the camera switch change.
  useEffect(() => {
    let alive = true;
    void acquireLocalMedia(settings, { video: cameraOn, audio: true }).then((m) => {
      if (!alive) {
        m.stream?.getTracks().forEach((t) => t.stop());
        return;
      }
      mediaRef.current?.stream?.getTracks().forEach((t) => t.stop());
      mediaRef.current = m;
      setMedia(m);
    });
    return () => {
      alive = false;
    };
  }, [settings.cameraId, settings.micId, settings.preset, cameraOn]);

  // Stop the preview when leaving the lobby without joining.
  useEffect(
    () => () => {
      if (!handedOver.current) mediaRef.current?.stream?.getTracks().forEach((t) => t.stop());
    },
    [],
  );

  useEffect(() => {
    const v = videoRef.current;
    if (!v) return;
    const video = media?.stream?.getVideoTracks()[0];
    v.srcObject = video ? new MediaStream([video]) : null;
    if (video) v.play().catch(() => undefined);
  }, [media]);

  useEffect(() => {
    media?.stream?.getAudioTracks().forEach((t) => (t.enabled = micOn));
  }, [media, micOn]);

  const change = (next: Partial<MediaSettings>) => {
    const s = { ...settings, ...next };
    setSettings(s);
    saveSettings(s);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    handedOver.current = true;
    onJoin({ media, audioMuted: !micOn, videoMuted: !cameraOn });
  };

  const hasVideo = Boolean(media?.stream?.getVideoTracks().length);
  return (
    <main className="page prejoin" data-testid="lobby">
      <h1>Join the room</h1>
      <p className="muted">
        Room <code>{roomId}</code> · check how you look and sound before you go in.
      </p>
      {e2ee && (
        <p className="hint">
          <E2eeBadge /> Video and sound are encrypted in your browser with the key from the room link; the server cannot see or hear them.
        </p>
      )}
      <div className="prejoin-grid">
        <section className="preview card" aria-label="Camera preview">
          <div className="tile preview-tile">
            <video ref={videoRef} className="mirrored" autoPlay playsInline muted aria-label="Your camera preview" />
            {!hasVideo && (
              <div className="tile-placeholder">
                <span className="placeholder-text">
                  {!cameraOn ? 'Camera is off' : media === null ? 'Starting camera…' : 'No camera'}
                </span>
              </div>
            )}
          </div>
          <div className="meter" role="meter" aria-label="Microphone level" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(level * 100)}>
            <span style={{ width: `${Math.min(100, Math.round(level * 140))}%` }} />
          </div>
          <div className="row center">
            <button type="button" className={`toggle ${micOn ? '' : 'off'}`} aria-pressed={!micOn} onClick={() => setMicOn(!micOn)}>
              <MicIcon off={!micOn} /> {micOn ? 'Mic on' : 'Mic off'}
            </button>
            <button type="button" className={`toggle ${cameraOn ? '' : 'off'}`} aria-pressed={!cameraOn} onClick={() => setCameraOn(!cameraOn)}>
              <CameraIcon off={!cameraOn} /> {cameraOn ? 'Camera on' : 'Camera off'}
            </button>
          </div>
          {media?.problem && (
            <p className="error" role="alert">
              {media.problem}
            </p>
          )}
        </section>
        <form onSubmit={submit} className="card stack" aria-label="Join">
          <label htmlFor="display-name">Your name</label>
          <input
            id="display-name"
            name="name"
            value={name}
            maxLength={64}
            autoComplete="nickname"
            autoFocus
            required
            onChange={(e) => setName(e.target.value)}
          />
          <DevicePickers settings={settings} devices={devices} onChange={change} idPrefix="lobby" />
          <button type="submit" className="primary big" disabled={media === null}>
            Join now
          </button>
          <p className="hint">
            Just watching?{' '}
            <a
              href={watchPath(roomId)}
              onClick={(e) => {
                e.preventDefault();
                navigate(watchPath(roomId));
              }}
            >
              Watch the broadcast instead
            </a>
          </p>
        </form>
      </div>
    </main>
  );
}
