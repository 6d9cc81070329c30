//! Text for the PNG, set properly: a wrapper backend that draws glyphs itself and passes
//! everything else through.
//!
//! Plotters' bitmap text (with the `ab_glyph` feature) ignores each glyph's left side bearing
//! and puts the baseline half an em below the anchor, so letters are unevenly spaced and
//! labels sit about a fifth of an em above their tick marks. Here glyphs are placed at their
//! advance with kerning and sub-pixel offsets, and anchoring uses the cap height: `Center`
//! centres capitals on the anchor, `Top` hangs them from it. The SVG is unaffected; its text
//! is set by the viewer.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use std::sync::OnceLock;

use super::output::DEJAVU_SANS;

/// `B` with glyph-accurate text.
pub(crate) struct CrispText<B>(pub B);

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).ok()).as_ref()
}

/// The pixels (local to the anchor, before rotation) and coverages of `text`.
fn rasterize(font: &FontRef<'static>, text: &str, size: f32, h: HPos, v: VPos) -> Vec<(i32, i32, f32)> {
    let scale = PxScale::from(size);
    let scaled = font.as_scaled(scale);
    let mut pen = 0f32;
    let mut prev = None;
    let mut placed = Vec::new();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        placed.push((id, pen));
        pen += scaled.h_advance(id);
        prev = Some(id);
    }
    let cap = font
        .outline(font.glyph_id('H'))
        .map(|o| (o.bounds.max.y - o.bounds.min.y).abs() * scaled.v_scale_factor())
        .unwrap_or(size * 0.62);
    let dx = match h {
        HPos::Left => 0.0,
        HPos::Center => -pen / 2.0,
        HPos::Right => -pen,
    };
    let baseline = match v {
        VPos::Top => cap,
        VPos::Center => cap / 2.0,
        VPos::Bottom => scaled.descent(),
    };
    let mut pixels = Vec::new();
    for (id, x) in placed {
        let glyph = id.with_scale_and_position(scale, point(x + dx, baseline));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                if cov > 0.0 {
                    pixels.push((b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, cov));
                }
            });
        }
    }
    pixels
}

impl<B: DrawingBackend> DrawingBackend for CrispText<B> {
    type ErrorType = B::ErrorType;

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        let Some(font) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        if color.alpha == 0.0 {
            return Ok(());
        }
        let anchor = style.anchor();
        let transform = style.transform();
        for (x, y, cov) in rasterize(font, text, style.size() as f32, anchor.h_pos, anchor.v_pos) {
            let (x, y) = transform.transform(x, y);
            let c = BackendColor { alpha: color.alpha * f64::from(cov.min(1.0)), rgb: color.rgb };
            self.0.draw_pixel((pos.0 + x, pos.1 + y), c)?;
        }
        Ok(())
    }

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        p: BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.0.estimate_text_size(text, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: VPos) -> (i32, i32) {
        let px = rasterize(font().expect("embedded font parses"), "H", 40.0, HPos::Left, v);
        let ys = px.iter().filter(|p| p.2 > 0.5).map(|p| p.1);
        (ys.clone().min().unwrap(), ys.max().unwrap())
    }

    #[test]
    fn capitals_hang_from_top_and_centre_on_center() {
        let (top, bottom) = rows(VPos::Top);
        assert!(top.abs() <= 1, "caps start at the anchor, got {top}");
        assert!(bottom > 20);
        let (a, b) = rows(VPos::Center);
        assert!((a + b).abs() <= 2, "caps centred on the anchor, got {a}..{b}");
    }
}
