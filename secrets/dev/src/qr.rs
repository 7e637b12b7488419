//! The enrolment QR code as a PNG, as OpenBao's totp engine returns in `barcode`.

use qrcodegen::{QrCode, QrCodeEcc};

use crate::api::ApiError;

/// Modules of white border around the code (the QR specification's quiet zone).
const QUIET_MODULES: i32 = 4;

/// A `side`×`side` 8-bit greyscale PNG of `text` as a QR code (medium error correction),
/// centred with its quiet zone; refused when the code does not fit at one pixel a module.
pub(crate) fn png(text: &str, side: u32) -> Result<Vec<u8>, ApiError> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|_| ApiError::bad("the otpauth URL is too long for a QR code"))?;
    let modules = qr.size() + 2 * QUIET_MODULES;
    let scale = side as i32 / modules;
    if scale == 0 {
        return Err(ApiError::bad(format!(
            "qr_size {side} is too small for a {modules}-module code"
        )));
    }
    let offset = (side as i32 - scale * modules) / 2;
    let mut pixels = vec![0xffu8; side as usize * side as usize];
    for (index, pixel) in pixels.iter_mut().enumerate() {
        let (x, y) = (
            (index % side as usize) as i32,
            (index / side as usize) as i32,
        );
        let module_x = (x - offset).div_euclid(scale) - QUIET_MODULES;
        let module_y = (y - offset).div_euclid(scale) - QUIET_MODULES;
        // get_module answers false (light) outside the code, so the border stays white.
        if qr.get_module(module_x, module_y) {
            *pixel = 0;
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let failed = |_| ApiError::internal("the QR code could not be encoded as PNG");
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}
