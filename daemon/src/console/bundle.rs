//! A zip archive of an export's files, built in memory with the zip crate: entries stored
//! uncompressed (the attachments are mostly compressed already), names in UTF-8, readable by Windows Explorer, macOS Finder and `unzip`. Pure; no file is
//! written.

use std::io::Write;
use zip::write::SimpleFileOptions;

/// The archive: every file under the folder `root`.
pub fn zip(root: &str, files: &[(String, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).unix_permissions(0o644);
    for (name, data) in files {
        archive.start_file(format!("{root}/{name}"), options)?;
        archive.write_all(data)?;
    }
    Ok(archive.finish()?.into_inner())
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
        std::fs::write(dir.join("a.zip"), zip("export-X", &files).unwrap()).unwrap();
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
