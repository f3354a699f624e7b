import { describe, expect, it } from 'vitest';
import { PRESETS, SCREEN_MAX_BITRATE, SIMULCAST_LAYERS, audioConstraints, browserLayerLimit, cameraEncodingChoices, cameraLayers, cameraNeedsRepublish, cameraSendEncodings, parsePreset, videoConstraints, videoSendParameters } from './presets';

describe('presets', () => {
  it('maps each preset to getUserMedia constraints', () => {
    expect(videoConstraints('hd')).toMatchObject({ width: { ideal: 1280 }, height: { ideal: 720 } });
    expect(videoConstraints('low', 'cam-2')).toMatchObject({ width: { ideal: 320 }, height: { ideal: 180 }, deviceId: { exact: 'cam-2' } });
    expect(videoConstraints('sd').deviceId).toBeUndefined();
    expect(audioConstraints('mic-1')).toMatchObject({ echoCancellation: true, deviceId: { exact: 'mic-1' } });
  });

  it('parses preset names from links', () => {
    expect(parsePreset('LOW')).toBe('low');
    expect(parsePreset('4k')).toBeNull();
    expect(parsePreset(null)).toBeNull();
  });

  it('caps the camera bitrate per preset, balanced degradation', () => {
    const p = videoSendParameters({ encodings: [{ active: true }], transactionId: 't', codecs: [], headerExtensions: [], rtcp: {} } as unknown as RTCRtpSendParameters, 'camera', 'low');
    expect(p.encodings).toEqual([{ active: true, maxBitrate: PRESETS.low.maxBitrate, maxFramerate: 15 }]);
    expect((p as { degradationPreference?: string }).degradationPreference).toBe('balanced');
    expect((p as unknown as { transactionId: string }).transactionId).toBe('t');
  });

  it('screen shares keep their resolution', () => {
    const p = videoSendParameters({ encodings: [] } as unknown as RTCRtpSendParameters, 'screen', 'hd');
    expect(p.encodings).toHaveLength(1);
    expect(p.encodings[0].maxBitrate).toBe(SCREEN_MAX_BITRATE);
    expect((p as { degradationPreference?: string }).degradationPreference).toBe('maintain-resolution');
  });

  const params = (encodings: object[]) => ({ encodings, transactionId: 't' }) as unknown as RTCRtpSendParameters;

  it('simulcast layers: HD q/h/f, SD q/f, Low none; lowest first, top layer = the preset', () => {
    expect(cameraSendEncodings('hd')).toEqual([
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: PRESETS.hd.maxBitrate },
    ]);
    expect(cameraSendEncodings('sd')).toEqual([
      { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: PRESETS.sd.maxBitrate },
    ]);
    expect(cameraSendEncodings('low')).toEqual([{ maxBitrate: PRESETS.low.maxBitrate }]);
    // The browser refused simulcast: one plain encoding.
    expect(cameraSendEncodings('hd', false)).toEqual([{ maxBitrate: PRESETS.hd.maxBitrate }]);
    for (const id of ['hd', 'sd'] as const) {
      const layers = SIMULCAST_LAYERS[id];
      const heights = layers.map((l) => PRESETS[id].height / l.scaleResolutionDownBy);
      expect(heights).toEqual([...heights].sort((a, b) => a - b));
      expect(heights[0]).toBe(180);
      expect(heights[heights.length - 1]).toBe(PRESETS[id].height);
      expect(layers.map((l) => l.maxBitrate)).toEqual(layers.map((l) => l.maxBitrate).sort((a, b) => a - b));
    }
  });

  it('caps every simulcast layer, balanced', () => {
    const p = videoSendParameters(params(cameraSendEncodings('hd').map((e) => ({ ...e, active: true }))), 'camera', 'hd');
    expect(p.encodings).toEqual([
      { rid: 'q', active: true, scaleResolutionDownBy: 4, maxBitrate: 150_000, maxFramerate: 30 },
      { rid: 'h', active: true, scaleResolutionDownBy: 2, maxBitrate: 500_000, maxFramerate: 30 },
      { rid: 'f', active: true, scaleResolutionDownBy: 1, maxBitrate: PRESETS.hd.maxBitrate, maxFramerate: 30 },
    ]);
    expect((p as { degradationPreference?: string }).degradationPreference).toBe('balanced');
  });

  it('a preset change keeps the negotiated encodings: its layers go on lowest first, the rest off', () => {
    const hd = params(cameraSendEncodings('hd').map((e) => ({ ...e, active: true })));
    // HD → SD (the camera now 640×360, where the browser encodes 2 layers at most): 180p on q,
    // 360p on h, f off — a layer on f would be the one the browser drops.
    const sd = videoSendParameters(hd, 'camera', 'sd', { width: 640, height: 360 });
    expect(sd.encodings.map((e) => [(e as { rid?: string }).rid, e.active, e.scaleResolutionDownBy, e.maxBitrate])).toEqual([
      ['q', true, 2, 150_000],
      ['h', true, 1, PRESETS.sd.maxBitrate],
      ['f', false, 1, PRESETS.hd.maxBitrate],
    ]);
    const low = videoSendParameters(hd, 'camera', 'low', { width: 320, height: 180 });
    expect(low.encodings.map((e) => [(e as { rid?: string }).rid, e.active, e.scaleResolutionDownBy, e.maxBitrate, e.maxFramerate])).toEqual([
      ['q', true, 1, PRESETS.low.maxBitrate, 15],
      ['h', false, 2, 500_000, undefined],
      ['f', false, 1, PRESETS.hd.maxBitrate, undefined],
    ]);
    // Back to HD: every layer on again, as published.
    const again = videoSendParameters(low, 'camera', 'hd', { width: 1280, height: 720 });
    expect(again.encodings.map((e) => [e.active, e.scaleResolutionDownBy, e.maxBitrate])).toEqual([
      [true, 4, 150_000],
      [true, 2, 500_000],
      [true, 1, PRESETS.hd.maxBitrate],
    ]);
    // Published with SD's two layers, switched to HD: the lowest and the full one.
    const sdPublished = params(cameraSendEncodings('sd').map((e) => ({ ...e, active: true })));
    expect(videoSendParameters(sdPublished, 'camera', 'hd', { width: 1280, height: 720 }).encodings.map((e) => [e.scaleResolutionDownBy, e.maxBitrate])).toEqual([
      [4, 150_000],
      [1, PRESETS.hd.maxBitrate],
    ]);
  });

  it('never configures more layers than the browser encodes for the camera size', () => {
    expect([undefined, { width: 1280, height: 720 }, { width: 960, height: 540 }].map((s) => browserLayerLimit(s))).toEqual([3, 3, 3]);
    expect([{ width: 640, height: 480 }, { width: 640, height: 360 }, { width: 480, height: 270 }].map((s) => browserLayerLimit(s))).toEqual([2, 2, 2]);
    expect([{ width: 320, height: 240 }, { width: 320, height: 180 }].map((s) => browserLayerLimit(s))).toEqual([1, 1]);
    // HD with a camera that only gives 640×480: the lowest and the full layer.
    expect(cameraLayers('hd', { width: 640, height: 480 }).map((l) => l.rid)).toEqual(['q', 'f']);
    expect(cameraSendEncodings('hd', true, { width: 640, height: 480 }).map((e) => e.rid)).toEqual(['q', 'f']);
    expect(cameraSendEncodings('sd', true, { width: 320, height: 240 })).toEqual([{ maxBitrate: PRESETS.sd.maxBitrate }]);
    const hd = params(cameraSendEncodings('hd').map((e) => ({ ...e, active: true })));
    expect(videoSendParameters(hd, 'camera', 'hd', { width: 640, height: 480 }).encodings.map((e) => [e.active, e.scaleResolutionDownBy])).toEqual([
      [true, 4],
      [true, 1],
      [false, 1],
    ]);
  });

  it('a single encoding (simulcast refused by the answer) sends the full picture', () => {
    const p = videoSendParameters(params([{ rid: 'q', active: true, scaleResolutionDownBy: 4, maxBitrate: 150_000 }]), 'camera', 'hd');
    expect(p.encodings).toEqual([{ rid: 'q', active: true, scaleResolutionDownBy: 1, maxBitrate: PRESETS.hd.maxBitrate, maxFramerate: 30 }]);
  });

  it('screen shares get one cap on every encoding', () => {
    const p = videoSendParameters(params([{ active: true }]), 'screen', 'low');
    expect(p.encodings).toEqual([{ active: true, maxBitrate: SCREEN_MAX_BITRATE, maxFramerate: 15 }]);
  });

  it('publishes the camera again only when a preset change wants more layers than were negotiated', () => {
    const free = { screenSharing: false, simulcastRefused: false };
    const hd = { width: 1280, height: 720 };
    // Low (one encoding) → HD at 720p: three layers need a new m-line.
    expect(cameraNeedsRepublish(1, 'hd', hd, free)).toBe(true);
    expect(cameraNeedsRepublish(1, 'sd', { width: 640, height: 360 }, free)).toBe(true);
    expect(cameraNeedsRepublish(2, 'hd', hd, free)).toBe(true);
    // Going down, or staying: the negotiated encodings are re-mapped (setParameters), no m-line.
    expect(cameraNeedsRepublish(3, 'sd', { width: 640, height: 360 }, free)).toBe(false);
    expect(cameraNeedsRepublish(3, 'low', { width: 320, height: 180 }, free)).toBe(false);
    expect(cameraNeedsRepublish(1, 'low', { width: 320, height: 180 }, free)).toBe(false);
    // A camera too small for layers (HD asked, 180p delivered): nothing to gain.
    expect(cameraNeedsRepublish(1, 'hd', { width: 320, height: 180 }, free)).toBe(false);
    // A screen share on, or simulcast already refused: keep the camera as it is.
    expect(cameraNeedsRepublish(1, 'hd', hd, { ...free, screenSharing: true })).toBe(false);
    expect(cameraNeedsRepublish(1, 'hd', hd, { ...free, simulcastRefused: true })).toBe(false);
  });

  it('the camera tries its simulcast layers first, one encoding as the fallback; one layer needs no fallback', () => {
    expect(cameraEncodingChoices('hd')).toEqual([cameraSendEncodings('hd'), [{ maxBitrate: PRESETS.hd.maxBitrate }]]);
    expect(cameraEncodingChoices('hd')[0].map((e) => e.rid)).toEqual(['q', 'h', 'f']);
    expect(cameraEncodingChoices('low')).toEqual([[{ maxBitrate: PRESETS.low.maxBitrate }]]);
    // A camera too small for two layers: one encoding, nothing to refuse.
    expect(cameraEncodingChoices('hd', { width: 320, height: 180 })).toEqual([[{ maxBitrate: PRESETS.hd.maxBitrate }]]);
  });
});
