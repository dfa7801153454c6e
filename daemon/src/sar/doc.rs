//! The disclosure bundle as one typed model: a covering page (the school, the request, who
//! answered it, when) and every item, disclosed with its redactions already burned in, or
//! listed as withheld with its exemption code and nothing else. The PDF template
//! (templates/pdf/sar.typ) reads it as JSON; what it holds is exactly what is sent.
//!
//! Pure: built from opened items and decisions the caller loaded.

use super::redact::burn;
use super::{Decision, Exemption};
use serde::{Deserialize, Serialize};

/// An item as collected: a snapshot of what the school held, sealed in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemContent {
    /// "Incident #12: Behaviour", "Alert about incident #12", "Audit trail of incident #12".
    pub title: String,
    /// When it happened, in the school's zone ("16 Nov 2026 08:41").
    pub date: String,
    /// Label and value rows (who recorded it, the original's sender and subject…).
    pub facts: Vec<Fact>,
    /// The words: a note, a message's text, the lines of an audit trail.
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

impl ItemContent {
    /// Everything the item says, for the flags and for checking a redaction is there.
    pub fn all_text(&self) -> String {
        let mut s = self.title.clone();
        for f in &self.facts {
            s.push('\n');
            s.push_str(&f.value);
        }
        if let Some(t) = &self.text {
            s.push('\n');
            s.push_str(t);
        }
        s
    }

    /// The item with every one of `texts` burned out of every field.
    pub fn redacted(&self, texts: &[String], code: &str) -> ItemContent {
        ItemContent {
            title: burn(&self.title, texts, code),
            date: self.date.clone(),
            facts: self.facts.iter().map(|f| Fact { label: f.label.clone(), value: burn(&f.value, texts, code) }).collect(),
            text: self.text.as_deref().map(|t| burn(t, texts, code)),
        }
    }
}

/// One item with its decision, opened.
pub struct Decided {
    pub item: i64,
    pub kind: String,
    pub content: ItemContent,
    pub decision: Decision,
    pub exemption: Option<Exemption>,
    pub redactions: Vec<String>,
}

/// The covering page's facts.
#[derive(Debug, Clone, Serialize)]
pub struct Cover {
    pub school: String,
    /// "SAR-0001"
    pub reference: String,
    /// Who the information is about: "Piotr Nowak <p.nowak@example.com>", or a pupil's name and UPN.
    pub subject: String,
    pub received: String,
    pub due: String,
    pub exported_at: String,
    /// "Dana Lead (DSL)"
    pub exported_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SarDoc {
    pub cover: Cover,
    /// "5 items: 3 disclosed (1 with redactions), 2 withheld"
    pub counts: String,
    pub disclosed: Vec<DisclosedDoc>,
    pub withheld: Vec<WithheldDoc>,
    /// The codes this bundle uses, with what each means.
    pub codes: Vec<CodeDoc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisclosedDoc {
    pub item: i64,
    pub kind: String,
    pub title: String,
    pub date: String,
    pub facts: Vec<Fact>,
    pub text: Option<String>,
    /// The code the redactions rely on, when some text was withheld.
    pub redacted_under: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WithheldDoc {
    pub item: i64,
    pub kind: String,
    pub date: String,
    pub exemption: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeDoc {
    pub code: String,
    pub meaning: String,
}

/// The bundle: disclosed items (redactions burned in), withheld items by number and code.
pub fn build(cover: Cover, items: &[Decided]) -> SarDoc {
    let mut disclosed = Vec::new();
    let mut withheld = Vec::new();
    let mut used: Vec<Exemption> = Vec::new();
    for d in items {
        if let Some(e) = d.exemption
            && d.decision != Decision::Disclose
            && !used.contains(&e)
        {
            used.push(e);
        }
        match d.decision {
            Decision::Withhold => withheld.push(WithheldDoc {
                item: d.item,
                kind: d.kind.clone(),
                date: d.content.date.clone(),
                exemption: d.exemption.map_or("", |e| e.code()).to_string(),
            }),
            Decision::Disclose | Decision::Redact => {
                let code = d.exemption.map(|e| e.code()).filter(|_| d.decision == Decision::Redact);
                let c = match code {
                    Some(code) => d.content.redacted(&d.redactions, code),
                    None => d.content.clone(),
                };
                disclosed.push(DisclosedDoc {
                    item: d.item,
                    kind: d.kind.clone(),
                    title: c.title,
                    date: c.date,
                    facts: c.facts,
                    text: c.text,
                    redacted_under: code.map(str::to_string),
                });
            }
        }
    }
    let redacted = disclosed.iter().filter(|d| d.redacted_under.is_some()).count();
    let counts =
        format!("{} item(s): {} disclosed ({redacted} with redactions), {} withheld", items.len(), disclosed.len(), withheld.len());
    let codes = used.iter().map(|e| CodeDoc { code: e.code().into(), meaning: e.meaning().into() }).collect();
    SarDoc { cover, counts, disclosed, withheld, codes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: i64, decision: Decision, exemption: Option<Exemption>, redactions: &[&str]) -> Decided {
        Decided {
            item: n,
            kind: "incident".into(),
            content: ItemContent {
                title: format!("Incident #{n}: Behaviour"),
                date: "16 Nov 2026 08:41".into(),
                facts: vec![Fact { label: "Pupils".into(), value: "Zofia Nowak (victim), Kai Turner (perpetrator)".into() }],
                text: Some(format!("Secret {n}: Kai Turner pushed her.")),
            },
            decision,
            exemption,
            redactions: redactions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn withheld_items_carry_no_words_and_redactions_are_burned_into_every_field() {
        let cover = Cover {
            school: "Eaton".into(),
            reference: "SAR-0001".into(),
            subject: "Piotr Nowak".into(),
            received: "".into(),
            due: "".into(),
            exported_at: "".into(),
            exported_by: "".into(),
        };
        let doc = build(
            cover,
            &[
                item(1, Decision::Disclose, None, &[]),
                item(2, Decision::Redact, Some(Exemption::ThirdParty), &["Kai Turner"]),
                item(3, Decision::Withhold, Some(Exemption::SeriousHarm), &[]),
            ],
        );
        let json = serde_json::to_string(&doc).unwrap();
        assert!(!json.contains("Secret 3"), "{json}");
        assert_eq!(json.matches("Kai Turner").count(), 2, "item 1's two mentions only: {json}");
        assert_eq!(doc.withheld[0].exemption, "S3P4-serious-harm");
        assert_eq!(doc.disclosed[1].redacted_under.as_deref(), Some("S2P3-third-party"));
        assert_eq!(doc.counts, "3 item(s): 2 disclosed (1 with redactions), 1 withheld");
        assert_eq!(doc.codes.len(), 2);
    }
}
