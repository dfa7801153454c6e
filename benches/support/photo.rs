//! A photo attached to a generated forward, for the benches that file realistic mail.

/// `kb` kilobytes of attachment, base64 in 76-character lines, different for each message `i`
/// (blobs are stored once by content).
pub fn attachment(i: usize, kb: usize) -> String {
    use base64::Engine;
    let data: Vec<u8> = (0..kb * 1024).map(|k| ((k * 7919 + i * 31) % 251) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
}
