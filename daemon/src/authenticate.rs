//! Who may file: the sender must be an active member of staff, named as the only mailbox of
//! the only From header, and, when the school names its trusted mail server
//! (`intake.trusted_authserv_id`), that server's topmost Authentication-Results must show DMARC
//! pass for the very domain Haven reads in From (`header.from`), or DKIM pass aligned with it.
//! Pure: the verdict is made from headers already received and the directory.
//!
//! The Authentication-Results header (RFC 8601) is read by a tokenizer of its own, so that a
//! `;` or `dmarc=pass` inside a quoted string or a comment is never taken for a result. Anything
//! it cannot read in the trusted server's header counts as no pass.

use crate::directory::{Directory, Staff};
use crate::message::Message;

pub enum SenderCheck<'a> {
    Staff(&'a Staff),
    /// The quarantine reason.
    Refused(String),
}

pub fn check_sender<'a>(msg: &Message, dir: &'a Directory, trusted_authserv_id: Option<&str>) -> SenderCheck<'a> {
    if let Err(reason) = one_sender(msg) {
        return SenderCheck::Refused(reason);
    }
    let Some(from) = &msg.from else {
        return SenderCheck::Refused("no From address".into());
    };
    let Some(staff) = dir.active_staff_by_email(&from.address) else {
        return SenderCheck::Refused("sender is not an active member of staff".into());
    };
    if let Some(trusted) = trusted_authserv_id
        && let Err(reason) = authenticated_by(msg, trusted, &from.address)
    {
        return SenderCheck::Refused(reason);
    }
    SenderCheck::Staff(staff)
}

/// A message whose From names several mailboxes (or a group, or comes in several headers) has
/// no one sender: a server may have authenticated another of them than the one Haven would use.
fn one_sender(msg: &Message) -> Result<(), String> {
    let shape = msg.from_shape;
    if shape.headers > 1 {
        return Err(format!("the message has {} From headers: Haven files only a message with one sender", shape.headers));
    }
    if shape.group {
        return Err("the From header is a group: Haven files only a message with one sender".into());
    }
    if shape.addresses > 1 {
        return Err(format!("the From header names {} addresses: Haven files only a message with one sender", shape.addresses));
    }
    Ok(())
}

/// Checks the topmost Authentication-Results header added by `trusted`.
fn authenticated_by(msg: &Message, trusted: &str, from_address: &str) -> Result<(), String> {
    let from_domain = domain_name(from_address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default());
    let mut headers = msg
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|h| parse_authentication_results(&h.value));
    let results = loop {
        match headers.next() {
            None => return Err(format!("no Authentication-Results from the trusted server {trusted}")),
            Some(Ok(ar)) if ar.authserv_id.eq_ignore_ascii_case(trusted) => break ar.results,
            Some(Err(e)) if e.authserv_id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(trusted)) => {
                return Err(format!(
                    "the Authentication-Results of the trusted server {trusted} could not be read ({}), so it shows no pass",
                    e.reason
                ));
            }
            Some(_) => {}
        }
    };

    // The server's DMARC check names the From domain it read; when that is not the domain
    // Haven reads, the two disagree about who sent the message, whatever the result.
    if let Some(other) =
        results.iter().filter(|r| r.method == "dmarc").filter_map(|r| r.prop("header.from")).map(domain_name).find(|d| *d != from_domain)
    {
        return Err(format!("the trusted server's DMARC result is for header.from={other}, not for the From domain {from_domain}"));
    }
    let dmarc_pass = results.iter().any(|r| r.method == "dmarc" && r.result == "pass" && r.prop("header.from").is_some());
    let dkim_aligned = results
        .iter()
        .any(|r| r.method == "dkim" && r.result == "pass" && r.prop("header.d").is_some_and(|d| aligned(&domain_name(d), &from_domain)));
    if dmarc_pass || dkim_aligned {
        Ok(())
    } else if results.iter().any(|r| r.method == "dmarc" && r.result == "pass") {
        Err("the trusted server's DMARC pass does not name the From domain it checked (no header.from), and no aligned DKIM pass".into())
    } else {
        Err("sender authentication failed (no DMARC pass or aligned DKIM pass from the trusted server)".into())
    }
}

/// A domain as compared: lower case, without a trailing root dot.
fn domain_name(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Relaxed alignment: the signing domain is the From domain or a parent of it.
fn aligned(d: &str, from_domain: &str) -> bool {
    !d.is_empty() && (from_domain == d || from_domain.ends_with(&format!(".{d}")))
}

#[derive(Debug, PartialEq)]
struct AuthResults {
    authserv_id: String,
    /// Empty for `authserv-id; none`.
    results: Vec<MethodResult>,
}

#[derive(Debug, PartialEq)]
struct MethodResult {
    /// Lower case, without its version (`dkim/1` is `dkim`).
    method: String,
    /// Lower case.
    result: String,
    /// `reason="…"`, unquoted.
    reason: Option<String>,
    /// `ptype.property` (lower case) and the value, quoted strings unquoted.
    props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Why a header could not be read, and whose it was when that much could be read.
#[derive(Debug, PartialEq)]
struct ParseError {
    authserv_id: Option<String>,
    reason: String,
}

/// One token of the header, comments and white space already dropped.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A run of characters that are not white space, comment or quote marks, nor `; = / . @`.
    Word(String),
    /// A quoted string's content, quoted pairs undone.
    Quoted(String),
    Semi,
    Equals,
    Slash,
    Dot,
    At,
}

#[derive(Debug, Clone, PartialEq)]
struct Lexeme {
    tok: Tok,
    /// White space or a comment came before it: it does not continue the previous value.
    spaced: bool,
}

/// Splits the header into tokens, lazily, so that the authserv-id is known even when the
/// header breaks down further on.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    failed: bool,
}

impl<'a> Lexer<'a> {
    fn new(value: &'a str) -> Self {
        Lexer { chars: value.char_indices().peekable(), failed: false }
    }

    /// Skips white space and comments (nested, with quoted pairs); true when any was skipped.
    fn skip_cfws(&mut self) -> Result<bool, String> {
        let mut skipped = false;
        while let Some(&(at, c)) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.chars.next();
                }
                '(' => {
                    self.chars.next();
                    let mut depth = 1u32;
                    while depth > 0 {
                        match self.chars.next() {
                            None => return Err(format!("unterminated comment opened at character {}", at + 1)),
                            Some((_, '\\')) => {
                                if self.chars.next().is_none() {
                                    return Err(format!("unterminated comment opened at character {}", at + 1));
                                }
                            }
                            Some((_, '(')) => depth += 1,
                            Some((_, ')')) => depth -= 1,
                            Some(_) => {}
                        }
                    }
                }
                ')' => return Err(format!("unbalanced ')' at character {}", at + 1)),
                _ => return Ok(skipped),
            }
            skipped = true;
        }
        Ok(skipped)
    }

    fn quoted(&mut self, at: usize) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.chars.next() {
                None => return Err(format!("unterminated quoted string opened at character {}", at + 1)),
                Some((_, '"')) => return Ok(s),
                Some((_, '\\')) => match self.chars.next() {
                    Some((_, c)) => s.push(c),
                    None => return Err(format!("unterminated quoted string opened at character {}", at + 1)),
                },
                Some((_, c)) => s.push(c),
            }
        }
    }

    fn lex(&mut self) -> Result<Option<Lexeme>, String> {
        let spaced = self.skip_cfws()?;
        let Some((at, c)) = self.chars.next() else {
            return Ok(None);
        };
        let tok = match c {
            ';' => Tok::Semi,
            '=' => Tok::Equals,
            '/' => Tok::Slash,
            '.' => Tok::Dot,
            '@' => Tok::At,
            '"' => Tok::Quoted(self.quoted(at)?),
            c if c.is_control() => return Err(format!("control character at character {}", at + 1)),
            c => {
                let mut w = String::from(c);
                while let Some(&(_, c)) = self.chars.peek() {
                    if c.is_control() || " ()\";=/.@".contains(c) {
                        break;
                    }
                    w.push(c);
                    self.chars.next();
                }
                Tok::Word(w)
            }
        };
        Ok(Some(Lexeme { tok, spaced }))
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Lexeme, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.lex().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// RFC 8601: `authserv-id [version] ( ; none / 1*( ; method[/version]=result [reason=value]
/// *(ptype.property=value) ) )`, with comments and quoted strings anywhere RFC 5322 allows.
///
/// Lenient only where it cannot matter: an empty `;;` and a final `;` are skipped, and a
/// property without a `ptype.` (Microsoft's `action=none`, Fastmail's `x-bits=2048`) is kept
/// under its bare name.
fn parse_authentication_results(value: &str) -> Result<AuthResults, ParseError> {
    let mut p = Parser { lexer: Lexer::new(value).peekable() };
    let authserv_id = p.authserv_id().map_err(|reason| ParseError { authserv_id: None, reason })?;
    let results = p.results().map_err(|reason| ParseError { authserv_id: Some(authserv_id.clone()), reason })?;
    Ok(AuthResults { authserv_id, results })
}

struct Parser<'a> {
    lexer: std::iter::Peekable<Lexer<'a>>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Option<Lexeme>, String> {
        self.lexer.next().transpose()
    }

    /// The next token without taking it; a lexing error is reported here, not taken for the end.
    fn peek(&mut self) -> Result<Option<Lexeme>, String> {
        match self.lexer.peek() {
            None => Ok(None),
            Some(Ok(l)) => Ok(Some(l.clone())),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// True at the end or at a `;`: the current result (or the header) is over.
    fn at_end_of_result(&mut self) -> Result<bool, String> {
        Ok(matches!(self.peek()?, None | Some(Lexeme { tok: Tok::Semi, .. })))
    }

    fn authserv_id(&mut self) -> Result<String, String> {
        let id = match self.next()? {
            Some(Lexeme { tok: Tok::Quoted(q), .. }) => q,
            Some(Lexeme { tok: Tok::Word(w), .. }) => {
                // A host name: words and dots written without spaces.
                let mut id = w;
                while let Some(Lexeme { tok: tok @ (Tok::Dot | Tok::Word(_)), spaced: false }) = self.peek()? {
                    self.next()?;
                    match tok {
                        Tok::Word(w) => id.push_str(&w),
                        _ => id.push('.'),
                    }
                }
                id
            }
            _ => return Err("no authserv-id".into()),
        };
        if id.is_empty() {
            return Err("empty authserv-id".into());
        }
        Ok(id)
    }

    fn results(&mut self) -> Result<Vec<MethodResult>, String> {
        // Optional version: digits after the authserv-id.
        if let Some(Lexeme { tok: Tok::Word(w), spaced: true }) = self.peek()?
            && w.bytes().all(|b| b.is_ascii_digit())
        {
            self.next()?;
        }
        let mut results = Vec::new();
        let mut saw_none = false;
        let mut any = false;
        loop {
            match self.next()? {
                None if any => break,
                None => return Err("no results after the authserv-id".into()),
                Some(Lexeme { tok: Tok::Semi, .. }) => any = true,
                Some(_) => return Err("expected ';' after the authserv-id or a result".into()),
            }
            if self.at_end_of_result()? {
                continue;
            }
            if let Some(Lexeme { tok: Tok::Word(w), .. }) = self.peek()?
                && w.eq_ignore_ascii_case("none")
            {
                self.next()?;
                if !self.at_end_of_result()? {
                    return Err("'none' must stand alone".into());
                }
                saw_none = true;
            } else {
                results.push(self.resinfo()?);
            }
        }
        if saw_none && !results.is_empty() {
            return Err("'none' beside results".into());
        }
        Ok(results)
    }

    /// `method[/version]=result [reason=value] *(ptype.property=value)`, up to the next `;`.
    fn resinfo(&mut self) -> Result<MethodResult, String> {
        let method = match self.next()? {
            Some(Lexeme { tok: Tok::Word(w), .. }) if is_keyword(&w) => w.to_ascii_lowercase(),
            _ => return Err("a result does not start with a method name".into()),
        };
        if let Some(Lexeme { tok: Tok::Slash, .. }) = self.peek()? {
            self.next()?;
            match self.next()? {
                Some(Lexeme { tok: Tok::Word(v), .. }) if v.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return Err(format!("{method}: the method version is not a number")),
            }
        }
        if !matches!(self.next()?, Some(Lexeme { tok: Tok::Equals, .. })) {
            return Err(format!("{method}: expected '=' and a result"));
        }
        let result = match self.next()? {
            Some(Lexeme { tok: Tok::Word(w), .. }) if is_keyword(&w) => w.to_ascii_lowercase(),
            _ => return Err(format!("{method}: the result is not a keyword")),
        };
        let mut reason = None;
        let mut props = Vec::new();
        while !self.at_end_of_result()? {
            let name = self.property_name().map_err(|e| format!("{method}: {e}"))?;
            if !matches!(self.next()?, Some(Lexeme { tok: Tok::Equals, .. })) {
                return Err(format!("{method}: expected '=' after {name}"));
            }
            let value = self.pvalue().map_err(|e| format!("{method}: {name}: {e}"))?;
            if name == "reason" && props.is_empty() && reason.is_none() {
                reason = Some(value);
            } else {
                props.push((name, value));
            }
        }
        Ok(MethodResult { method, result, reason, props })
    }

    /// `ptype.property`, where RFC 8601 lets comments and white space sit around the dot, or a
    /// bare name (`reason`, vendors' `x-…`); lower case.
    fn property_name(&mut self) -> Result<String, String> {
        let mut name = match self.next()? {
            Some(Lexeme { tok: Tok::Word(w), .. }) => w.to_ascii_lowercase(),
            _ => return Err("expected a property name".into()),
        };
        while let Some(Lexeme { tok: Tok::Dot, .. }) = self.peek()? {
            self.next()?;
            match self.next()? {
                Some(Lexeme { tok: Tok::Word(w), .. }) => {
                    name.push('.');
                    name.push_str(&w.to_ascii_lowercase());
                }
                _ => return Err(format!("property {name}. has no name after the dot")),
            }
        }
        Ok(name)
    }

    /// A property value: a token, a quoted string, or `local-part@domain` (whose local part may
    /// be quoted), read as one run of tokens with nothing between them; quoted parts unquoted.
    fn pvalue(&mut self) -> Result<String, String> {
        let mut value = String::new();
        let mut first = true;
        while !self.at_end_of_result()? {
            if !first && self.peek()?.is_some_and(|l| l.spaced) {
                break;
            }
            match self.next()?.map(|l| l.tok) {
                Some(Tok::Word(w) | Tok::Quoted(w)) => value.push_str(&w),
                Some(Tok::Dot) => value.push('.'),
                Some(Tok::At) => value.push('@'),
                Some(Tok::Slash) => value.push('/'),
                Some(Tok::Equals) => value.push('='),
                Some(Tok::Semi) | None => break,
            }
            first = false;
        }
        if first {
            return Err("no value".into());
        }
        Ok(value)
    }
}

/// RFC 8601 `Keyword` (an ldh-str: letters, digits, inner hyphens), underscores allowed too.
fn is_keyword(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && !w.starts_with('-') && !w.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> AuthResults {
        parse_authentication_results(value).unwrap_or_else(|e| panic!("{value}: {e:?}"))
    }

    fn error(value: &str) -> ParseError {
        match parse_authentication_results(value) {
            Ok(ar) => panic!("{value} was read as {ar:?}"),
            Err(e) => e,
        }
    }

    /// What a trusted header lets through for a From at school.example: Ok(()) is "file it".
    fn verdict(value: &str) -> Result<(), String> {
        let msg = crate::read::read_message(
            format!(
                "Authentication-Results: {value}\nFrom: Dana Lead <dsl@school.example>\nSubject: x\n\
                 Message-ID: <1@school.example>\n\nhello\n"
            )
            .as_bytes(),
        )
        .unwrap();
        authenticated_by(&msg, "mx.school.example", "dsl@school.example")
    }

    #[test]
    fn parses_results_with_comments_and_version() {
        let ar = parse(
            "mx.school.example 1; dkim=pass (2048-bit key) header.d=school.example header.s=s1; \
             spf=pass smtp.mailfrom=school.example; dmarc=pass (p=quarantine) header.from=school.example",
        );
        assert_eq!(ar.authserv_id, "mx.school.example");
        assert_eq!(ar.results.len(), 3);
        assert_eq!(ar.results[0].prop("header.d"), Some("school.example"));
        assert_eq!(ar.results[2].method, "dmarc");
        assert_eq!(ar.results[2].prop("header.from"), Some("school.example"));
    }

    #[test]
    fn reads_what_real_servers_write() {
        // Gmail.
        let ar = parse(
            "mx.google.com;\r\n       dkim=pass header.i=@school.example header.s=s1 header.b=Ab+c/D=;\r\n       \
             spf=pass (google.com: domain of x@school.example designates 1.2.3.4 as permitted sender) \
             smtp.mailfrom=x@school.example;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=school.example",
        );
        assert_eq!(ar.results.len(), 3);
        assert_eq!(ar.results[0].prop("header.b"), Some("Ab+c/D="));
        assert_eq!(ar.results[1].prop("smtp.mailfrom"), Some("x@school.example"));
        // Fastmail: bare x- properties, method versions, a trailing ';'.
        let ar = parse(
            "mx4.messagingengine.com; dkim=pass (2048-bit rsa key sha256) header.d=school.example \
             header.i=@school.example header.b=ZZ x-bits=2048 x-keytype=rsa; dkim/1=pass header.d=school.example; \
             x-aligned-from=pass (Address match); dmarc=pass policy.published-domain-policy=none header.from=school.example;",
        );
        assert_eq!(ar.results.len(), 4);
        assert_eq!(ar.results[0].prop("x-bits"), Some("2048"));
        assert_eq!(ar.results[1].method, "dkim");
        // Microsoft 365's compauth carries a reason after the result.
        let ar = parse("mx.school.example; dmarc=pass action=none header.from=school.example;compauth=pass reason=100");
        assert_eq!(ar.results[1].reason.as_deref(), Some("100"));
        assert_eq!(ar.results[0].prop("action"), Some("none"));
    }

    #[test]
    fn reads_quoted_ids_reasons_and_spaced_syntax() {
        let ar = parse(
            "\"mx.school.example\" (the border) 7 ; dkim / 1 = pass reason=\"good \\\"sig\\\"; ok\" \
             header . d = school.example ( nested (comment; dmarc=pass) \\) here ) header.s=s1",
        );
        assert_eq!(ar.authserv_id, "mx.school.example");
        assert_eq!(ar.results.len(), 1);
        let r = &ar.results[0];
        assert_eq!((r.method.as_str(), r.result.as_str()), ("dkim", "pass"));
        assert_eq!(r.reason.as_deref(), Some("good \"sig\"; ok"));
        assert_eq!(r.prop("header.d"), Some("school.example"));
        assert_eq!(r.prop("header.s"), Some("s1"));
    }

    #[test]
    fn none_means_no_results() {
        assert_eq!(parse("mx.school.example; none").results, Vec::new());
        assert_eq!(parse("mx.school.example 1 (nothing checked) ; none").results, Vec::new());
        assert!(error("mx.school.example; none dmarc=pass").reason.contains("none"));
        assert!(error("mx.school.example; none; dmarc=pass header.from=school.example").reason.contains("none"));
    }

    /// Issue 17: the server wrote `dmarc=fail`; the attacker's envelope sender carried a quoted
    /// `;dmarc=pass`. It is one property value, and the message has no pass.
    #[test]
    fn a_pass_inside_a_quoted_string_is_not_a_pass() {
        let header = "mx.school.example; dmarc=fail header.from=school.example; \
                      spf=pass smtp.mailfrom=\"x;dmarc=pass x\"@evil.example";
        let ar = parse(header);
        assert_eq!(ar.results.len(), 2, "{ar:?}");
        assert_eq!(ar.results[0].result, "fail");
        assert_eq!(ar.results[1].prop("smtp.mailfrom"), Some("x;dmarc=pass x@evil.example"));
        assert!(verdict(header).is_err());
        // The attacker's text first, before the server's own result.
        let header = "mx.school.example; spf=pass smtp.mailfrom=\"a; dmarc=pass header.from=school.example\"@evil.example; \
                      dmarc=fail header.from=school.example";
        assert!(verdict(header).is_err(), "{:?}", parse(header));
    }

    #[test]
    fn a_pass_inside_a_comment_is_not_a_pass() {
        for header in [
            "mx.school.example; dmarc=fail (dmarc=pass) header.from=school.example",
            "mx.school.example; dmarc=fail (x; dmarc=pass header.from=school.example) header.from=school.example",
            "mx.school.example; dmarc=fail (a (nested; dmarc=pass) b) header.from=school.example",
            "mx.school.example; dmarc=fail (escaped \\) ; dmarc=pass header.from=school.example) header.from=school.example",
            "mx.school.example (; dmarc=pass header.from=school.example) ; dmarc=fail header.from=school.example",
        ] {
            let ar = parse(header);
            assert_eq!(ar.results.len(), 1, "{header}: {ar:?}");
            assert_eq!(ar.results[0].result, "fail", "{header}");
            assert!(verdict(header).is_err(), "{header}");
        }
    }

    #[test]
    fn an_unterminated_quote_or_comment_is_no_pass() {
        for (header, why) in [
            (
                "mx.school.example; dmarc=pass header.from=school.example; spf=pass smtp.mailfrom=\"x@evil.example",
                "unterminated quoted string",
            ),
            ("mx.school.example; spf=pass smtp.mailfrom=\"x; dmarc=pass header.from=school.example", "unterminated quoted string"),
            ("mx.school.example; dmarc=pass header.from=school.example (unclosed", "unterminated comment"),
            ("mx.school.example; dmarc=pass header.from=school.example (escaped close \\)", "unterminated comment"),
            ("mx.school.example; dmarc=pass header.from=school.example)", "unbalanced ')'"),
            ("mx.school.example; dmarc=pass header.from=\"school.example\\", "unterminated quoted string"),
        ] {
            let e = error(header);
            assert_eq!(e.authserv_id.as_deref(), Some("mx.school.example"), "{header}");
            assert!(e.reason.contains(why), "{header}: {e:?}");
            let refused = verdict(header).unwrap_err();
            assert!(refused.contains("could not be read") && refused.contains(why), "{header}: {refused}");
        }
    }

    /// Cut anywhere, a hostile header neither panics the parser nor becomes a pass.
    #[test]
    fn no_prefix_of_a_hostile_header_is_a_pass() {
        for header in [
            "mx.school.example; dmarc=fail header.from=school.example; spf=pass smtp.mailfrom=\"x;dmarc=pass x\"@evil.example",
            "mx.school.example; dmarc=fail (a (b; dmarc=pass header.from=school.example) \\) c) header.from=school.example",
            "mx.school.example; spf=pass smtp.mailfrom=\"\\\"; dmarc=pass header.from=school.example\"@evil.example",
        ] {
            for (i, _) in header.char_indices().skip(1) {
                let prefix = &header[..i];
                let _ = parse_authentication_results(prefix);
                assert!(verdict(prefix).is_err(), "{prefix:?} passed");
            }
            assert!(verdict(header).is_err(), "{header:?} passed");
        }
    }

    #[test]
    fn malformed_results_are_errors() {
        for header in [
            "",
            "; dmarc=pass header.from=school.example",
            "mx.school.example",
            "mx.school.example dmarc=pass",
            "mx.school.example; =pass",
            "mx.school.example; dmarc",
            "mx.school.example; dmarc=",
            "mx.school.example; dmarc=\"pass\" header.from=school.example",
            "mx.school.example; dmarc/x=pass header.from=school.example",
            "mx.school.example; dmarc=pass header.from",
            "mx.school.example; dmarc=pass header.from=",
            "mx.school.example; dmarc=pass header.from=; x=y",
            "mx.school.example; dmarc=pass stray header.from=school.example",
            "mx.school.example; dmarc=pass header.=school.example",
            "mx.school.example; dmarc=pass \"header.from\"=school.example",
        ] {
            error(header);
        }
    }

    #[test]
    fn empty_results_between_semicolons_are_skipped() {
        let ar = parse("mx.school.example;; dmarc=pass header.from=school.example ;");
        assert_eq!(ar.results.len(), 1);
    }

    #[test]
    fn the_dmarc_pass_must_be_for_the_from_domain() {
        assert_eq!(verdict("mx.school.example; dmarc=pass header.from=school.example"), Ok(()));
        assert_eq!(verdict("mx.school.example; dmarc=pass header.from=School.Example."), Ok(()));
        let e = verdict("mx.school.example; dmarc=pass header.from=evil.example").unwrap_err();
        assert!(e.contains("header.from=evil.example") && e.contains("school.example"), "{e}");
        // An aligned DKIM pass does not outweigh a DMARC check made on another From.
        let e = verdict("mx.school.example; dkim=pass header.d=school.example; dmarc=fail header.from=evil.example").unwrap_err();
        assert!(e.contains("header.from=evil.example"), "{e}");
        // A pass that does not say for which domain vouches for none.
        let e = verdict("mx.school.example; dmarc=pass").unwrap_err();
        assert!(e.contains("no header.from"), "{e}");
        // The aligned-DKIM path as before.
        assert_eq!(verdict("mx.school.example; dkim=pass header.d=school.example; dmarc=none"), Ok(()));
        assert!(verdict("mx.school.example; dkim=pass header.d=evilschool.example").is_err());
        assert!(verdict("mx.school.example; dkim=pass header.d=\"\"").is_err());
    }

    #[test]
    fn only_the_trusted_servers_topmost_header_counts() {
        let msg = crate::read::read_message(
            b"Authentication-Results: mx.attacker.example; dmarc=pass header.from=school.example\n\
              Authentication-Results: mx.school.example; dmarc=fail header.from=school.example\n\
              Authentication-Results: mx.school.example; dmarc=pass header.from=school.example\n\
              From: dsl@school.example\nSubject: x\n\nhello\n",
        )
        .unwrap();
        assert!(authenticated_by(&msg, "mx.school.example", "dsl@school.example").is_err());
        assert_eq!(authenticated_by(&msg, "MX.attacker.example", "dsl@school.example"), Ok(()));
    }

    #[test]
    fn a_from_must_name_one_mailbox_once() {
        let shape = |headers: &str| {
            let raw = format!("{headers}Subject: x\nMessage-ID: <1@school.example>\n\nhello\n");
            let msg = crate::read::read_message(raw.as_bytes()).unwrap();
            (msg.from.as_ref().map(|a| a.address.clone()), one_sender(&msg))
        };
        assert_eq!(shape("From: Dana Lead <dsl@school.example>\n"), (Some("dsl@school.example".into()), Ok(())));
        assert_eq!(shape("From: dsl@school.example (Dana Lead)\n").1, Ok(()));
        assert_eq!(shape("From: \"Lead, Dana\" <dsl@school.example>\n").1, Ok(()));
        let (_, two) = shape("From: dsl@school.example\nFrom: x@evil.example\n");
        assert!(two.unwrap_err().contains("2 From headers"));
        let (_, several) = shape("From: dsl@school.example, x@evil.example\n");
        assert!(several.unwrap_err().contains("names 2 addresses"));
        let (_, group) = shape("From: Staff: dsl@school.example;\n");
        assert!(group.unwrap_err().contains("group"));
        let (_, group) = shape("From: Staff: dsl@school.example, x@evil.example;\n");
        assert!(group.unwrap_err().contains("group"));
        let (_, empty_group) = shape("From: undisclosed:;\n");
        assert!(empty_group.unwrap_err().contains("group"));
    }

    #[test]
    fn alignment_is_relaxed_but_not_suffix_spoofable() {
        assert!(aligned("school.example", "mail.school.example"));
        assert!(!aligned("evilschool.example", "school.example"));
        assert!(!aligned("school.example", "evilschool.example"));
        assert!(!aligned("", "school.example"));
    }
}
