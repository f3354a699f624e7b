// Grid layout: how many columns and rows make the tiles as large as possible in the space given.
// Plain arithmetic over sizes, so it is unit-tested; the room page feeds it the grid's size.

export interface GridLayout {
  columns: number;
  rows: number;
  /** Tile size in CSS pixels (16:9 unless another aspect is asked for). */
  tileWidth: number;
  tileHeight: number;
}

/**
 * The column count that gives `count` tiles of the given aspect ratio the largest size inside
 * `width` × `height`, with `gap` pixels between tiles. Ties go to fewer columns (bigger rows
 * read better on wide screens than a single long row). Zero tiles → 0 × 0.
 */
export function gridLayout(count: number, width: number, height: number, aspect = 16 / 9, gap = 8): GridLayout {
  const n = Math.max(0, Math.floor(count));
  if (n === 0 || width <= 0) return { columns: 0, rows: 0, tileWidth: 0, tileHeight: 0 };
  const h = height > 0 ? height : Number.POSITIVE_INFINITY;
  let best: GridLayout = { columns: 1, rows: n, tileWidth: 0, tileHeight: 0 };
  for (let columns = 1; columns <= n; columns++) {
    const rows = Math.ceil(n / columns);
    const maxW = (width - gap * (columns - 1)) / columns;
    const maxH = (h - gap * (rows - 1)) / rows;
    if (maxW <= 0 || maxH <= 0) continue;
    const tileWidth = Math.min(maxW, maxH * aspect);
    if (tileWidth > best.tileWidth + 0.5) {
      best = { columns, rows, tileWidth: Math.floor(tileWidth), tileHeight: Math.floor(tileWidth / aspect) };
    }
  }
  if (best.tileWidth === 0) {
    // Too small for anything: one column, as wide as it gets.
    const tileWidth = Math.max(0, Math.floor(width));
    return { columns: 1, rows: n, tileWidth, tileHeight: Math.floor(tileWidth / aspect) };
  }
  return best;
}

/**
 * Orders tiles for display: screen shares first (they need the space), then the remote
 * cameras in join order, the local preview last. Tiles never jump around when someone speaks
 * (the active speaker is highlighted in place).
 */
export function orderTiles<T extends { key: string; kind: 'camera' | 'screen'; local: boolean }>(tiles: T[]): T[] {
  const rank = (t: T) => (t.kind === 'screen' ? 0 : t.local ? 2 : 1);
  return tiles
    .map((t, i) => ({ t, i }))
    .sort((a, b) => rank(a.t) - rank(b.t) || a.i - b.i)
    .map((x) => x.t);
}
