// When a broadcast the page is playing is over. The playlist gets EXT-X-ENDLIST when the
// broadcast stops, but the video element does not always fire `ended`: when the last part
// leaves audio and video buffered to different ends, playback stops short of the duration
// and waits forever. So "over" is decided from the playlist and the playhead together.

/** What the page sees of playback at one look. */
export interface Playback {
  ended: boolean;
  currentTime: number;
  /** End of the buffered range holding the playhead; null when nothing is buffered there. */
  bufferedEnd: number | null;
}

/** Playback is this close (s) to the end of what is buffered: nothing more will come. */
export const AT_END_S = 0.5;
/** The playhead moved less than this (s) between two looks: it is not advancing. */
const STILL_S = 0.01;

/**
 * Over when the video ended, or when the playlist has ended (`endlist`) and playback has
 * nothing left: the playhead is at the end of its buffer, or it has not moved since the
 * previous look (`before`).
 */
export function broadcastOver(endlist: boolean, now: Playback, before: Playback | null): boolean {
  if (now.ended) return true;
  if (!endlist) return false;
  if (now.bufferedEnd === null || now.bufferedEnd - now.currentTime < AT_END_S) return true;
  return before !== null && Math.abs(now.currentTime - before.currentTime) < STILL_S;
}

/** The end of the buffered range that holds `time`, or null. */
export function bufferedEndAt(ranges: { start: number; end: number }[], time: number): number | null {
  const r = ranges.find((x) => x.start <= time + AT_END_S && time <= x.end);
  return r ? r.end : null;
}
