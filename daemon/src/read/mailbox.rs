//! Mailboxes written as text inside a forwarded header block, the way clients print them:
//! `Name <a@b>`, `"Name" <a@b>`, `'Name' [a@b]`, `Name [mailto:a@b]`, `Name <a@b<mailto:a@b>>`,
//! `<a@b>`, `a@b`, several separated by `,` or `;`. An empty field (`To:`, `To: <>`,
//! `undisclosed-recipients:;`) is an empty list; names without addresses (`Cc: Alex Carer;
//! Office`, as Outlook writes people it knows) are one mailbox each, with no address.

use crate::message::Address;

/// Every mailbox in `text`, in order. A name equal to its address is dropped.
pub fn parse_list(text: &str) -> Vec<Address> {
    split(text).into_iter().filter_map(|item| parse_one(&item)).collect()
}

/// The first mailbox in `text`.
pub fn parse_first(text: &str) -> Option<Address> {
    parse_list(text).into_iter().next()
}

/// Splits at `,` and `;` outside quotes and brackets.
fn split(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '"') | (None, '«') | (None, '„') | (None, '“') => {
                quote = Some(match c {
                    '«' => '»',
                    '„' => '”',
                    '“' => '”',
                    _ => '"',
                });
                current.push(c);
            }
            (None, '<') | (None, '[') | (None, '(') => {
                depth += 1;
                current.push(c);
            }
            (None, '>') | (None, ']') | (None, ')') => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            (None, ';') if depth == 0 => {
                // Clients put ';' only between mailboxes, never inside a name.
                if !current.trim().is_empty() {
                    items.push(std::mem::take(&mut current));
                }
            }
            (None, ',') if depth == 0 => {
                // "Doe, John <j@x>" would split here; a part with neither @ nor brackets is a
                // name fragment and is joined with what follows.
                if current.contains('@') || current.contains('<') || current.contains('[') {
                    items.push(std::mem::take(&mut current));
                } else if !current.trim().is_empty() {
                    current.push(c);
                }
            }
            (None, c) => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        items.push(current);
    }
    items
}

/// One mailbox; None when there is neither an address nor a name.
fn parse_one(item: &str) -> Option<Address> {
    let item = without_group_label(item.trim());
    if item.is_empty() {
        return None;
    }
    // The first bracketed part holds the address (`<a@b<mailto:a@b>>` keeps the outer one).
    let open = item.find(['<', '[']);
    let (name_part, address) = match open {
        Some(pos) => {
            let name = item.get(..pos).unwrap_or("");
            let inner = item.get(pos + 1..).unwrap_or("");
            let end = inner.find(['<', '>', ']']).unwrap_or(inner.len());
            let addr = inner.get(..end).unwrap_or("");
            (name, clean_address(addr))
        }
        None => {
            // `a@b` alone, or `a@b<mailto:…>` already handled above; a bare name has no @.
            let token = item.split_whitespace().find(|t| t.contains('@')).unwrap_or("");
            if token.is_empty() {
                return Some(Address { address: String::new(), name: Some(clean_name(item)) });
            }
            let rest = item.replacen(token, "", 1);
            return Some(make(&rest, &clean_address(token)));
        }
    };
    if address.is_empty() {
        // "<>" or "Name <>": only what stands before the brackets can be a name.
        let name = clean_name(name_part);
        return if name.is_empty() { None } else { Some(Address { address: String::new(), name: Some(name) }) };
    }
    Some(make(name_part, &address))
}

fn make(name: &str, address: &str) -> Address {
    let name = clean_name(name);
    let name = if name.is_empty() || name.eq_ignore_ascii_case(address) { None } else { Some(name) };
    Address { address: address.to_lowercase(), name }
}

/// `undisclosed-recipients:` or `Staff: a@b` without the group's label (RFC 5322 group syntax).
fn without_group_label(item: &str) -> &str {
    let Some(colon) = item.find(':') else { return item };
    let label = item.get(..colon).unwrap_or("");
    let quoted_or_bracketed = label.contains(['"', '<', '[', '@']);
    if quoted_or_bracketed || label.trim().is_empty() || label.to_ascii_lowercase().ends_with("mailto") {
        return item;
    }
    item.get(colon + 1..).unwrap_or("").trim()
}

fn clean_address(addr: &str) -> String {
    let a = addr.trim();
    let a = a.strip_prefix("mailto:").or_else(|| a.strip_prefix("MAILTO:")).unwrap_or(a);
    a.trim_matches(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '[' | ']' | '"' | '\'' | ',' | ';')).to_string()
}

fn clean_name(name: &str) -> String {
    let mut n = name.trim();
    loop {
        let before = n;
        n = n.trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '«' | '»' | '„' | '”' | '“' | ',' | ';'));
        if n == before {
            break;
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(address: &str, name: Option<&str>) -> Address {
        Address { address: address.into(), name: name.map(String::from) }
    }

    #[test]
    fn forms() {
        assert_eq!(parse_first("John Doe <john.doe@acme.com>"), Some(a("john.doe@acme.com", Some("John Doe"))));
        assert_eq!(parse_first("\"bessie@acme.com\" <bessie@acme.com>"), Some(a("bessie@acme.com", None)));
        assert_eq!(parse_first("<bessie@acme.com>"), Some(a("bessie@acme.com", None)));
        assert_eq!(parse_first("bessie@acme.com"), Some(a("bessie@acme.com", None)));
        assert_eq!(parse_first("Walter <w@acme.com<mailto:w@acme.com>>"), Some(a("w@acme.com", Some("Walter"))));
        assert_eq!(parse_first("Walter Sheltan [mailto:W@acme.com]"), Some(a("w@acme.com", Some("Walter Sheltan"))));
        assert_eq!(parse_first("'Walter' <w@acme.com>"), Some(a("w@acme.com", Some("Walter"))));
        assert_eq!(parse_first("\"Doe, John\" <j@x.org>"), Some(a("j@x.org", Some("Doe, John"))));
    }

    #[test]
    fn lists() {
        let l = parse_list("Walter Sheltan <walter.sheltan@acme.com>; Nicholas <nicholas@globex.corp>");
        assert_eq!(l, vec![a("walter.sheltan@acme.com", Some("Walter Sheltan")), a("nicholas@globex.corp", Some("Nicholas"))]);
        let l = parse_list("a@x.org, b@y.org;");
        assert_eq!(l, vec![a("a@x.org", None), a("b@y.org", None)]);
    }

    #[test]
    fn empty_fields_and_names_without_addresses() {
        for empty in ["", " ", "<>", ";", "undisclosed-recipients:;", "Undisclosed recipients: ;"] {
            assert_eq!(parse_list(empty), vec![], "for {empty:?}");
        }
        assert_eq!(parse_list("Alex Carer; Office"), vec![a("", Some("Alex Carer")), a("", Some("Office"))]);
        assert_eq!(parse_list("Carer, Alex; Office"), vec![a("", Some("Carer, Alex")), a("", Some("Office"))]);
        assert_eq!(parse_list("Staff: a@x.org, b@y.org;"), vec![a("a@x.org", None), a("b@y.org", None)]);
        assert_eq!(parse_first("Jo Parent <>"), Some(a("", Some("Jo Parent"))));
    }
}
