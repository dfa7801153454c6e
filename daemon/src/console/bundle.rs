//! A zip archive of an export's files, built in memory: entries stored uncompressed (the
//! attachments are mostly compressed already) with their CRC-32, readable by Windows
//! Explorer, macOS Finder and `unzip`. Pure; no file is written.

/// The archive: every file under the folder `root`.
pub fn zip(root: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let path = format!("{root}/{name}");
        let crc = crc32fast::hash(data);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        // Local file header: version 2.0, flag bit 11 (UTF-8 names), stored, no time.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0x0800, 0, 0, 0x21] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(path.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(data);
        // Its central directory record, "made by" Unix (so the name is not read as a DOS
        // code page) version 2.0.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [0x0314u16, 20, 0x0800, 0, 0, 0x21] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [path.len() as u16, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        // External attributes: a regular file, rw-r--r--.
        central.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(path.as_bytes());
    }
    let start = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let count = files.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unzip` (Debian's Info-ZIP) reads the archive back byte for byte, names in UTF-8 (in a
    /// UTF-8 locale, as a desktop's is).
    #[test]
    fn unzip_reads_back_every_file() {
        let files =
            vec![("chronology.html".to_string(), b"<p>x</p>".to_vec()), ("attachments/1-ab-Zoë.txt".to_string(), vec![0u8, 1, 2, 255])];
        let dir = std::env::temp_dir().join(format!("haven-zip-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.zip"), zip("export-X", &files)).unwrap();
        let status = std::process::Command::new("unzip")
            .args(["-q", "-o", "a.zip"])
            .env("LC_ALL", "C.UTF-8")
            .current_dir(&dir)
            .status()
            .expect("unzip: install the Debian package unzip (tests/run.sh does it)");
        assert!(status.success());
        for (name, data) in &files {
            assert_eq!(&std::fs::read(dir.join("export-X").join(name)).unwrap(), data, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
