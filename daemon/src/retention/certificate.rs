//! The certificate of destruction: one typed model ([`Certificate`]) drawn from a carried-out
//! disposal's log entry, rendered by askama as text (`disposal_certificate.txt`) or HTML
//! (`disposal_certificate.html`, escaped), and by typst as PDF/A (`pdf/disposal_certificate.typ`). It holds no pupil content: the series, the counts,
//! the dates and the people who asked, approved and carried it out.

use crate::store::Destroyed;
use askama::Template;

/// One line of what was destroyed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub what: &'static str,
    pub count: String,
}

/// Everything a certificate says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Certificate {
    pub school: String,
    /// "D-0007".
    pub reference: String,
    pub series: String,
    /// Why it could be destroyed, in words.
    pub basis: String,
    pub requested_by: String,
    pub requested_on: String,
    pub approved_by: String,
    pub approved_on: String,
    pub cooling_off_ended: String,
    pub run_by: String,
    pub run_on: String,
    pub destroyed: Vec<Line>,
    pub backups_expire_on: String,
    pub backups_kept_for: String,
    pub issued_on: String,
}

/// The lines of a disposal's counts, in the order a reader checks them.
pub fn lines(d: &Destroyed) -> Vec<Line> {
    let n = |what: &'static str, count: u64| Line { what, count: count.to_string() };
    vec![
        n("incidents about this pupil only", d.incidents),
        n("incidents shared with other pupils (this pupil's link removed; kept for the others)", d.shared_incidents_unlinked),
        n("original messages", d.messages),
        n("copies of them in the mailbox", d.mailbox_copies),
        n("attachments", d.attachments),
        n("stored message and attachment contents", d.blobs),
        n("outcome deadlines", d.actions),
        n("queued or sent emails", d.outbox),
        n("released holds", d.holds),
        n("retention review decisions", d.reviews),
        n("contacts linked to this pupil only", d.contacts),
        Line {
            what: "the pupil's own key (older copies of the database cannot open what it sealed)",
            count: if d.pupil_key { "destroyed".into() } else { "none".into() },
        },
        Line {
            what: "directory entry",
            count: if d.directory_entry { "deleted".into() } else { "kept: records in another series remain".into() },
        },
    ]
}

#[derive(Template)]
#[template(path = "disposal_certificate.txt")]
struct Text<'a> {
    c: &'a Certificate,
}

#[derive(Template)]
#[template(path = "disposal_certificate.html")]
struct Html<'a> {
    c: &'a Certificate,
}

impl Certificate {
    pub fn text(&self) -> Result<String, askama::Error> {
        Text { c: self }.render()
    }

    pub fn html(&self) -> Result<String, askama::Error> {
        Html { c: self }.render()
    }

    /// The certificate as PDF/A-2b, dated `now`.
    #[cfg(feature = "pdf")]
    pub fn pdf(&self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::pdf::Rendered, crate::pdf::PdfError> {
        crate::pdf::render(crate::pdf::Template::DisposalCertificate, self, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Certificate {
        Certificate {
            school: "Test <School>".into(),
            reference: "D-0001".into(),
            series: "child_protection_file".into(),
            basis: "past its retention date".into(),
            requested_by: "Dana Lead (DSL)".into(),
            requested_on: "1 Dec 2026".into(),
            approved_by: "Harriet Head (head)".into(),
            approved_on: "2 Dec 2026".into(),
            cooling_off_ended: "16 Dec 2026".into(),
            run_by: "Dana Lead (DSL)".into(),
            run_on: "17 Dec 2026".into(),
            destroyed: lines(&Destroyed { incidents: 3, directory_entry: true, ..Destroyed::default() }),
            backups_expire_on: "2027-01-21".into(),
            backups_kept_for: "35 days".into(),
            issued_on: "17 Dec 2026".into(),
        }
    }

    #[test]
    fn text_and_html_say_the_same_and_html_is_escaped() {
        let c = sample();
        let text = c.text().expect("text");
        assert!(text.contains("Disposal D-0001: records in the retention series \"child_protection_file\""), "{text}");
        assert!(text.contains("incidents about this pupil only: 3"), "{text}");
        assert!(text.contains("directory entry: deleted"), "{text}");
        assert!(text.contains("by 2027-01-21"), "{text}");
        let html = c.html().expect("html");
        assert!(html.contains("Test &#60;School&#62;") || html.contains("Test &lt;School&gt;"), "{html}");
        assert!(html.contains("<th>incidents about this pupil only</th><td>3</td>"), "{html}");
    }
}
