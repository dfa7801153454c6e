//! Who may see an incident: the one rule used by alerts, digests, `chronology --as` and exports.
//!
//! A visibility is a set of audiences written as a comma-separated list, stored with each
//! incident: staff roles (`slt`, `esafety`, …) and the pupil-relative audiences
//! `housem-of-pupil` and `tutor-of-pupil`. The DSL team (`dsl`, `ddsl`) always sees everything.
//! Two presets name the school policies: `dsl-team` (DSL Team Access Only) and
//! `dsl-team+housem` (the DSL team and the pupil's HouseM, no other house staff).
//!
//! The pupil-relative audiences are decided by the pupils an incident is *about* ([`about`]):
//! its subject, victim and perpetrator. A witness's or linked pupil's own staff are not added,
//! and a pupil only *mentioned* by name in a parent's text never widens who sees; on the
//! mentioned pupil's chronology the entry shows to the DSL team alone ([`may_see_entry`]).

use crate::directory::{Directory, Pupil, Role, Staff};
use std::collections::BTreeSet;
use std::fmt;

/// One audience that may see an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Audience {
    /// Everyone holding this role.
    Role(Role),
    /// The HouseM of a house one of the incident's pupils belongs to.
    HousemOfPupil,
    /// The tutor of a tutor group one of the incident's pupils belongs to.
    TutorOfPupil,
}

/// Who may see an incident (besides the DSL team, who see everything).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Visibility {
    audiences: BTreeSet<Audience>,
}

impl Visibility {
    /// The DSL team alone.
    pub fn dsl_team() -> Visibility {
        Visibility { audiences: BTreeSet::new() }
    }

    /// Parses `dsl-team`, `dsl-team+housem`, or a comma-separated list of roles and
    /// `housem-of-pupil` / `tutor-of-pupil`. None for anything unknown.
    pub fn parse(s: &str) -> Option<Visibility> {
        let mut audiences = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "dsl-team" | "dsl_team" => {}
                "dsl-team+housem" | "dsl_team+housem" => {
                    audiences.insert(Audience::HousemOfPupil);
                }
                "housem-of-pupil" => {
                    audiences.insert(Audience::HousemOfPupil);
                }
                "tutor-of-pupil" => {
                    audiences.insert(Audience::TutorOfPupil);
                }
                other => {
                    let role = Role::parse(other)?;
                    if !role.is_dsl_team() {
                        audiences.insert(Audience::Role(role));
                    }
                }
            }
        }
        Some(Visibility { audiences })
    }

    /// The canonical stored form; `parse(as_str())` gives the same visibility back.
    pub fn as_str(&self) -> String {
        if self.audiences.is_empty() {
            return "dsl-team".into();
        }
        let mut parts = vec!["dsl-team".to_string()];
        parts.extend(self.audiences.iter().map(|a| match a {
            Audience::Role(r) => r.as_str().to_string(),
            Audience::HousemOfPupil => "housem-of-pupil".to_string(),
            Audience::TutorOfPupil => "tutor-of-pupil".to_string(),
        }));
        parts.join(",")
    }

    /// The narrower of two visibilities: only audiences both allow.
    pub fn restrict(&self, other: &Visibility) -> Visibility {
        Visibility { audiences: self.audiences.intersection(&other.audiences).copied().collect() }
    }

    /// Whether [`Visibility::allows`] for `staff` can turn on the incident's pupils: only for an
    /// active member of staff outside the DSL team holding the role of a pupil-relative
    /// audience. When not, the answer is the same for any pupils (none need be read).
    pub fn depends_on_pupils(&self, staff: &Staff) -> bool {
        staff.active
            && !staff.is_dsl_team()
            && self.audiences.iter().any(|a| match a {
                Audience::Role(_) => false,
                Audience::HousemOfPupil => staff.has_role(Role::Housem),
                Audience::TutorOfPupil => staff.has_role(Role::Tutor),
            })
    }

    /// Whether `staff` may see an incident with this visibility about `pupils`.
    pub fn allows(&self, staff: &Staff, pupils: &[&Pupil]) -> bool {
        if !staff.active {
            return false;
        }
        if staff.is_dsl_team() {
            return true;
        }
        self.audiences.iter().any(|a| match a {
            Audience::Role(r) => staff.has_role(*r),
            Audience::HousemOfPupil => {
                staff.has_role(Role::Housem)
                    && staff
                        .house
                        .as_deref()
                        .is_some_and(|h| pupils.iter().any(|p| p.house.as_deref().is_some_and(|ph| ph.eq_ignore_ascii_case(h))))
            }
            Audience::TutorOfPupil => {
                staff.has_role(Role::Tutor)
                    && staff
                        .tutor_group
                        .as_deref()
                        .is_some_and(|t| pupils.iter().any(|p| p.tutor_group.as_deref().is_some_and(|pt| pt.eq_ignore_ascii_case(t))))
            }
        })
    }
}

/// The roles that make an incident *about* a pupil.
pub fn is_about_role(role: &str) -> bool {
    matches!(role, "subject" | "victim" | "perpetrator")
}

/// The pupils an incident is about, from its pupils and their roles: the subject, victim and
/// perpetrator. When staff named none of those (only a `Witness:` or `Linked:` line), the
/// pupils they named stand in. A pupil only mentioned in a parent's text never counts.
pub fn about<T, R: AsRef<str>>(pupils: impl IntoIterator<Item = (T, R)>) -> Vec<T> {
    let (mut about, mut named) = (Vec::new(), Vec::new());
    for (p, role) in pupils {
        match role.as_ref() {
            r if is_about_role(r) => about.push(p),
            "mentioned" => {}
            _ => named.push(p),
        }
    }
    if about.is_empty() { named } else { about }
}

/// Whether `staff` may see a stored incident: its visibility, applied to the pupils it is
/// about. An unreadable visibility is the narrowest, the DSL team alone.
pub fn may_see_incident(visibility: &str, staff: &Staff, dir: &Directory, pupils: &[(i64, String)]) -> bool {
    let about: Vec<&Pupil> = about(pupils.iter().map(|(id, r)| (*id, r.as_str()))).into_iter().filter_map(|id| dir.pupil(id)).collect();
    Visibility::parse(visibility).unwrap_or_else(Visibility::dsl_team).allows(staff, &about)
}

/// Whether deciding if `staff` may see a stored incident with `visibility` needs its pupils (see
/// [`Visibility::depends_on_pupils`]); an unreadable visibility is the DSL team's alone.
pub fn needs_pupils(visibility: &str, staff: &Staff) -> bool {
    Visibility::parse(visibility).is_some_and(|v| v.depends_on_pupils(staff))
}

/// Whether `staff` sees a stored incident on the chronology (or export) of pupil `on`: as
/// [`may_see_incident`], and where `on` is only mentioned, the DSL team alone.
pub fn may_see_entry(visibility: &str, staff: &Staff, dir: &Directory, pupils: &[(i64, String)], on: i64) -> bool {
    let mentioned = pupils.iter().any(|(id, r)| *id == on && r == "mentioned");
    if mentioned && !(staff.active && staff.is_dsl_team()) {
        return false;
    }
    may_see_incident(visibility, staff, dir, pupils)
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(roles: &[Role], house: Option<&str>) -> Staff {
        Staff {
            id: 1,
            emails: vec!["a@school.example".into()],
            first_name: "A".into(),
            last_name: "B".into(),
            roles: roles.to_vec(),
            house: house.map(str::to_string),
            tutor_group: None,
            active: true,
        }
    }

    fn pupil(house: &str) -> Pupil {
        Pupil {
            id: 1,
            upn: "X".into(),
            first_name: "J".into(),
            last_name: "S".into(),
            preferred_name: None,
            date_of_birth: None,
            year_group: Some(7),
            tutor_group: None,
            house: Some(house.into()),
            sen: false,
            left_on: None,
        }
    }

    #[test]
    fn pupils_are_needed_only_where_they_can_change_the_answer() {
        let (keller, other) = (Pupil { tutor_group: Some("7A".into()), ..pupil("Keller") }, pupil("Other"));
        let viewers = [
            staff(&[Role::Dsl], None),
            staff(&[Role::Housem], Some("Keller")),
            Staff { tutor_group: Some("7A".into()), ..staff(&[Role::Tutor], None) },
            staff(&[Role::Slt], None),
            Staff { active: false, ..staff(&[Role::Housem], Some("Keller")) },
        ];
        for v in ["dsl-team", "dsl-team+housem", "slt", "tutor-of-pupil", "slt,housem-of-pupil", "bogus"] {
            for s in &viewers {
                let parsed = Visibility::parse(v).unwrap_or_else(Visibility::dsl_team);
                let answers = [parsed.allows(s, &[]), parsed.allows(s, &[&keller]), parsed.allows(s, &[&other])];
                if !needs_pupils(v, s) {
                    assert!(answers.iter().all(|a| *a == answers[0]), "{v} for {:?}: the pupils changed the answer", s.roles);
                }
            }
        }
        assert!(needs_pupils("dsl-team+housem", &staff(&[Role::Housem], Some("Keller"))));
        assert!(!needs_pupils("dsl-team+housem", &staff(&[Role::Dsl, Role::Housem], Some("Keller"))));
        assert!(!needs_pupils("dsl-team+housem", &staff(&[Role::Slt], None)));
    }

    #[test]
    fn dsl_team_only_hides_from_everyone_else() {
        let v = Visibility::parse("dsl-team").unwrap();
        let p = pupil("Keller");
        assert!(v.allows(&staff(&[Role::Ddsl], None), &[&p]));
        assert!(!v.allows(&staff(&[Role::Slt, Role::Head], None), &[&p]));
        assert!(!v.allows(&staff(&[Role::Housem], Some("Keller")), &[&p]));
    }

    #[test]
    fn housem_sees_only_their_own_pupils() {
        let v = Visibility::parse("dsl-team+housem").unwrap();
        let p = pupil("Keller");
        assert!(v.allows(&staff(&[Role::Housem], Some("keller")), &[&p]));
        assert!(!v.allows(&staff(&[Role::Housem], Some("Nightingale")), &[&p]));
        assert!(!v.allows(&staff(&[Role::Slt], None), &[&p]));
    }

    #[test]
    fn stored_form_round_trips_and_unknown_is_refused() {
        let v = Visibility::parse("slt, tutor-of-pupil,dsl").unwrap();
        assert_eq!(v.as_str(), "dsl-team,slt,tutor-of-pupil");
        assert_eq!(Visibility::parse(&v.as_str()), Some(v));
        assert_eq!(Visibility::parse("everyone-ish"), None);
    }

    #[test]
    fn the_pupils_an_incident_is_about() {
        let roles = [(1, "subject"), (2, "witness"), (3, "mentioned"), (4, "victim"), (5, "linked")];
        assert_eq!(about(roles), vec![1, 4]);
        assert_eq!(about([(2, "witness"), (3, "mentioned"), (5, "linked")]), vec![2, 5], "named by staff, they stand in");
        assert_eq!(about([(3, "mentioned")]), Vec::<i32>::new(), "a mention never counts");
    }

    #[test]
    fn a_witness_widens_nobody_and_a_mention_shows_to_the_dsl_team_alone() {
        let mut heron = pupil("Heron");
        heron.id = 1;
        let mut kestrel = pupil("Kestrel");
        kestrel.id = 2;
        let dir = Directory::new(vec![heron, kestrel], Vec::new(), Vec::new());
        let pupils = vec![(1, "subject".to_string()), (2, "witness".to_string())];
        let v = "dsl-team+housem";
        let kestrel_housem = staff(&[Role::Housem], Some("Kestrel"));
        let heron_housem = staff(&[Role::Housem], Some("Heron"));
        assert!(!may_see_incident(v, &kestrel_housem, &dir, &pupils));
        assert!(may_see_entry(v, &heron_housem, &dir, &pupils, 2), "on the witness's chronology, to whoever may see it");
        let mentioned = vec![(1, "subject".to_string()), (2, "mentioned".to_string())];
        assert!(!may_see_entry(v, &heron_housem, &dir, &mentioned, 2));
        assert!(may_see_entry(v, &heron_housem, &dir, &mentioned, 1));
        assert!(may_see_entry(v, &staff(&[Role::Dsl], None), &dir, &mentioned, 2));
    }
}
