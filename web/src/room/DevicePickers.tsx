// Camera / microphone / speaker choosers and the quality preset, used by the lobby and the
// in-call settings panel.
import { useEffect, useState } from 'react';
import { canChooseSpeaker, listDevices, type DeviceLists, type MediaSettings } from './media';
import { PRESETS, PRESET_ORDER, type PresetId } from './presets';

/** The device lists, refreshed when devices come and go (and after permission is granted). */
export function useDevices(refreshKey: unknown): DeviceLists {
  const [lists, setLists] = useState<DeviceLists>({ cameras: [], mics: [], speakers: [] });
  useEffect(() => {
    let alive = true;
    const load = () =>
      listDevices()
        .then((l) => alive && setLists(l))
        .catch(() => undefined);
    void load();
    navigator.mediaDevices?.addEventListener?.('devicechange', load);
    return () => {
      alive = false;
      navigator.mediaDevices?.removeEventListener?.('devicechange', load);
    };
  }, [refreshKey]);
  return lists;
}

function label(d: MediaDeviceInfo, i: number, what: string): string {
  return d.label || `${what} ${i + 1}`;
}

export function DevicePickers(props: {
  settings: MediaSettings;
  devices: DeviceLists;
  onChange: (next: Partial<MediaSettings>) => void;
  idPrefix: string;
  disabled?: boolean;
}) {
  const { settings, devices, onChange, idPrefix, disabled } = props;
  const pick = (list: MediaDeviceInfo[], id: string | null) => (id && list.some((d) => d.deviceId === id) ? id : (list[0]?.deviceId ?? ''));
  return (
    <div className="pickers">
      <div className="field">
        <label htmlFor={`${idPrefix}-camera`}>Camera</label>
        <select
          id={`${idPrefix}-camera`}
          value={pick(devices.cameras, settings.cameraId)}
          disabled={disabled || devices.cameras.length === 0}
          onChange={(e) => onChange({ cameraId: e.target.value || null })}
        >
          {devices.cameras.length === 0 && <option value="">No camera found</option>}
          {devices.cameras.map((d, i) => (
            <option key={d.deviceId} value={d.deviceId}>
              {label(d, i, 'Camera')}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${idPrefix}-mic`}>Microphone</label>
        <select
          id={`${idPrefix}-mic`}
          value={pick(devices.mics, settings.micId)}
          disabled={disabled || devices.mics.length === 0}
          onChange={(e) => onChange({ micId: e.target.value || null })}
        >
          {devices.mics.length === 0 && <option value="">No microphone found</option>}
          {devices.mics.map((d, i) => (
            <option key={d.deviceId} value={d.deviceId}>
              {label(d, i, 'Microphone')}
            </option>
          ))}
        </select>
      </div>
      {canChooseSpeaker() && devices.speakers.length > 0 && (
        <div className="field">
          <label htmlFor={`${idPrefix}-speaker`}>Speaker</label>
          <select
            id={`${idPrefix}-speaker`}
            value={pick(devices.speakers, settings.speakerId)}
            disabled={disabled}
            onChange={(e) => onChange({ speakerId: e.target.value || null })}
          >
            {devices.speakers.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {label(d, i, 'Speaker')}
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="field">
        <label htmlFor={`${idPrefix}-preset`}>Video quality</label>
        <select
          id={`${idPrefix}-preset`}
          value={settings.preset}
          disabled={disabled}
          onChange={(e) => onChange({ preset: e.target.value as PresetId })}
        >
          {PRESET_ORDER.map((id) => (
            <option key={id} value={id}>
              {PRESETS[id].label}
            </option>
          ))}
        </select>
      </div>
    </div>
  );
}
