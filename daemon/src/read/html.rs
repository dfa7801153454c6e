//! HTML bodies: sanitised with ammonia for storage and display (no scripts, no remote images or
//! trackers, no forms, no styles that could hide text), and turned into readable text for search,
//! alerts and forward detection.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Largest HTML body turned into text in full; past it the text is cut (a 25 MB HTML body is an
/// attack or an export, and its first megabytes say what it is).
const MAX_HTML_FOR_TEXT: usize = 4 * 1024 * 1024;

/// Deepest element nesting rendered to text; deeper documents are flattened first, because the
/// renderer recurses.
const MAX_NESTING: usize = 200;

/// The HTML made safe to show to staff: basic formatting kept; scripts, forms, event handlers,
/// styles and every remote resource removed. Images survive only when they point at a part of the
/// message itself (`cid:`) or carry their data inline.
pub fn sanitize(html: &str) -> String {
    let html = flatten_if_too_deep(html);
    sanitizer().clean(&html).to_string()
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static BUILDER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    BUILDER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(HashSet::from(["http", "https", "mailto", "tel", "cid", "data"]))
            .link_rel(Some("noopener noreferrer nofollow"))
            .attribute_filter(|element, attribute, value| {
                if element == "img" && attribute == "src" {
                    let v = value.trim_start().to_ascii_lowercase();
                    if v.starts_with("cid:") || v.starts_with("data:image/") {
                        return Some(value.into());
                    }
                    return None;
                }
                if attribute == "href" && value.trim_start().to_ascii_lowercase().starts_with("data:") {
                    return None;
                }
                Some(value.into())
            });
        b
    })
}

/// The HTML as plain text: paragraphs and line breaks kept, no markup, links as their text.
pub fn to_text(html: &str) -> String {
    let cut = cut_at_char_boundary(html, MAX_HTML_FOR_TEXT);
    let html = flatten_if_too_deep(cut);
    let rendered =
        html2text::config::plain_no_decorate().no_table_borders().allow_width_overflow().string_from_read(html.as_bytes(), 10_000);
    let text = rendered.unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end()).collect();
    collapse_blank_runs(&lines.join("\n")).trim().to_string()
}

/// Content-IDs that the HTML refers to with `cid:` URLs (lower-cased, without brackets).
pub fn referenced_cids(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(pos) = rest.find("cid:") {
        let after = rest.get(pos + 4..).unwrap_or("");
        let end = after.find(|c: char| c == '"' || c == '\'' || c == ')' || c == '>' || c.is_whitespace()).unwrap_or(after.len());
        let id = after.get(..end).unwrap_or("").trim_matches(['<', '>']);
        if !id.is_empty() {
            out.push(id.to_string());
        }
        rest = after;
    }
    out
}

fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Counts the deepest run of opening tags; when over [`MAX_NESTING`], drops every tag that is not
/// a line break or paragraph so the renderer and sanitiser never recurse deeply.
fn flatten_if_too_deep(html: &str) -> std::borrow::Cow<'_, str> {
    if max_depth(html) <= MAX_NESTING {
        return std::borrow::Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(start..).unwrap_or("");
        let end = after.find('>').map(|e| e + 1).unwrap_or(after.len());
        let tag = after.get(..end).unwrap_or("").to_ascii_lowercase();
        if tag.starts_with("<br") || tag.starts_with("<p") || tag.starts_with("</p") {
            out.push_str(&tag);
        } else if tag.starts_with("</div") || tag.starts_with("</tr") || tag.starts_with("</li") {
            out.push_str("<br>");
        }
        rest = after.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Rough element depth: opening tags minus closing tags, ignoring void and self-closing ones.
fn max_depth(html: &str) -> usize {
    const VOID: [&str; 14] =
        ["br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source", "track", "embed", "param"];
    let bytes = html.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) == Some(&b'<') {
            let closing = bytes.get(i + 1) == Some(&b'/');
            let name_start = if closing { i + 2 } else { i + 1 };
            let mut j = name_start;
            while j < bytes.len() && bytes.get(j).is_some_and(|b| b.is_ascii_alphanumeric()) {
                j += 1;
            }
            if j > name_start {
                let name = html.get(name_start..j).unwrap_or("").to_ascii_lowercase();
                if closing {
                    depth = depth.saturating_sub(1);
                } else if !VOID.contains(&name.as_str()) {
                    depth += 1;
                    max = max.max(depth);
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    max
}

/// At most one blank line in a row.
pub(crate) fn collapse_blank_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_forms_and_remote_images_are_removed() {
        let out = sanitize(
            r#"<p onclick="x()">Hi <b>there</b><script>alert(1)</script><img src="https://t.example/p.gif"><img src="cid:logo@x"><form><input name=a></form></p>"#,
        );
        assert!(!out.contains("script"), "{out}");
        assert!(!out.contains("t.example"), "{out}");
        assert!(!out.contains("onclick"), "{out}");
        assert!(!out.contains("<form"), "{out}");
        assert!(!out.contains("<input"), "{out}");
        assert!(out.contains("cid:logo@x"), "{out}");
        assert!(out.contains("<b>there</b>"), "{out}");
    }

    #[test]
    fn html_becomes_plain_text() {
        let text = to_text("<p>Hello <b>Sam</b></p><p>Line two<br>three</p>");
        assert_eq!(text, "Hello Sam\n\nLine two\nthree");
    }

    #[test]
    fn very_deep_html_does_not_overflow() {
        let html = "<div>".repeat(50_000) + "deep" + &"</div>".repeat(50_000);
        assert!(to_text(&html).contains("deep"));
        assert!(sanitize(&html).contains("deep"));
    }

    #[test]
    fn cids_are_found() {
        assert_eq!(referenced_cids(r#"<img src="cid:Image001.png@01D">"#), vec!["image001.png@01d"]);
    }
}
