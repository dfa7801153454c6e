//! The school directory as Haven knows it: pupils, staff with roles, parent contacts.
//!
//! Plain data, loaded from the store once per filing batch and handed to pure stages
//! (identification, rules). No I/O here.

use chrono::NaiveDate;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A staff role from SPEC "Domain".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Dsl,
    Ddsl,
    Slt,
    Head,
    Housem,
    Tutor,
    Esafety,
    Senco,
    FirstAid,
    Teacher,
    Assistant,
    /// The data protection officer: reviews retention and approves disposal beside the DSL.
    Dpo,
}

impl Role {
    pub const ALL: [Role; 12] = [
        Role::Dsl,
        Role::Ddsl,
        Role::Slt,
        Role::Head,
        Role::Housem,
        Role::Tutor,
        Role::Esafety,
        Role::Senco,
        Role::FirstAid,
        Role::Teacher,
        Role::Assistant,
        Role::Dpo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dsl => "dsl",
            Role::Ddsl => "ddsl",
            Role::Slt => "slt",
            Role::Head => "head",
            Role::Housem => "housem",
            Role::Tutor => "tutor",
            Role::Esafety => "esafety",
            Role::Senco => "senco",
            Role::FirstAid => "first_aid",
            Role::Teacher => "teacher",
            Role::Assistant => "assistant",
            Role::Dpo => "dpo",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The DSL team: who may see everything.
    pub fn is_dsl_team(self) -> bool {
        matches!(self, Role::Dsl | Role::Ddsl)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pupil {
    /// Store id.
    pub id: i64,
    pub upn: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub year_group: Option<i32>,
    pub tutor_group: Option<String>,
    pub house: Option<String>,
    pub sen: bool,
    /// None while on roll; the date the pupil was found missing from an import once left.
    pub left_on: Option<NaiveDate>,
}

impl Pupil {
    pub fn on_roll(&self) -> bool {
        self.left_on.is_none()
    }

    /// Initials for alerts: first letter of the preferred (or first) name and of the surname.
    pub fn initials(&self) -> String {
        let first = self.preferred_name.as_deref().unwrap_or(&self.first_name);
        [first, self.last_name.as_str()].iter().filter_map(|n| n.chars().next()).flat_map(char::to_uppercase).collect()
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staff {
    pub id: i64,
    /// Lower-case; the first is where Haven writes to.
    pub emails: Vec<String>,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<Role>,
    /// For a HouseM: the house they look after.
    pub house: Option<String>,
    /// For a tutor: their tutor group.
    pub tutor_group: Option<String>,
    pub active: bool,
}

impl Staff {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_dsl_team(&self) -> bool {
        self.roles.iter().any(|r| r.is_dsl_team())
    }

    pub fn email(&self) -> &str {
        self.emails.first().map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub id: i64,
    /// Lower-case.
    pub email: String,
    pub name: Option<String>,
    pub relationship: Option<String>,
    pub pupil_ids: Vec<i64>,
}

/// A snapshot of the directory for pure stages. Made once and not changed: the look-ups below
/// are built from it on first use and kept with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directory {
    pub pupils: Vec<Pupil>,
    pub staff: Vec<Staff>,
    pub contacts: Vec<Contact>,
    /// Where each pupil, staff address and contact address is in the lists.
    #[serde(skip)]
    lookups: Derived<Lookups>,
    /// Pupils by the names `identify` finds them by.
    #[serde(skip)]
    names: Derived<PupilNames>,
}

/// Pupils by the ways `identify` looks them up, built by it on first use
/// ([`Directory::pupil_names`]); each list in directory order.
#[derive(Debug, Clone, Default)]
pub struct PupilNames {
    /// Pupils on roll by every full name, as words (lower-case, one space apart).
    pub on_roll: HashMap<String, Vec<i64>>,
    /// Every pupil, on roll or not, by each full name, normalised.
    pub full: HashMap<String, Vec<i64>>,
    /// Every pupil by each of their first, preferred and last names, normalised.
    pub part: HashMap<String, Vec<i64>>,
    /// Every pupil by UPN, lower-case (the first listed, should two share one).
    pub upn: HashMap<String, i64>,
}

/// Positions in the directory's lists, by key.
#[derive(Debug, Clone, Default)]
struct Lookups {
    pupil: HashMap<i64, usize>,
    staff_by_email: HashMap<String, Vec<usize>>,
    contacts_by_email: HashMap<String, Vec<usize>>,
}

/// Something derived from a snapshot on first use. It takes no part in comparing two snapshots.
#[derive(Debug, Clone, Default)]
struct Derived<T>(OnceLock<T>);

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Derived<T>) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl Directory {
    pub fn new(pupils: Vec<Pupil>, staff: Vec<Staff>, contacts: Vec<Contact>) -> Directory {
        Directory { pupils, staff, contacts, lookups: Derived::default(), names: Derived::default() }
    }

    /// Pupils by their names and UPNs; `build` makes the index the first time it is asked for.
    pub fn pupil_names(&self, build: impl FnOnce(&Directory) -> PupilNames) -> &PupilNames {
        self.names.0.get_or_init(|| build(self))
    }

    fn lookups(&self) -> &Lookups {
        self.lookups.0.get_or_init(|| {
            let mut l = Lookups::default();
            for (i, p) in self.pupils.iter().enumerate() {
                l.pupil.entry(p.id).or_insert(i);
            }
            for (i, s) in self.staff.iter().enumerate() {
                for e in &s.emails {
                    l.staff_by_email.entry(e.clone()).or_default().push(i);
                }
            }
            for (i, c) in self.contacts.iter().enumerate() {
                l.contacts_by_email.entry(c.email.clone()).or_default().push(i);
            }
            l
        })
    }

    pub fn pupil(&self, id: i64) -> Option<&Pupil> {
        self.lookups().pupil.get(&id).map(|&i| &self.pupils[i])
    }

    /// An active member of staff by any of their addresses (case-insensitive).
    pub fn active_staff_by_email(&self, email: &str) -> Option<&Staff> {
        let at = self.lookups().staff_by_email.get(&email.to_ascii_lowercase())?;
        at.iter().map(|&i| &self.staff[i]).find(|s| s.active)
    }

    pub fn staff_with_role(&self, role: Role) -> impl Iterator<Item = &Staff> {
        self.staff.iter().filter(move |s| s.active && s.has_role(role))
    }

    pub fn contacts_by_email(&self, email: &str) -> impl Iterator<Item = &Contact> {
        let at = self.lookups().contacts_by_email.get(&email.to_ascii_lowercase());
        at.into_iter().flatten().map(|&i| &self.contacts[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(id: i64, email: &str, active: bool) -> Staff {
        Staff {
            id,
            emails: vec![email.into()],
            first_name: "A".into(),
            last_name: "B".into(),
            roles: vec![Role::Teacher],
            house: None,
            tutor_group: None,
            active,
        }
    }

    fn contact(id: i64, email: &str, pupil: i64) -> Contact {
        Contact { id, email: email.into(), name: None, relationship: None, pupil_ids: vec![pupil] }
    }

    #[test]
    fn look_ups_answer_as_a_scan_of_the_lists_would() {
        let pupils: Vec<Pupil> = [30, 10, 20]
            .into_iter()
            .map(|id| Pupil {
                id,
                upn: format!("U{id}"),
                first_name: "J".into(),
                last_name: "S".into(),
                preferred_name: None,
                date_of_birth: None,
                year_group: None,
                tutor_group: None,
                house: None,
                sen: false,
                left_on: None,
            })
            .collect();
        let dir = Directory::new(
            pupils,
            vec![staff(1, "old@school.example", false), staff(2, "old@school.example", true), staff(3, "t@school.example", true)],
            vec![contact(1, "mum@home.example", 10), contact(2, "mum@home.example", 20), contact(3, "dad@home.example", 30)],
        );
        assert_eq!(dir.pupil(20).map(|p| p.upn.as_str()), Some("U20"));
        assert_eq!(dir.pupil(40), None);
        assert_eq!(dir.active_staff_by_email("OLD@School.example").map(|s| s.id), Some(2), "the active one of two");
        assert_eq!(dir.active_staff_by_email("nobody@school.example"), None);
        let linked: Vec<i64> = dir.contacts_by_email("Mum@Home.example").flat_map(|c| c.pupil_ids.clone()).collect();
        assert_eq!(linked, [10, 20], "every contact with the address, in order");
        assert_eq!(dir.contacts_by_email("gran@home.example").count(), 0);
        // A copy answers the same.
        assert_eq!(dir.clone().pupil(30).map(|p| p.id), Some(30));
    }
}
