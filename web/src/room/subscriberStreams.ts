// Which stream each remote tile plays: the receive tracks of the subscribe connection's live
// m-lines, grouped per tile (a participant's camera and microphone, or a screen share). Pure:
// subscriber.ts hands in its transceivers and tiles, and keeps the previous map so that a tile
// whose tracks did not change keeps its MediaStream (its <video> does not restart).

/** What this needs of an RTCRtpTransceiver. */
export interface ReceiveSide<Track> {
  mid: string | null;
  currentDirection: RTCRtpTransceiverDirection | null | undefined;
  track: Track;
}

/** What this needs of a tile (state.ts remoteTiles). */
export interface TileMids {
  key: string;
  mids: readonly string[];
}

/**
 * The tile key → stream map for these transceivers and tiles, or null when it is the same as
 * `previous` (nothing to publish). `ids` names a track; `make` builds a stream of tracks.
 */
export function tileStreams<Track, Stream>(
  transceivers: readonly ReceiveSide<Track>[],
  tiles: readonly TileMids[],
  previous: ReadonlyMap<string, Stream>,
  tracksOf: (s: Stream) => readonly Track[],
  idOf: (t: Track) => string,
  make: (tracks: Track[]) => Stream,
): Map<string, Stream> | null {
  const receivers = new Map<string, Track>();
  for (const tr of transceivers) {
    if (!tr.mid || tr.currentDirection === 'inactive' || tr.currentDirection === 'stopped') continue;
    receivers.set(tr.mid, tr.track);
  }
  const next = new Map<string, Stream>();
  let changed = false;
  for (const tile of tiles) {
    const list = tile.mids.map((m) => receivers.get(m)).filter((t): t is Track => t !== undefined);
    if (list.length === 0) continue;
    const old = previous.get(tile.key);
    const key = (tracks: readonly Track[]) => tracks.map(idOf).sort().join(',');
    if (old && key(tracksOf(old)) === key(list)) {
      next.set(tile.key, old);
    } else {
      next.set(tile.key, make(list));
      changed = true;
    }
  }
  return changed || next.size !== previous.size ? next : null;
}
