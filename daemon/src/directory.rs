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

/// A snapshot of the directory for pure stages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directory {
    pub pupils: Vec<Pupil>,
    pub staff: Vec<Staff>,
    pub contacts: Vec<Contact>,
    /// Pupils on roll by full name, built on first use and kept with this snapshot.
    #[serde(skip)]
    names_on_roll: NameIndex,
}

/// Pupil ids by a full name as `identify` writes it (lower-case words, one space apart).
pub type NamesOnRoll = HashMap<String, Vec<i64>>;

/// The lazily built name index. It is derived from the pupils, so it takes no part in
/// comparing two snapshots.
#[derive(Debug, Clone, Default)]
struct NameIndex(OnceLock<NamesOnRoll>);

impl PartialEq for NameIndex {
    fn eq(&self, _: &NameIndex) -> bool {
        true
    }
}

impl Eq for NameIndex {}

impl Directory {
    pub fn new(pupils: Vec<Pupil>, staff: Vec<Staff>, contacts: Vec<Contact>) -> Directory {
        Directory { pupils, staff, contacts, names_on_roll: NameIndex::default() }
    }

    /// Pupils on roll by each full name they may be written with; `build` makes the index
    /// the first time it is asked for.
    pub fn names_on_roll(&self, build: impl FnOnce(&Directory) -> NamesOnRoll) -> &NamesOnRoll {
        self.names_on_roll.0.get_or_init(|| build(self))
    }

    pub fn pupil(&self, id: i64) -> Option<&Pupil> {
        self.pupils.iter().find(|p| p.id == id)
    }

    /// An active member of staff by any of their addresses (case-insensitive).
    pub fn active_staff_by_email(&self, email: &str) -> Option<&Staff> {
        let email = email.to_ascii_lowercase();
        self.staff.iter().find(|s| s.active && s.emails.contains(&email))
    }

    pub fn staff_with_role(&self, role: Role) -> impl Iterator<Item = &Staff> {
        self.staff.iter().filter(move |s| s.active && s.has_role(role))
    }

    pub fn contacts_by_email(&self, email: &str) -> impl Iterator<Item = &Contact> {
        let email = email.to_ascii_lowercase();
        self.contacts.iter().filter(move |c| c.email == email)
    }
}
