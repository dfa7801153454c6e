//! The enrolment QR code: the otpauth URL drawn as an SVG (the `qrcode` crate) and inlined as
//! a `data:` image, which the console's Content-Security-Policy allows (`img-src data:`)
//! without any script. Pure.

use base64::Engine as _;

/// A `data:image/svg+xml;base64,…` URL of `text` as a QR code, or "" if it cannot be drawn
/// (the key is shown as text beside it anyway).
pub fn svg_data_url(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else { return String::new() };
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build();
    format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_is_an_inline_svg_image() {
        let url = super::svg_data_url("otpauth://totp/Haven:dsl@school.example?secret=ABC&issuer=Haven");
        let b64 = url.strip_prefix("data:image/svg+xml;base64,").expect("a data: URL");
        let svg = String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
        assert!(!svg.contains("<script"));
    }
}
