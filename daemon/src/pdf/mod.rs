//! PDF rendering: a typst template and a view's data, compiled in memory into a PDF/A-2b file
//! with its fonts embedded and its headings and tables tagged. No external program runs.
//!
//! The data reaches the template as JSON (`/data.json`), never as markup: whatever a pupil's
//! record holds (`#`, `*`, backslashes, brackets) is shown as written. Characters no embedded
//! font can draw are shown as `[U+XXXX]`, since PDF/A forbids a missing glyph.
//!
//! Nothing here reads the store or the clock: callers pass the view and the time.

mod world;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

/// A view template, compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub enum Template {
    /// One pupil's chronology (`haven export --format pdf`).
    Chronology,
    /// A certificate of destruction (`haven dispose certificate N --format pdf`).
    DisposalCertificate,
    /// The multi-agency chronology (`haven chronology PUPIL --format multiagency`).
    MultiAgency,
    /// The answer to a subject access request (`haven sar export`).
    SubjectAccess,
    /// The safeguarding summary for governors or the DSL team (`haven report summary`).
    Summary,
    /// The inspection pack's lists (`haven report inspection`).
    Inspection,
}

impl Template {
    fn source(self) -> &'static str {
        match self {
            Template::Chronology => include_str!("../../templates/pdf/chronology.typ"),
            Template::DisposalCertificate => include_str!("../../templates/pdf/disposal_certificate.typ"),
            Template::MultiAgency => include_str!("../../templates/pdf/multiagency.typ"),
            Template::SubjectAccess => include_str!("../../templates/pdf/sar.typ"),
            Template::Summary => include_str!("../../templates/pdf/summary.typ"),
            Template::Inspection => include_str!("../../templates/pdf/inspection.typ"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The template did not compile or lay out: a bug in Haven, not in the record.
    #[error("the PDF template does not compile: {0}")]
    Template(String),
    /// The laid-out document could not be written as PDF/A-2b.
    #[error("the PDF could not be written as PDF/A-2b: {0}")]
    Export(String),
    #[error("the PDF's data could not be encoded: {0}")]
    Data(#[from] serde_json::Error),
}

/// A rendered PDF and its page count.
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// Renders `data` through `template` as PDF/A-2b, dated `now` (PDF/A requires a date).
pub fn render<T: Serialize>(template: Template, data: &T, now: DateTime<Utc>) -> Result<Rendered, PdfError> {
    let mut value = serde_json::to_value(data)?;
    world::drawable(&mut value);
    let json = serde_json::to_vec(&value)?;
    let today = typst::foundations::Datetime::from_ymd(now.year(), now.month() as u8, now.day() as u8);
    let doc = world::Doc::new(template.source(), json, today);
    let compiled = typst::compile::<typst_layout::PagedDocument>(&doc);
    let document = compiled.output.map_err(|errs| PdfError::Template(messages(&doc, &errs)))?;
    let stamp = typst::foundations::Datetime::from_ymd_hms(
        now.year(),
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
    )
    .map(typst_pdf::Timestamp::new_utc);
    let standards = typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b]).map_err(|e| PdfError::Export(e.message().to_string()))?;
    let options = typst_pdf::PdfOptions {
        ident: typst::foundations::Smart::Auto,
        creator: typst::foundations::Smart::Custom(Some(format!("Haven {}", env!("CARGO_PKG_VERSION")))),
        timestamp: stamp,
        standards,
        ..Default::default()
    };
    let bytes = typst_pdf::pdf(&document, &options).map_err(|errs| PdfError::Export(messages(&doc, &errs)));
    // typst memoizes across compilations; a daemon that renders now and then must not keep
    // every export's layout in memory.
    typst::comemo::evict(0);
    let bytes = bytes?;
    Ok(Rendered { bytes, pages: document.pages().len() })
}

/// Each diagnostic with the template line it points at and its hints.
fn messages(doc: &world::Doc, errs: &[typst::diag::SourceDiagnostic]) -> String {
    use typst::WorldExt as _;
    errs.iter()
        .map(|e| {
            let mut m = e.message.to_string();
            if let Some(range) = doc.range(e.span) {
                m.push_str(&format!(" (template line {})", doc.line_of(range.start)));
            }
            for h in &e.hints {
                m.push_str(&format!(" (hint: {})", h.v));
            }
            m
        })
        .collect::<Vec<_>>()
        .join("; ")
}
