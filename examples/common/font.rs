//! The bundled DejaVu Sans font, registered with plotters' `ab_glyph` backend so that
//! plots need no system font libraries.

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::style::{register_font, FontStyle};

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVu-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name under which the font is registered.
pub const FAMILY: &str = "sans-serif";

/// Registers the font (once per process).
pub fn register() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the bundled font is not a valid TrueType font"));
    });
    result
}
