//! What Haven can tell about a collected item before anyone decides it: the flags `haven sar
//! items` shows beside each one. They point the reviewer at what the exemptions are about;
//! they decide nothing, and an unflagged item is still read and decided by a person.

use super::redact::occurs;

/// One thing worth a reviewer's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    /// Visible to the DSL team only.
    DslOnly,
    /// In a safeguarding category: child abuse data (DPA 2018 Sch 3 Part 5) may be in it.
    ChildAbuseData,
    /// Another pupil is linked to it or named in it.
    ThirdPartyPupil,
    /// Another adult (a parent or carer who is not the subject) is named in it or wrote it.
    ThirdPartyAdult,
    /// The words are a member of staff's own (a note, a call, a conversation).
    StaffSource,
    /// It came from someone other than the subject and the school's staff: it may identify them
    /// as the source of the information.
    SourceIdentifying,
    /// It came from an agency (children's services, the police, health).
    AgencyInfo,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::DslOnly => "dsl_only",
            Flag::ChildAbuseData => "child_abuse_data",
            Flag::ThirdPartyPupil => "third_party_pupil",
            Flag::ThirdPartyAdult => "third_party_adult",
            Flag::StaffSource => "staff_source",
            Flag::SourceIdentifying => "source_identifying",
            Flag::AgencyInfo => "agency_info",
        }
    }
}

/// The domains of agencies' mail: councils and government, the police, the NHS, the secure
/// criminal-justice mail service.
const AGENCY_DOMAINS: [&str; 5] = [".gov.uk", ".police.uk", ".nhs.uk", ".nhs.net", ".cjsm.net"];

/// Whether an address is an agency's.
pub fn is_agency(address: &str) -> bool {
    let a = address.trim().to_ascii_lowercase();
    let domain = a.rsplit('@').next().unwrap_or("");
    AGENCY_DOMAINS.iter().any(|d| domain.ends_with(d) || format!(".{domain}") == *d)
}

/// What the flags are worked out from: facts about one item and the people around the subject.
pub struct Facts<'a> {
    /// The incident's stored visibility ("dsl-team", "dsl-team+housem", roles…).
    pub visibility: &'a str,
    pub safeguarding: bool,
    /// The pupils linked to the item.
    pub pupils: &'a [i64],
    /// The pupils who are the subject's own: the pupil subject, or an adult subject's children.
    pub own_pupils: &'a [i64],
    /// Everything the item says, joined.
    pub text: &'a str,
    /// The original message's sender, when the item carries one.
    pub original_from: Option<&'a str>,
    /// The subject's own address (an adult subject).
    pub subject_email: Option<&'a str>,
    /// Whether the original sender is a member of staff.
    pub from_staff: bool,
    /// Other pupils' full names (every pupil not in `own_pupils`).
    pub other_pupil_names: &'a [String],
    /// Other adults: names and addresses of contacts who are not the subject.
    pub other_adults: &'a [String],
}

/// The flags for one item, in a fixed order.
pub fn flags(f: &Facts<'_>) -> Vec<Flag> {
    let mut out = Vec::new();
    if f.visibility.trim() == "dsl-team" {
        out.push(Flag::DslOnly);
    }
    if f.safeguarding {
        out.push(Flag::ChildAbuseData);
    }
    if f.pupils.iter().any(|p| !f.own_pupils.contains(p)) || f.other_pupil_names.iter().any(|n| occurs(f.text, n)) {
        out.push(Flag::ThirdPartyPupil);
    }
    let sender = f.original_from.map(|s| s.trim().to_ascii_lowercase());
    let by_subject = match (&sender, f.subject_email) {
        (Some(s), Some(subject)) => s.eq_ignore_ascii_case(subject.trim()),
        _ => false,
    };
    let outside_sender = sender.as_ref().is_some_and(|_| !f.from_staff && !by_subject);
    let agency = sender.as_deref().is_some_and(is_agency);
    if (outside_sender && !agency) || f.other_adults.iter().any(|a| occurs(f.text, a)) {
        out.push(Flag::ThirdPartyAdult);
    }
    if sender.is_none() || f.from_staff {
        out.push(Flag::StaffSource);
    }
    if outside_sender {
        out.push(Flag::SourceIdentifying);
    }
    if agency {
        out.push(Flag::AgencyInfo);
    }
    out
}

/// The stored form: names joined by commas.
pub fn join(flags: &[Flag]) -> String {
    flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(text: &'a str, from: Option<&'a str>, names: &'a [String], adults: &'a [String]) -> Facts<'a> {
        Facts {
            visibility: "dsl-team+housem",
            safeguarding: false,
            pupils: &[7, 9],
            own_pupils: &[7, 8],
            text,
            original_from: from,
            subject_email: Some("p.nowak@example.com"),
            from_staff: false,
            other_pupil_names: names,
            other_adults: adults,
        }
    }

    #[test]
    fn a_parents_own_email_naming_another_family_is_flagged_third_party() {
        let names = vec!["Kai Turner".to_string()];
        let adults = vec!["Kelly Turner".to_string(), "kturner@example.com".to_string()];
        let f = facts("A boy, Kai Turner, pushed her.", Some("P.Nowak@example.com"), &names, &adults);
        assert_eq!(flags(&f), vec![Flag::ThirdPartyPupil]);
        let f = facts("Kelly Turner rang.", Some("kturner@example.com"), &[], &adults);
        let got = flags(&f);
        assert!(got.contains(&Flag::ThirdPartyAdult) && got.contains(&Flag::SourceIdentifying), "{got:?}");
    }

    #[test]
    fn agencies_staff_notes_and_dsl_only_entries() {
        let f = Facts {
            visibility: "dsl-team",
            safeguarding: true,
            pupils: &[7],
            own_pupils: &[7],
            text: "Call from children's services",
            original_from: Some("j.okoye@childrens-services.example.gov.uk"),
            subject_email: None,
            from_staff: false,
            other_pupil_names: &[],
            other_adults: &[],
        };
        assert_eq!(flags(&f), vec![Flag::DslOnly, Flag::ChildAbuseData, Flag::SourceIdentifying, Flag::AgencyInfo]);
        let f = Facts { original_from: None, visibility: "slt", safeguarding: false, ..f };
        assert_eq!(flags(&f), vec![Flag::StaffSource]);
        assert!(is_agency("PC1234@met.police.uk") && !is_agency("someone@gov.uk.example.com"));
    }
}
