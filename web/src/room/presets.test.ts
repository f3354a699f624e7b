import { describe, expect, it } from 'vitest';
import { PRESETS, SCREEN_MAX_BITRATE, audioConstraints, parsePreset, videoConstraints, videoSendParameters } from './presets';

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
});
