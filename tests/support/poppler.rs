//! Reading PDFs back with poppler (`pdfinfo`, `pdftotext`, `pdffonts`, `pdftoppm`; Debian's
//! poppler-utils, installed by tests/run.sh).

use std::path::Path;
use std::process::Command;

/// Runs a poppler tool, or fails saying how to install it.
pub fn poppler(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} could not run ({e}): install poppler-utils (`apt-get install poppler-utils`; tests/run.sh does it as root)")
    });
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("poppler prints UTF-8")
}

/// The PDF's text, page by page (pdftotext ends each page with a form feed), laid out as on
/// the page so a label and its value stay on one line.
pub fn pages(pdf: &Path) -> Vec<String> {
    let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8", pdf.to_str().unwrap(), "-"]);
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    let count: usize = poppler("pdfinfo", &[pdf.to_str().unwrap()])
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo gives a page count");
    assert_eq!(pages.len(), count, "one text per page");
    pages
}

/// Renders page 1 of `pdf` (80 dpi) to `target/pdf-pages/NAME.png`, for the README, and checks
/// there is something on it.
pub fn keep_page_one(pdf: &Path, name: &str) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pdf-pages");
    std::fs::create_dir_all(&out).unwrap();
    let stem = out.join(name);
    poppler("pdftoppm", &["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf.to_str().unwrap(), stem.to_str().unwrap()]);
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "page 1 renders to a picture with something on it ({} bytes)", png.len());
}
