//! Grid layout: N participants → tile rectangles on the output canvas.
//!
//! Pure arithmetic, no GStreamer. The grid has `cols = ceil(sqrt(n))` columns and
//! `rows = ceil(n / cols)` rows (1 → 1x1, 2 → 2x1, 3–4 → 2x2, 5–6 → 3x2, 7–9 → 3x3, 10–12 → 4x3 …).
//! Every slot is a 16:9 tile as large as fits; the whole grid is centred on the canvas
//! (letterboxed top/bottom or pillarboxed left/right), with a small gutter between tiles.
//! Slots past the last participant stay in the grid and are shown as empty placeholders.

/// An axis-aligned rectangle in output pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    pub fn right(&self) -> i32 {
        self.x + self.width
    }
    pub fn bottom(&self) -> i32 {
        self.y + self.height
    }
    pub fn centre(&self) -> (i32, i32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }
}

/// The grid for a given number of participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub cols: u32,
    pub rows: u32,
    /// All `cols * rows` slots, row-major. The first `n` belong to participants in join order.
    pub slots: Vec<Rect>,
}

/// Columns and rows for `n` tiles (n = 0 is laid out like 1: one empty slot).
pub fn grid_shape(n: usize) -> (u32, u32) {
    let n = n.max(1) as u32;
    let mut cols = 1;
    while cols * cols < n {
        cols += 1;
    }
    let rows = n.div_ceil(cols);
    (cols, rows)
}

/// Gap between tiles and around the grid, scaled with the canvas (8 px at 1280x720).
pub fn gutter(width: u32) -> i32 {
    ((width / 160) as i32).max(2) & !1
}

/// Lay out `n` participants on a `width` x `height` canvas.
pub fn layout(n: usize, width: u32, height: u32) -> Grid {
    let (cols, rows) = grid_shape(n);
    let gap = gutter(width);
    let avail_w = width as i32 - gap * (cols as i32 + 1);
    let avail_h = height as i32 - gap * (rows as i32 + 1);
    // Largest 16:9 tile that fits both ways; even sizes keep I420 chroma aligned.
    let tile_w_by_w = avail_w / cols as i32;
    let tile_w_by_h = (avail_h / rows as i32) * 16 / 9;
    let mut tile_w = tile_w_by_w.min(tile_w_by_h).max(2);
    tile_w &= !1;
    let tile_h = ((tile_w * 9 / 16).max(2)) & !1;

    let grid_w = cols as i32 * tile_w + (cols as i32 - 1) * gap;
    let grid_h = rows as i32 * tile_h + (rows as i32 - 1) * gap;
    let x0 = ((width as i32 - grid_w) / 2) & !1;
    let y0 = ((height as i32 - grid_h) / 2) & !1;

    let mut slots = Vec::with_capacity((cols * rows) as usize);
    for r in 0..rows as i32 {
        for c in 0..cols as i32 {
            slots.push(Rect { x: x0 + c * (tile_w + gap), y: y0 + r * (tile_h + gap), width: tile_w, height: tile_h });
        }
    }
    Grid { cols, rows, slots }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_invariants(n: usize, w: u32, h: u32) {
        let g = layout(n, w, h);
        assert_eq!(g.slots.len(), (g.cols * g.rows) as usize);
        assert!(g.slots.len() >= n.max(1));
        for (i, s) in g.slots.iter().enumerate() {
            // inside the canvas
            assert!(s.x >= 0 && s.y >= 0, "n={n} slot {i} {s:?}");
            assert!(s.right() <= w as i32 && s.bottom() <= h as i32, "n={n} slot {i} {s:?}");
            // 16:9 within rounding
            let ratio = s.width as f64 / s.height as f64;
            assert!((ratio - 16.0 / 9.0).abs() < 0.03, "n={n} ratio {ratio}");
            // even for I420
            assert_eq!(s.x % 2, 0);
            assert_eq!(s.y % 2, 0);
            assert_eq!(s.width % 2, 0);
            assert_eq!(s.height % 2, 0);
            // no overlaps
            for t in &g.slots[i + 1..] {
                assert!(!s.intersects(t), "n={n} {s:?} overlaps {t:?}");
            }
        }
        // centred: left margin == right margin (± rounding), same top/bottom
        let left = g.slots.iter().map(|s| s.x).min().unwrap();
        let right = w as i32 - g.slots.iter().map(|s| s.right()).max().unwrap();
        let top = g.slots.iter().map(|s| s.y).min().unwrap();
        let bottom = h as i32 - g.slots.iter().map(|s| s.bottom()).max().unwrap();
        assert!((left - right).abs() <= 2, "n={n} left {left} right {right}");
        assert!((top - bottom).abs() <= 2, "n={n} top {top} bottom {bottom}");
    }

    #[test]
    fn shapes() {
        assert_eq!(grid_shape(0), (1, 1));
        assert_eq!(grid_shape(1), (1, 1));
        assert_eq!(grid_shape(2), (2, 1));
        assert_eq!(grid_shape(3), (2, 2));
        assert_eq!(grid_shape(4), (2, 2));
        assert_eq!(grid_shape(5), (3, 2));
        assert_eq!(grid_shape(6), (3, 2));
        assert_eq!(grid_shape(7), (3, 3));
        assert_eq!(grid_shape(9), (3, 3));
        assert_eq!(grid_shape(10), (4, 3));
        assert_eq!(grid_shape(16), (4, 4));
        assert_eq!(grid_shape(17), (5, 4));
    }

    #[test]
    fn invariants_720p_and_1080p() {
        for n in 0..=25 {
            check_invariants(n, 1280, 720);
            check_invariants(n, 1920, 1080);
        }
    }

    #[test]
    fn one_fills_the_canvas_minus_gutter() {
        let g = layout(1, 1280, 720);
        assert_eq!(g.slots.len(), 1);
        let s = g.slots[0];
        assert!(s.width >= 1240 && s.height >= 696, "{s:?}");
        let (cx, cy) = s.centre();
        assert!((cx - 640).abs() <= 2 && (cy - 360).abs() <= 2, "{s:?}");
    }

    #[test]
    fn two_side_by_side_letterboxed() {
        let g = layout(2, 1280, 720);
        let (a, b) = (g.slots[0], g.slots[1]);
        assert_eq!(a.y, b.y);
        assert!(a.right() < b.x);
        // width-limited: tall black bars above and below
        assert!(a.y > 100, "{a:?}");
        assert_eq!(a.width, b.width);
        let g = layout(2, 1920, 1080);
        assert!(g.slots[0].width > 900);
    }

    #[test]
    fn four_is_2x2_with_quadrants() {
        let g = layout(4, 1280, 720);
        assert_eq!((g.cols, g.rows), (2, 2));
        let (cx, cy) = (640, 360);
        assert!(g.slots[0].right() <= cx && g.slots[0].bottom() <= cy);
        assert!(g.slots[1].x >= cx && g.slots[1].bottom() <= cy);
        assert!(g.slots[2].right() <= cx && g.slots[2].y >= cy);
        assert!(g.slots[3].x >= cx && g.slots[3].y >= cy);
    }

    #[test]
    fn three_keeps_the_fourth_slot_empty() {
        let g = layout(3, 1280, 720);
        assert_eq!(g.slots.len(), 4);
    }

    #[test]
    fn nine_is_3x3_and_1080p_scales() {
        let g = layout(9, 1280, 720);
        assert_eq!((g.cols, g.rows), (3, 3));
        let g2 = layout(9, 1920, 1080);
        assert!(g2.slots[0].width > g.slots[0].width);
    }

    #[test]
    fn six_is_3x2() {
        let g = layout(6, 1920, 1080);
        assert_eq!((g.cols, g.rows), (3, 2));
        assert_eq!(g.slots[0].y, g.slots[1].y);
        assert!(g.slots[3].y > g.slots[0].bottom());
    }
}
