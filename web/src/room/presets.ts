// Quality presets: what the lobby offers, as getUserMedia constraints and sender parameters.

export type PresetId = 'hd' | 'sd' | 'low';

export interface Preset {
  id: PresetId;
  label: string;
  width: number;
  height: number;
  frameRate: number;
  /** Cap for the camera's encoder, bits per second. */
  maxBitrate: number;
}

export const PRESETS: Record<PresetId, Preset> = {
  hd: { id: 'hd', label: 'HD 720p', width: 1280, height: 720, frameRate: 30, maxBitrate: 1_500_000 },
  sd: { id: 'sd', label: 'SD 360p', width: 640, height: 360, frameRate: 30, maxBitrate: 600_000 },
  low: { id: 'low', label: 'Low 180p', width: 320, height: 180, frameRate: 15, maxBitrate: 200_000 },
};

export const PRESET_ORDER: PresetId[] = ['hd', 'sd', 'low'];
export const DEFAULT_PRESET: PresetId = 'sd';

/** Screen shares: sharp text matters more than motion. */
export const SCREEN_MAX_BITRATE = 1_200_000;
export const SCREEN_MAX_FRAMERATE = 15;

export function parsePreset(v: string | null | undefined): PresetId | null {
  const s = (v ?? '').toLowerCase();
  return s === 'hd' || s === 'sd' || s === 'low' ? s : null;
}

export function videoConstraints(preset: PresetId, deviceId?: string | null): MediaTrackConstraints {
  const p = PRESETS[preset];
  const c: MediaTrackConstraints = {
    width: { ideal: p.width },
    height: { ideal: p.height },
    frameRate: { ideal: p.frameRate, max: p.frameRate },
  };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

export function audioConstraints(deviceId?: string | null): MediaTrackConstraints {
  const c: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

export type VideoSource = 'camera' | 'screen';

/**
 * The send parameters for a video sender: bitrate cap per preset (or the screen cap) and the
 * degradation preference (camera: balanced; screen: keep the resolution, drop frames instead).
 * Returns a modified copy; the `encodings` list keeps its length (the browser requires that).
 */
export function videoSendParameters(params: RTCRtpSendParameters, source: VideoSource, preset: PresetId): RTCRtpSendParameters {
  const maxBitrate = source === 'screen' ? SCREEN_MAX_BITRATE : PRESETS[preset].maxBitrate;
  const maxFramerate = source === 'screen' ? SCREEN_MAX_FRAMERATE : PRESETS[preset].frameRate;
  const encodings = (params.encodings?.length ? params.encodings : [{}]).map((e) => ({ ...e, maxBitrate, maxFramerate }));
  return {
    ...params,
    encodings,
    degradationPreference: source === 'screen' ? 'maintain-resolution' : 'balanced',
  } as RTCRtpSendParameters;
}
