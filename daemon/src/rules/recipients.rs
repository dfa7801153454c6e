//! Turns a rule's targets (roles, the pupil's HouseM or tutor, named staff) into members of
//! staff, keeping only active staff whom the incident's final visibility lets see it. Every
//! target that reaches nobody leaves a note, so `haven rules test` can say why.

use super::Recipient;
use super::compile::Target;
use crate::directory::{Directory, Pupil, Role, Staff};
use crate::visibility::Visibility;

/// Resolves targets, adding to `out` (de-duplicated by staff id, first reason kept).
pub(crate) struct Resolver<'a> {
    pub directory: &'a Directory,
    pub visibility: &'a Visibility,
    /// The incident's pupils still on roll: the staff of a pupil who has left are not alerted
    /// (the DSL team is, see `evaluate`).
    pub pupils: &'a [&'a Pupil],
    /// Whether the incident names any pupil at all.
    pub any_pupil: bool,
}

impl Resolver<'_> {
    /// `context` prefixes notes (e.g. "escalation after 1d: "); `rule` is the rule's label.
    pub fn resolve(&self, target: &Target, rule: &str, context: &str, out: &mut Vec<Recipient>, notes: &mut Vec<String>) {
        let label = target.label();
        let staff: Vec<&Staff> = match target {
            Target::Role(role) => self.directory.staff_with_role(*role).collect(),
            Target::HousemOfPupil => self.pupil_relative(
                Role::Housem,
                &label,
                context,
                notes,
                |s, p| same(s.house.as_deref(), p.house.as_deref()),
                "has no house",
            ),
            Target::TutorOfPupil => self.pupil_relative(
                Role::Tutor,
                &label,
                context,
                notes,
                |s, p| same(s.tutor_group.as_deref(), p.tutor_group.as_deref()),
                "has no tutor group",
            ),
            Target::Staff(email) => self.directory.active_staff_by_email(email).into_iter().collect(),
        };
        if staff.is_empty() {
            if matches!(target, Target::HousemOfPupil | Target::TutorOfPupil) {
                return; // pupil_relative has said why, per pupil
            }
            let why = match target {
                Target::Staff(_) => "not an active member of staff in the directory",
                Target::Role(_) => "no active member of staff has this role",
                _ => "nobody found",
            };
            notes.push(format!("{context}alert {label}: {why}"));
            return;
        }
        for s in staff {
            if out.iter().any(|r| r.staff_id == s.id) {
                continue;
            }
            if !self.visibility.allows(s, self.pupils) {
                notes.push(format!(
                    "{context}alert {label}: {} {} ({}) not alerted, visibility {} does not let them see this incident",
                    s.first_name,
                    s.last_name,
                    s.email(),
                    self.visibility.as_str()
                ));
                continue;
            }
            out.push(Recipient { staff_id: s.id, email: s.email().to_string(), why: format!("{label} ({rule})") });
        }
    }

    /// Staff holding `role` who `fits` one of the incident's on-roll pupils.
    fn pupil_relative(
        &self,
        role: Role,
        label: &str,
        context: &str,
        notes: &mut Vec<String>,
        fits: impl Fn(&Staff, &Pupil) -> bool,
        missing: &str,
    ) -> Vec<&Staff> {
        if !self.any_pupil {
            notes.push(format!("{context}alert {label}: no pupil is named"));
            return Vec::new();
        }
        let mut found = Vec::new();
        for p in self.pupils {
            let before = found.len();
            found.extend(self.directory.staff_with_role(role).filter(|s| fits(s, p)));
            if found.len() == before {
                let why = if matches!(role, Role::Housem) && p.house.is_none() || matches!(role, Role::Tutor) && p.tutor_group.is_none() {
                    missing.to_string()
                } else {
                    format!("has no active {}", role.as_str())
                };
                notes.push(format!("{context}alert {label}: pupil {} {why}", p.id));
            }
        }
        found
    }
}

fn same(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.trim().eq_ignore_ascii_case(b.trim()))
}
