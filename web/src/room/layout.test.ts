import { describe, expect, it } from 'vitest';
import { gridLayout, orderTiles } from './layout';

describe('gridLayout', () => {
  it('one tile fills the width of a wide area', () => {
    const g = gridLayout(1, 1600, 900, 16 / 9, 0);
    expect(g).toEqual({ columns: 1, rows: 1, tileWidth: 1600, tileHeight: 900 });
  });

  it('two tiles go side by side on a wide screen and stacked on a phone', () => {
    expect(gridLayout(2, 1600, 600).columns).toBe(2);
    expect(gridLayout(2, 380, 800).columns).toBe(1);
  });

  it('four tiles make a 2 × 2 grid in a 16:9 area', () => {
    const g = gridLayout(4, 1280, 720, 16 / 9, 0);
    expect([g.columns, g.rows]).toEqual([2, 2]);
    expect(g.tileWidth).toBe(640);
  });

  it('re-flows as people join: columns never exceed tiles and all tiles fit', () => {
    for (let n = 1; n <= 25; n++) {
      const g = gridLayout(n, 1200, 700);
      expect(g.columns).toBeLessThanOrEqual(n);
      expect(g.columns * g.rows).toBeGreaterThanOrEqual(n);
      expect(g.columns * g.tileWidth + 8 * (g.columns - 1)).toBeLessThanOrEqual(1200);
      expect(g.rows * g.tileHeight + 8 * (g.rows - 1)).toBeLessThanOrEqual(700);
    }
  });

  it('no tiles or no space', () => {
    expect(gridLayout(0, 1000, 1000)).toEqual({ columns: 0, rows: 0, tileWidth: 0, tileHeight: 0 });
    expect(gridLayout(3, 0, 1000).columns).toBe(0);
    // Unknown height: only the width counts, so one column gives the biggest tiles.
    expect(gridLayout(3, 900, 0)).toMatchObject({ columns: 1, tileWidth: 900 });
    // Absurdly small: still one column rather than nothing.
    expect(gridLayout(4, 10, 5).columns).toBe(1);
  });
});

describe('orderTiles', () => {
  const t = (key: string, kind: 'camera' | 'screen' = 'camera', local = false) => ({ key, kind, local });
  it('screens first, remote cameras in join order, local last', () => {
    const tiles = [t('me', 'camera', true), t('a'), t('b'), t('b:screen', 'screen'), t('c'), t('me:screen', 'screen', true)];
    expect(orderTiles(tiles).map((x) => x.key)).toEqual(['b:screen', 'me:screen', 'a', 'b', 'c', 'me']);
  });
});
