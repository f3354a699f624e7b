// Local camera and microphone.
import type { MediaStatus } from './state';

export interface LocalMedia {
  stream: MediaStream | null;
  camera: MediaStatus;
  mic: MediaStatus;
  /** Why something is missing, for a notice. */
  problem: string | null;
}

const VIDEO: MediaTrackConstraints = {
  width: { ideal: 640 },
  height: { ideal: 360 },
  frameRate: { ideal: 30, max: 30 },
};

const AUDIO: MediaTrackConstraints = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};

function describe(e: unknown): string {
  if (e instanceof DOMException) {
    if (e.name === 'NotAllowedError') return 'permission to use the camera/microphone was denied';
    if (e.name === 'NotFoundError') return 'no camera or microphone was found';
    if (e.name === 'NotReadableError') return 'the camera or microphone is in use by another program';
    return `${e.name}: ${e.message}`;
  }
  return String(e);
}

/** Asks for camera + microphone, falling back to one of them, then to nothing (watch-only). */
export async function acquireLocalMedia(): Promise<LocalMedia> {
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) {
    return {
      stream: null,
      camera: 'unavailable',
      mic: 'unavailable',
      problem: 'This page cannot use a camera here (it needs https or localhost).',
    };
  }
  let firstError: unknown;
  try {
    const stream = await md.getUserMedia({ video: VIDEO, audio: AUDIO });
    return { stream, camera: 'ok', mic: 'ok', problem: null };
  } catch (e) {
    firstError = e;
  }
  try {
    const stream = await md.getUserMedia({ video: VIDEO });
    return { stream, camera: 'ok', mic: 'unavailable', problem: `Microphone unavailable: ${describe(firstError)}.` };
  } catch {
    // try audio only
  }
  try {
    const stream = await md.getUserMedia({ audio: AUDIO });
    return { stream, camera: 'unavailable', mic: 'ok', problem: `Camera unavailable: ${describe(firstError)}.` };
  } catch {
    // nothing at all
  }
  return {
    stream: null,
    camera: 'unavailable',
    mic: 'unavailable',
    problem: `You joined without camera and microphone: ${describe(firstError)}.`,
  };
}

/** Puts VP8 first in a video transceiver's codec list (the SFU keys keyframe handling on VP8). */
export function preferVp8(transceiver: RTCRtpTransceiver): void {
  try {
    const caps = RTCRtpReceiver.getCapabilities?.('video');
    if (!caps || typeof transceiver.setCodecPreferences !== 'function') return;
    const vp8 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/vp8');
    if (vp8.length === 0) return;
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== 'video/vp8');
    transceiver.setCodecPreferences([...vp8, ...rest]);
  } catch {
    // Not fatal: the browser's default order is used.
  }
}
