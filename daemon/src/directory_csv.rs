//! Reading the school directory from CSV exports of the MIS (SPEC "Directory CSV files").
//!
//! Header names are matched after folding case, spaces and punctuation, and common MIS
//! spellings are accepted as aliases (listed in [`PUPIL_COLUMNS`] and friends, and in the
//! README). Every bad row is reported as `file:line: reason`, all at once; the caller imports
//! nothing unless every file is clean.

use crate::directory::{Pupil, Role, Staff};
use crate::store::ContactImport;
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// (canonical column, accepted aliases, required)
pub type Columns = &'static [(&'static str, &'static [&'static str], bool)];

pub const PUPIL_COLUMNS: Columns = &[
    ("upn", &["upn", "unique pupil number", "pupil upn"], true),
    ("first_name", &["first_name", "legal forename", "forename", "first name", "legal first name"], true),
    ("last_name", &["last_name", "legal surname", "surname", "last name", "family name"], true),
    ("preferred_name", &["preferred_name", "preferred forename", "preferred first name", "known as"], false),
    ("date_of_birth", &["date_of_birth", "dob", "date of birth"], false),
    ("year_group", &["year_group", "year", "nc year", "year group", "curriculum year"], false),
    ("tutor_group", &["tutor_group", "reg group", "registration group", "form", "tutor group", "reg"], false),
    ("house", &["house"], false),
    ("sen", &["sen", "sen status", "send", "sen flag"], false),
];

pub const STAFF_COLUMNS: Columns = &[
    ("email", &["email", "email address", "work email", "emails"], true),
    ("first_name", &["first_name", "forename", "first name", "legal forename"], true),
    ("last_name", &["last_name", "surname", "last name", "legal surname"], true),
    ("roles", &["roles", "role"], false),
    ("house", &["house"], false),
    ("tutor_group", &["tutor_group", "reg group", "registration group", "form", "tutor group"], false),
];

pub const CONTACT_COLUMNS: Columns = &[
    ("email", &["email", "email address", "contact email"], true),
    ("name", &["name", "contact name", "full name"], false),
    ("relationship", &["relationship", "relation"], false),
    ("pupil_upns", &["pupil_upns", "upns", "pupil upn", "upn", "pupils"], true),
];

fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// One CSV file: rows as column-name → value maps, with their line numbers.
struct Table {
    rows: Vec<(u64, HashMap<&'static str, String>)>,
}

fn read_table(path: &Path, columns: Columns, errors: &mut Vec<String>) -> Table {
    let name = path.display().to_string();
    let mut rdr = match csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_path(path) {
        Ok(r) => r,
        Err(e) => {
            errors.push(format!("{name}: cannot read: {e}"));
            return Table { rows: Vec::new() };
        }
    };
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(format!("{name}:1: cannot read the header row: {e}"));
            return Table { rows: Vec::new() };
        }
    };
    let mut index: Vec<Option<&'static str>> = Vec::new();
    for h in headers.iter() {
        let f = fold(h.trim_start_matches('\u{feff}'));
        index.push(columns.iter().find(|(_, aliases, _)| aliases.iter().any(|a| fold(a) == f)).map(|(c, _, _)| *c));
    }
    let mut missing = false;
    for (col, aliases, required) in columns {
        if *required && !index.contains(&Some(*col)) {
            errors.push(format!("{name}:1: no {col} column (accepted headers: {})", aliases.join(", ")));
            missing = true;
        }
    }
    if missing {
        return Table { rows: Vec::new() };
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let mut map = HashMap::new();
                for (i, v) in r.iter().enumerate() {
                    if let Some(Some(col)) = index.get(i) {
                        map.insert(*col, v.to_string());
                    }
                }
                if r.iter().all(str::is_empty) {
                    continue;
                }
                rows.push((line, map));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(format!("{name}:{line}: {}", e.kind_text()));
            }
        }
    }
    Table { rows }
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for csv::Error {
    fn kind_text(&self) -> String {
        match self.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("expected {expected_len} fields, found {len}")
            }
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 (save the export as UTF-8 CSV)".into(),
            _ => self.to_string(),
        }
    }
}

fn get<'a>(row: &'a HashMap<&'static str, String>, col: &str) -> Option<&'a str> {
    row.get(col).map(String::as_str).filter(|v| !v.is_empty())
}

/// Dates as MIS exports write them: 2014-03-02, 02/03/2014 (UK order), 02-03-2014.
fn parse_date(s: &str) -> Option<NaiveDate> {
    ["%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"].iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// "7", "Year 7", "Y7", "R" (reception = 0).
fn parse_year(s: &str) -> Option<i32> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_start_matches("year").trim_start_matches('y').trim();
    match t {
        "r" | "reception" => Some(0),
        "n" | "nursery" => Some(-1),
        _ => t.parse().ok().filter(|y| (-1..=14).contains(y)),
    }
}

fn parse_yes_no(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "k" | "e" | "s" => Some(true),
        "no" | "n" | "false" | "0" | "" => Some(false),
        _ => None,
    }
}

pub fn read_pupils(path: &Path, errors: &mut Vec<String>) -> Vec<Pupil> {
    let name = path.display().to_string();
    let table = read_table(path, PUPIL_COLUMNS, errors);
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (line, row) in table.rows {
        let mut bad = |msg: String| errors.push(format!("{name}:{line}: {msg}"));
        let (Some(upn), Some(first), Some(last)) = (get(&row, "upn"), get(&row, "first_name"), get(&row, "last_name")) else {
            bad("upn, first_name and last_name are required".into());
            continue;
        };
        if let Some(prev) = seen.insert(upn.to_ascii_uppercase(), line) {
            bad(format!("UPN {upn} is also on line {prev}"));
            continue;
        }
        let dob = match get(&row, "date_of_birth") {
            Some(d) => match parse_date(d) {
                Some(d) => Some(d),
                None => {
                    bad(format!("date_of_birth {d:?} is not a date (use YYYY-MM-DD or DD/MM/YYYY)"));
                    continue;
                }
            },
            None => None,
        };
        let year = match get(&row, "year_group") {
            Some(y) => match parse_year(y) {
                Some(y) => Some(y),
                None => {
                    bad(format!("year_group {y:?} is not a year group"));
                    continue;
                }
            },
            None => None,
        };
        let sen = match parse_yes_no(get(&row, "sen").unwrap_or("")) {
            Some(s) => s,
            None => {
                bad("sen must be yes or no".into());
                continue;
            }
        };
        out.push(Pupil {
            id: 0,
            upn: upn.to_ascii_uppercase(),
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: get(&row, "preferred_name").map(str::to_string),
            date_of_birth: dob,
            year_group: year,
            tutor_group: get(&row, "tutor_group").map(str::to_string),
            house: get(&row, "house").map(str::to_string),
            sen,
            left_on: None,
        });
    }
    out
}

pub fn read_staff(path: &Path, errors: &mut Vec<String>) -> Vec<Staff> {
    let name = path.display().to_string();
    let table = read_table(path, STAFF_COLUMNS, errors);
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    'rows: for (line, row) in table.rows {
        let mut bad = |msg: String| errors.push(format!("{name}:{line}: {msg}"));
        let (Some(emails), Some(first), Some(last)) = (get(&row, "email"), get(&row, "first_name"), get(&row, "last_name")) else {
            bad("email, first_name and last_name are required".into());
            continue;
        };
        let emails: Vec<String> = emails.split(';').map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect();
        for e in &emails {
            if !e.contains('@') {
                bad(format!("{e:?} is not an email address"));
                continue 'rows;
            }
            if let Some(prev) = seen.insert(e.clone(), line) {
                bad(format!("email {e} is also on line {prev}"));
                continue 'rows;
            }
        }
        let mut roles = Vec::new();
        for r in get(&row, "roles").unwrap_or("").split(';').map(str::trim).filter(|r| !r.is_empty()) {
            match Role::parse(r) {
                Some(role) => roles.push(role),
                None => {
                    let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                    bad(format!("unknown role {r:?} (roles: {})", known.join(", ")));
                    continue 'rows;
                }
            }
        }
        let house = get(&row, "house").map(str::to_string);
        if roles.contains(&Role::Housem) && house.is_none() {
            bad("a housem needs a house".into());
            continue;
        }
        out.push(Staff {
            id: 0,
            emails,
            first_name: first.into(),
            last_name: last.into(),
            roles,
            house,
            tutor_group: get(&row, "tutor_group").map(str::to_string),
            active: true,
        });
    }
    out
}

/// Contacts, each linked to pupils by UPN. A UPN missing from the pupils file but naming a
/// pupil Haven already knows (`known_upns`) is a pupil who has left: the contact is kept, still
/// linked to that pupil's record, and a warning says so. A UPN Haven has never seen is an error.
pub fn read_contacts(
    path: &Path,
    pupils: &[Pupil],
    known_upns: &HashSet<String>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<ContactImport> {
    let name = path.display().to_string();
    let table = read_table(path, CONTACT_COLUMNS, errors);
    let on_file: HashSet<&str> = pupils.iter().map(|p| p.upn.as_str()).collect();
    let mut out = Vec::new();
    'rows: for (line, row) in table.rows {
        let mut bad = |msg: String| errors.push(format!("{name}:{line}: {msg}"));
        let (Some(email), Some(upns)) = (get(&row, "email"), get(&row, "pupil_upns")) else {
            bad("email and pupil_upns are required".into());
            continue;
        };
        if !email.contains('@') {
            bad(format!("{email:?} is not an email address"));
            continue;
        }
        let upns: Vec<String> = upns.split(';').map(|u| u.trim().to_ascii_uppercase()).filter(|u| !u.is_empty()).collect();
        let mut left = Vec::new();
        for u in &upns {
            if on_file.contains(u.as_str()) {
                continue;
            }
            if !known_upns.contains(u) {
                bad(format!("UPN {u} is not in the pupils file and is not a pupil Haven knows"));
                continue 'rows;
            }
            left.push(u);
        }
        for u in left {
            warnings.push(format!(
                "{name}:{line}: UPN {u} is not in the pupils file, so that pupil has left; the contact is kept and stays linked to their record"
            ));
        }
        out.push(ContactImport {
            email: email.to_ascii_lowercase(),
            name: get(&row, "name").map(str::to_string),
            relationship: get(&row, "relationship").map(str::to_string),
            pupil_upns: upns,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn mis_headers_are_accepted_and_bad_rows_named_by_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pupils.csv",
            "UPN,Legal Forename,Legal Surname,DOB,Year,Reg Group,House,SEN Status\n\
             A1,Jane,Smith,02/03/2014,Year 7,7K,Kestrel,No\n\
             A2,Tom,Price,someday,8,8H,Heron,no\n\
             A3,Amy,Khan,2012-06-14,9,9K,Kestrel,maybe\n",
        );
        let mut errors = Vec::new();
        let pupils = read_pupils(&p, &mut errors);
        assert_eq!(pupils.len(), 1);
        assert_eq!(pupils[0].year_group, Some(7));
        assert_eq!(pupils[0].tutor_group.as_deref(), Some("7K"));
        assert_eq!(pupils[0].date_of_birth, NaiveDate::from_ymd_opt(2014, 3, 2));
        let name = p.display();
        assert_eq!(
            errors,
            vec![
                format!("{name}:3: date_of_birth \"someday\" is not a date (use YYYY-MM-DD or DD/MM/YYYY)"),
                format!("{name}:4: sen must be yes or no"),
            ]
        );
    }

    #[test]
    fn a_contact_of_a_pupil_who_has_left_is_kept_with_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "pupils.csv", "upn,first_name,last_name\nA1,Jane,Smith\n");
        let c = write(d.path(), "contacts.csv", "email,pupil_upns\nmum@home.example,A1\ngran@home.example,A1;a2\nwho@home.example,A9\n");
        let mut errors = Vec::new();
        let pupils = read_pupils(&p, &mut errors);
        let known: HashSet<String> = ["A1".to_string(), "A2".to_string()].into();
        let mut warnings = Vec::new();
        let contacts = read_contacts(&c, &pupils, &known, &mut errors, &mut warnings);
        let name = c.display();
        assert_eq!(contacts.len(), 2);
        assert_eq!(contacts[1].pupil_upns, vec!["A1", "A2"]);
        assert_eq!(
            warnings,
            vec![format!(
                "{name}:3: UPN A2 is not in the pupils file, so that pupil has left; the contact is kept and stays linked to their record"
            )]
        );
        assert_eq!(errors, vec![format!("{name}:4: UPN A9 is not in the pupils file and is not a pupil Haven knows")]);
    }
}
