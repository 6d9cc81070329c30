//! From a drawing to files: the embedded font, in-memory PNG and SVG rendering, atomic writes.
//!
//! Both images are rendered in memory before either is written, so a failed draw leaves any
//! previous pair untouched; each file then lands through [`crate::util::write_atomic`]
//! (temporary file in the same directory, then rename), so a reader never sees half a PNG.

use anyhow::{anyhow, bail, Context, Result};
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::style::{MAX_SIDE, MIN_SIDE};
use super::text::CrispText;

/// DejaVu Sans, embedded so that rendering needs no system font library (fontconfig,
/// freetype) and text looks the same on every machine. License: `assets/README.md`.
pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name every text style uses; it is also plotters' default family, so text that
/// plotters draws on its own (none should) finds the font too. SVG viewers see
/// `font-family="sans-serif"` and use their own sans-serif face.
pub(crate) const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters, once per process.
pub(crate) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if !ok {
        bail!("the embedded font assets/DejaVuSans.ttf could not be parsed");
    }
    Ok(())
}

/// Plotters' drawing errors carry the backend's error type; callers only need the message.
pub(crate) fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Refuses canvases too small for the layout or too large to hold in memory.
pub(crate) fn check_size((w, h): (u32, u32)) -> Result<()> {
    if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
        bail!("image size {w}×{h} is outside {MIN_SIDE}..={MAX_SIDE} pixels per side");
    }
    Ok(())
}

/// `stem` with `.ext` appended (not substituted: `fig.v2` becomes `fig.v2.png`).
pub(crate) fn with_ext(stem: &Path, ext: &str) -> Result<PathBuf> {
    if stem.file_name().is_none() {
        bail!("output stem '{}' has no file name", stem.display());
    }
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    Ok(PathBuf::from(s))
}

/// The PNG is drawn at this multiple of its size and averaged down: plotters' bitmap lines
/// and polygons are not anti-aliased, and 2×2 supersampling smooths them.
const SUPERSAMPLE: u32 = 2;

/// Draws at [`SUPERSAMPLE`] times `size` (with [`CrispText`] glyphs), averages down to `size`
/// and encodes the result as PNG bytes.
pub(crate) fn render_png<F>(size: (u32, u32), draw: F) -> Result<Vec<u8>>
where
    F: FnOnce(&DrawingArea<CrispText<BitMapBackend<'_>>, Shift>) -> Result<()>,
{
    ensure_font()?;
    let (w, h) = size;
    let (bw, bh) = (w * SUPERSAMPLE, h * SUPERSAMPLE);
    let mut big = vec![255u8; bw as usize * bh as usize * 3];
    {
        let root = CrispText(BitMapBackend::with_buffer(&mut big, (bw, bh))).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&downsample(&big, bw, bh, SUPERSAMPLE), w, h)
}

/// Averages each `k`×`k` block of an RGB image of `w`×`h` into one pixel.
fn downsample(rgb: &[u8], w: u32, h: u32, k: u32) -> Vec<u8> {
    let (w, h, k) = (w as usize, h as usize, k as usize);
    let (ow, oh) = (w / k, h / k);
    let mut out = vec![0u8; ow * oh * 3];
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += u32::from(rgb[((oy * k + dy) * w + ox * k + dx) * 3 + c]);
                    }
                }
                out[(oy * ow + ox) * 3 + c] = ((sum + (k * k / 2) as u32) / (k * k) as u32) as u8;
            }
        }
    }
    out
}

/// The SVG is drawn in a coordinate system this many times finer than its displayed size:
/// plotters rounds SVG coordinates to whole units, which makes diagonal lines visibly wobble at
/// 1 unit = 1 pixel.
const SVG_UNITS_PER_PIXEL: u32 = 4;

/// Draws into an SVG document displayed at `size` and returns its text with what `draw`
/// returned. The drawing sees a canvas [`SVG_UNITS_PER_PIXEL`] times larger (the view box);
/// everything scales with the canvas, so it looks the same as the PNG.
pub(crate) fn render_svg<T, F>(size: (u32, u32), draw: F) -> Result<(String, T)>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<T>,
{
    ensure_font()?;
    let (w, h) = size;
    let (vw, vh) = (w * SVG_UNITS_PER_PIXEL, h * SVG_UNITS_PER_PIXEL);
    let mut svg = String::new();
    let out = {
        let root = SVGBackend::with_string(&mut svg, (vw, vh)).into_drawing_area();
        let out = draw(&root)?;
        root.present().map_err(draw_err)?;
        out
    };
    let header = format!("<svg width=\"{vw}\" height=\"{vh}\" ");
    if !svg.starts_with(&header) {
        bail!("unexpected SVG header from plotters");
    }
    svg.replace_range(..header.len(), &format!("<svg width=\"{w}\" height=\"{h}\" "));
    Ok((svg, out))
}

pub(crate) fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, w, h, image::ColorType::Rgb8)
        .context("encoding PNG")?;
    Ok(png)
}

/// Writes `<stem>.png` and `<stem>.svg`, each atomically.
pub(crate) fn write_pair(stem: &Path, png: &[u8], svg: &str) -> Result<()> {
    crate::util::write_atomic(&with_ext(stem, "png")?, png)?;
    crate::util::write_atomic(&with_ext(stem, "svg")?, svg.as_bytes())
}

/// An RGB image of `w`×`h` SVG units to place at (`x`, `y`) of an SVG.
pub(crate) struct Raster {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
    pub rgb: Vec<u8>,
}

/// Embedded images keep this many pixels per displayed pixel: enough to stay sharp when the
/// figure is printed at twice its size, without storing every SVG unit.
const RASTER_PIXELS_PER_PIXEL: u32 = 2;

impl Raster {
    /// The image at the embedding resolution: every `step`-th SVG unit, nearest neighbour.
    fn at_embedding_resolution(&self) -> (Vec<u8>, u32, u32) {
        let step = (SVG_UNITS_PER_PIXEL / RASTER_PIXELS_PER_PIXEL).max(1) as usize;
        let (w, h) = (self.w as usize, self.h as usize);
        let (ow, oh) = (w.div_ceil(step), h.div_ceil(step));
        let mut out = Vec::with_capacity(ow * oh * 3);
        for oy in 0..oh {
            let y = (oy * step + step / 2).min(h - 1);
            for ox in 0..ow {
                let x = (ox * step + step / 2).min(w - 1);
                out.extend_from_slice(&self.rgb[(y * w + x) * 3..(y * w + x) * 3 + 3]);
            }
        }
        (out, ow as u32, oh as u32)
    }
}

/// Replaces the `<rect>` filled with `marker` (drawn as a stand-in) by `raster` as an embedded
/// PNG, so a heatmap of 10⁵ cells costs one image in the SVG rather than 10⁵ elements, while
/// axes and text stay vector. Plotters' own bitmap embedding writes a non-standard
/// `data:png` URI, hence this.
pub(crate) fn embed_raster(svg: &mut String, marker: RGBColor, raster: &Raster) -> Result<()> {
    let needle = format!("fill=\"#{:02X}{:02X}{:02X}\"", marker.0, marker.1, marker.2);
    let at = svg.find(&needle).context("SVG raster placeholder not found")?;
    let start = svg[..at].rfind("<rect").context("SVG raster placeholder is not a <rect>")?;
    let end = at + svg[at..].find("/>").context("SVG raster placeholder is not closed")? + 2;
    let (rgb, iw, ih) = raster.at_embedding_resolution();
    let png = encode_png(&rgb, iw, ih)?;
    let uri = format!("data:image/png;base64,{}", base64(&png));
    let image = format!(
        "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
         style=\"image-rendering:pixelated\" href=\"{uri}\" xlink:href=\"{uri}\"/>",
        raster.x, raster.y, raster.w, raster.h
    );
    svg.replace_range(start..end, &image);
    // `xlink:href` (for SVG 1.1 tools such as older Inkscape) needs its namespace declared.
    let svg_ns = "xmlns=\"http://www.w3.org/2000/svg\"";
    let with_xlink = format!("{svg_ns} xmlns:xlink=\"http://www.w3.org/1999/xlink\"");
    *svg = svg.replacen(svg_ns, &with_xlink, 1);
    Ok(())
}

/// Standard base64 with padding (RFC 4648), for the data URI above.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn extension_is_appended() {
        assert_eq!(with_ext(Path::new("out/fig.v2"), "png").unwrap(), PathBuf::from("out/fig.v2.png"));
        assert!(with_ext(Path::new(""), "png").is_err());
    }
}
