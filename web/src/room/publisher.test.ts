import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, type MediaSettings } from './media';
import { cameraChange, deviceStatus, publishSlots } from './publisher';

describe('publisher', () => {
  it('device status: a track is on or muted; without one, unavailable stays unavailable, anything else is off', () => {
    expect(deviceStatus(true, false, 'ok')).toBe('ok');
    expect(deviceStatus(true, true, 'ok')).toBe('off');
    expect(deviceStatus(false, false, 'unavailable')).toBe('unavailable');
    expect(deviceStatus(false, false, 'ok')).toBe('off');
    expect(deviceStatus(false, true, 'pending')).toBe('off');
  });

  it('the camera m-line comes first, also when a screen share is on and the camera is off', () => {
    expect(publishSlots(true, true, true)).toEqual(['camera', 'mic', 'screen']);
    expect(publishSlots(false, true, true)).toEqual(['mic', 'screen']);
    expect(publishSlots(true, false, false)).toEqual(['camera']);
    // A screen share alone is something to publish; no devices and no share is not.
    expect(publishSlots(false, false, true)).toEqual(['screen']);
    expect(publishSlots(false, false, false)).toEqual([]);
  });

  it('settings: a new camera is opened only while ours is on; a new preset alone re-constrains it', () => {
    const before: MediaSettings = { ...DEFAULT_SETTINGS, cameraId: 'cam-1', preset: 'sd' };
    const on = { track: true, on: true };
    expect(cameraChange(before, { ...before, cameraId: 'cam-2' }, on)).toBe('reopen');
    // Both changed: the new camera opens with the new preset's constraints, no separate step.
    expect(cameraChange(before, { ...before, cameraId: 'cam-2', preset: 'hd' }, on)).toBe('reopen');
    expect(cameraChange(before, { ...before, preset: 'hd' }, on)).toBe('constrain');
    expect(cameraChange(before, { ...before, cameraId: 'cam-2' }, { track: false, on: false })).toBe('keep');
    expect(cameraChange(before, { ...before, cameraId: 'cam-2', preset: 'hd' }, { track: true, on: false })).toBe('constrain');
    expect(cameraChange(before, { ...before, micId: 'mic-2', speakerId: 'spk' }, on)).toBe('keep');
  });
});
