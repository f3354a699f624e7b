// Local camera, microphone and screen: getUserMedia with the chosen devices and preset,
// device lists, and the user's remembered choices.
import { DEFAULT_PRESET, audioConstraints, parsePreset, videoConstraints, type PresetId } from './presets';
import type { MediaStatus } from './state';

export interface MediaSettings {
  cameraId: string | null;
  micId: string | null;
  /** Audio output for remote participants (setSinkId), where the browser supports it. */
  speakerId: string | null;
  preset: PresetId;
}

export const DEFAULT_SETTINGS: MediaSettings = { cameraId: null, micId: null, speakerId: null, preset: DEFAULT_PRESET };

const SETTINGS_KEY = 'roomcast.media';

export function loadSettings(): MediaSettings {
  try {
    const raw = window.localStorage.getItem(SETTINGS_KEY);
    if (!raw) return DEFAULT_SETTINGS;
    const v = JSON.parse(raw) as Partial<Record<keyof MediaSettings, unknown>>;
    const str = (x: unknown) => (typeof x === 'string' && x ? x : null);
    return {
      cameraId: str(v.cameraId),
      micId: str(v.micId),
      speakerId: str(v.speakerId),
      preset: parsePreset(str(v.preset)) ?? DEFAULT_PRESET,
    };
  } catch {
    return DEFAULT_SETTINGS;
  }
}

export function saveSettings(s: MediaSettings): void {
  try {
    window.localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
  } catch {
    // private mode: fine
  }
}

export interface LocalMedia {
  stream: MediaStream | null;
  camera: MediaStatus;
  mic: MediaStatus;
  /** Why something is missing, for a notice. */
  problem: string | null;
}

export function describeMediaError(e: unknown): string {
  if (e instanceof DOMException) {
    if (e.name === 'NotAllowedError') return 'permission to use the camera/microphone was denied';
    if (e.name === 'NotFoundError') return 'no camera or microphone was found';
    if (e.name === 'NotReadableError') return 'the camera or microphone is in use by another program';
    if (e.name === 'OverconstrainedError') return 'the chosen device is not available';
    return `${e.name}: ${e.message}`;
  }
  return String(e);
}

function mediaDevices(): MediaDevices | null {
  const md = navigator.mediaDevices as MediaDevices | undefined;
  return typeof md?.getUserMedia === 'function' ? md : null;
}

/** getUserMedia; a remembered device that is gone falls back to the default one. */
async function gum(constraints: { video?: MediaTrackConstraints; audio?: MediaTrackConstraints }): Promise<MediaStream> {
  const md = mediaDevices();
  if (!md) throw new DOMException('getUserMedia is not available here (it needs https or localhost)', 'NotSupportedError');
  try {
    return await md.getUserMedia(constraints);
  } catch (e) {
    const pinned = Boolean(constraints.video?.deviceId || constraints.audio?.deviceId);
    if (!pinned || !(e instanceof DOMException) || (e.name !== 'OverconstrainedError' && e.name !== 'NotFoundError')) throw e;
    const strip = (c?: MediaTrackConstraints) => {
      if (!c) return undefined;
      const { deviceId: _drop, ...rest } = c;
      void _drop;
      return rest;
    };
    return md.getUserMedia({ video: strip(constraints.video), audio: strip(constraints.audio) });
  }
}

/** Asks for camera + microphone, falling back to one of them, then to nothing (watch-only). */
export async function acquireLocalMedia(settings: MediaSettings, want = { video: true, audio: true }): Promise<LocalMedia> {
  if (!mediaDevices()) {
    return {
      stream: null,
      camera: 'unavailable',
      mic: 'unavailable',
      problem: 'This page cannot use a camera here (it needs https or localhost).',
    };
  }
  const video = want.video ? videoConstraints(settings.preset, settings.cameraId) : undefined;
  const audio = want.audio ? audioConstraints(settings.micId) : undefined;
  const off = (wanted: boolean): MediaStatus => (wanted ? 'unavailable' : 'off');
  let firstError: unknown = null;
  if (video || audio) {
    try {
      const stream = await gum({ video, audio });
      return { stream, camera: video ? 'ok' : 'off', mic: audio ? 'ok' : 'off', problem: null };
    } catch (e) {
      firstError = e;
    }
  }
  if (video && audio) {
    try {
      const stream = await gum({ video });
      return { stream, camera: 'ok', mic: 'unavailable', problem: `Microphone unavailable: ${describeMediaError(firstError)}.` };
    } catch {
      // try audio only
    }
    try {
      const stream = await gum({ audio });
      return { stream, camera: 'unavailable', mic: 'ok', problem: `Camera unavailable: ${describeMediaError(firstError)}.` };
    } catch {
      // nothing at all
    }
  }
  return {
    stream: null,
    camera: off(want.video),
    mic: off(want.audio),
    problem: firstError ? `You joined without camera and microphone: ${describeMediaError(firstError)}.` : null,
  };
}

/** One new camera track (for camera on, or a camera switch). */
export async function openCamera(settings: MediaSettings): Promise<MediaStreamTrack> {
  const s = await gum({ video: videoConstraints(settings.preset, settings.cameraId) });
  return s.getVideoTracks()[0];
}

/** One new microphone track (for a microphone switch). */
export async function openMicrophone(settings: MediaSettings): Promise<MediaStreamTrack> {
  const s = await gum({ audio: audioConstraints(settings.micId) });
  return s.getAudioTracks()[0];
}

/** A screen, window or tab, chosen by the user. Needs a user gesture. */
export async function openScreen(): Promise<MediaStreamTrack> {
  const md = navigator.mediaDevices;
  if (!md?.getDisplayMedia) throw new DOMException('Screen sharing is not supported by this browser.', 'NotSupportedError');
  const s = await md.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
  const track = s.getVideoTracks()[0];
  if ('contentHint' in track) track.contentHint = 'detail';
  return track;
}

export interface DeviceLists {
  cameras: MediaDeviceInfo[];
  mics: MediaDeviceInfo[];
  speakers: MediaDeviceInfo[];
}

export async function listDevices(): Promise<DeviceLists> {
  const md = navigator.mediaDevices;
  if (!md?.enumerateDevices) return { cameras: [], mics: [], speakers: [] };
  const all = await md.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
    mics: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
    speakers: all.filter((d) => d.kind === 'audiooutput' && d.deviceId),
  };
}

/** Audio output selection (setSinkId) is not available everywhere (e.g. Firefox < 116, Safari). */
export function canChooseSpeaker(): boolean {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
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
