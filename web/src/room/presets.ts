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

/** Simulcast layer ids, lowest → highest (docs/protocol.md). */
export type LayerRid = 'q' | 'h' | 'f';

export interface SimulcastLayer {
  rid: LayerRid;
  /** The layer's size is the camera's divided by this. */
  scaleResolutionDownBy: number;
  /** Cap for this layer's encoder, bits per second. */
  maxBitrate: number;
}

/**
 * The camera's simulcast layers per preset, lowest → highest. HD: 180p / 360p / 720p; SD:
 * 180p / 360p; Low: none (one plain encoding, no rid). The top layer always carries the
 * preset's full size and bitrate cap.
 */
export const SIMULCAST_LAYERS: Record<PresetId, readonly SimulcastLayer[]> = {
  hd: [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: PRESETS.hd.maxBitrate },
  ],
  sd: [
    { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: PRESETS.sd.maxBitrate },
  ],
  low: [],
};

/** The layers a preset sends on a camera sender, at least one (the full picture as `f`). */
function layersOf(preset: PresetId): readonly SimulcastLayer[] {
  const layers = SIMULCAST_LAYERS[preset];
  return layers.length > 0 ? layers : [{ rid: 'f', scaleResolutionDownBy: 1, maxBitrate: PRESETS[preset].maxBitrate }];
}

export interface FrameSize {
  width?: number;
  height?: number;
}

/**
 * How many simulcast layers Chromium encodes for a camera picture of this size (its resolution
 * based layer limit: ≥ 960×540 → 3, ≥ 480×270 → 2, smaller → 1). Layers past the limit are
 * dropped from the top, so a sender must not configure more than this. Unknown size → 3.
 */
export function browserLayerLimit(size?: FrameSize | null): number {
  const w = size?.width ?? 0;
  const h = size?.height ?? 0;
  if (!(w > 0) || !(h > 0)) return 3;
  const px = w * h;
  return px >= 960 * 540 ? 3 : px >= 480 * 270 ? 2 : 1;
}

/** `n` of the layers: the lowest `n - 1` and the top one (at least the top one). */
function keepLayers(layers: readonly SimulcastLayer[], n: number): readonly SimulcastLayer[] {
  if (n >= layers.length) return layers;
  const top = layers[layers.length - 1];
  return n <= 1 ? [top] : [...layers.slice(0, n - 1), top];
}

/** The camera's layers for a preset and the camera's actual picture size (see browserLayerLimit). */
export function cameraLayers(preset: PresetId, size?: FrameSize | null): readonly SimulcastLayer[] {
  return keepLayers(layersOf(preset), browserLayerLimit(size));
}

/**
 * `sendEncodings` for the camera's transceiver: one encoding per simulcast layer (rids `q`,
 * `h`, `f`, lowest first), or a single encoding without rid for presets without simulcast, a
 * camera too small for layers, or when `simulcast` is false (the browser refused simulcast).
 */
export function cameraSendEncodings(preset: PresetId, simulcast = true, size?: FrameSize | null): RTCRtpEncodingParameters[] {
  const layers = cameraLayers(preset, size);
  if (!simulcast || layers.length < 2) return [{ maxBitrate: PRESETS[preset].maxBitrate }];
  return layers.map((l) => ({ rid: l.rid, scaleResolutionDownBy: l.scaleResolutionDownBy, maxBitrate: l.maxBitrate }));
}

/**
 * The camera's `sendEncodings` to try, in order: the preset's simulcast layers (SIMULCAST_LAYERS:
 * rids q/h/f, lowest first), then one encoding should the browser refuse them.
 * Only the single encoding when the preset or the picture size has one layer.
 */
export function cameraEncodingChoices(preset: PresetId, size?: FrameSize | null): RTCRtpEncodingParameters[][] {
  const single = cameraSendEncodings(preset, false, size);
  const layers = cameraSendEncodings(preset, true, size);
  return layers.length > 1 ? [layers, single] : [single];
}

/**
 * Whether a preset change mid-call needs the camera published again: its encodings are fixed
 * when its m-line is negotiated, so going up from fewer layers (Low's single encoding, or SD's
 * two) to a preset that wants more takes a new camera m-line. Not while a screen share is on
 * (others tell camera from screen by the order of the video producers; a new camera m-line
 * would come after the screen's), and not when the browser refused simulcast already.
 */
export function cameraNeedsRepublish(
  negotiatedEncodings: number,
  preset: PresetId,
  size: FrameSize | null | undefined,
  opts: { screenSharing: boolean; simulcastRefused: boolean },
): boolean {
  if (opts.screenSharing || opts.simulcastRefused) return false;
  return cameraSendEncodings(preset, true, size).length > negotiatedEncodings;
}

type Encoding = RTCRtpEncodingParameters & { rid?: string };

/**
 * The send parameters for a video sender: bitrate caps per preset and layer (or the screen cap)
 * and the degradation preference (camera: balanced; screen: keep the resolution, drop frames
 * instead). Returns a modified copy; the `encodings` list keeps its length and rids (the browser
 * requires that). The camera's layers (cameraLayers for the preset and the camera's `size`) go
 * onto the negotiated encodings lowest first, and encodings left over are switched off: the
 * browser drops layers from the top when the picture is small, so a preset change mid-call
 * (HD → SD: 180p on `q`, 360p on `h`, `f` off) keeps its full-size layer. A single encoding (no
 * simulcast, or simulcast the answer refused) always sends the full picture.
 */
export function videoSendParameters(params: RTCRtpSendParameters, source: VideoSource, preset: PresetId, size?: FrameSize | null): RTCRtpSendParameters {
  const list: Encoding[] = params.encodings?.length ? params.encodings : [{}];
  let encodings: Encoding[];
  if (source === 'screen') {
    encodings = list.map((e) => ({ ...e, maxBitrate: SCREEN_MAX_BITRATE, maxFramerate: SCREEN_MAX_FRAMERATE }));
  } else {
    const maxFramerate = PRESETS[preset].frameRate;
    if (list.length === 1) {
      const e = list[0];
      encodings = [{ ...e, active: true, maxBitrate: PRESETS[preset].maxBitrate, maxFramerate, ...(e.scaleResolutionDownBy !== undefined ? { scaleResolutionDownBy: 1 } : {}) }];
    } else {
      const layers = keepLayers(cameraLayers(preset, size), list.length);
      encodings = list.map((e, i) => {
        const layer = layers[i];
        if (!layer) return { ...e, active: false };
        return { ...e, active: true, maxBitrate: layer.maxBitrate, maxFramerate, scaleResolutionDownBy: layer.scaleResolutionDownBy };
      });
    }
  }
  return {
    ...params,
    encodings,
    degradationPreference: source === 'screen' ? 'maintain-resolution' : 'balanced',
  } as RTCRtpSendParameters;
}
