//! `login --qr`: the verification address as a QR code in the terminal,
//! for a phone's camera.
//!
//! Each character cell holds two modules, one above the other, drawn with
//! the half blocks `▀`, `▄`, `█` and a space. Light modules are drawn (the
//! terminal's text is light on most terminals) and dark ones left blank,
//! with a quiet zone of [`QUIET_ZONE`] light modules around the code.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, as the QR standard asks.
pub const QUIET_ZONE: usize = 4;

/// The QR code of `text` as lines of half blocks; the error says why the
/// text does not fit in one.
pub fn render(text: &str) -> Result<Vec<String>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| e.to_string())?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    // Light or not, with the quiet zone around the code.
    let light = |x: usize, y: usize| {
        if x < QUIET_ZONE || y < QUIET_ZONE || x >= width + QUIET_ZONE || y >= width + QUIET_ZONE {
            return true;
        }
        colors[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)] == Color::Light
    };
    let lines = (0..size)
        .step_by(2)
        .map(|y| {
            (0..size)
                .map(|x| {
                    let top = light(x, y);
                    // An odd size leaves the last line's lower half to the
                    // quiet zone.
                    let bottom = y + 1 >= size || light(x, y + 1);
                    match (top, bottom) {
                        (true, true) => '█',
                        (true, false) => '▀',
                        (false, true) => '▄',
                        (false, false) => ' ',
                    }
                })
                .collect()
        })
        .collect();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_framed_by_its_quiet_zone() {
        let lines = render("http://localhost:3000/cli/login?code=BCDF-GHJK").unwrap();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // The top two lines are quiet zone: all light.
        assert!(lines[..QUIET_ZONE / 2]
            .iter()
            .all(|l| l.chars().all(|c| c == '█')));
        // The finder pattern's dark ring starts right after the zone.
        let row = lines[QUIET_ZONE / 2].chars().collect::<Vec<_>>();
        assert_eq!(row[QUIET_ZONE - 1], '█');
        assert_eq!(row[QUIET_ZONE], ' ');
    }

    #[test]
    fn text_too_long_for_a_qr_code_is_an_error() {
        assert!(render(&"x".repeat(10_000)).is_err());
    }
}
