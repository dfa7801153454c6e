//! Pupil characteristics from the directory import: optional columns of the pupils CSV (free
//! school meals, pupil premium, in care, previously in care, EAL, SEN status N/K/E, service
//! child, young carer), read beside the roll. A column the file does not have changes nothing;
//! an empty cell says nothing; a value that is not yes/no (or N/K/E for SEN) is an error with
//! its file and line, and nothing is imported. The store keeps each value's history
//! (`store::characteristics`), so reports count pupils as they were on an incident's date.
//!
//! Pure: reads a file, no store.

use std::collections::HashMap;
use std::path::Path;

/// (stored name, accepted headers)
pub const COLUMNS: &[(&str, &[&str])] = &[
    ("fsm", &["fsm", "free school meals", "fsm eligible", "fsm eligibility"]),
    ("pupil_premium", &["pupil premium", "pupil_premium", "pp"]),
    ("in_care", &["in care", "in_care", "looked after", "cla", "lac"]),
    ("previously_in_care", &["previously in care", "previously_in_care", "previously looked after", "pla"]),
    ("eal", &["eal", "english as an additional language"]),
    ("sen", &["sen", "sen status", "send", "sen flag"]),
    ("service_child", &["service child", "service_child", "service children", "forces child"]),
    ("young_carer", &["young carer", "young_carer"]),
];

/// How each reads in a report; plans (`haven plan add`) count as groups too.
pub const LABELS: &[(&str, &str)] = &[
    ("fsm:yes", "Free school meals"),
    ("pupil_premium:yes", "Pupil premium"),
    ("in_care:yes", "In care (looked after)"),
    ("previously_in_care:yes", "Previously in care"),
    ("eal:yes", "English as an additional language"),
    ("sen:K", "SEN support (K)"),
    ("sen:E", "EHC plan (E)"),
    ("sen:yes", "SEN (status not given)"),
    ("service_child:yes", "Service child"),
    ("young_carer:yes", "Young carer"),
    ("plan:early-help", "On an early help plan"),
    ("plan:child-in-need", "On a child in need plan"),
    ("plan:child-protection", "On a child protection plan"),
    ("plan:looked-after", "Looked after (plan recorded)"),
    ("plan:other", "On another multi-agency plan"),
];

fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// A cell's value as stored, `Ok(None)` for an empty cell.
pub fn read_value(column: &str, cell: &str) -> Result<Option<String>, String> {
    let v = cell.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if column == "sen" {
        match v.to_ascii_uppercase().as_str() {
            "N" => return Ok(Some("N".into())),
            "K" => return Ok(Some("K".into())),
            "E" => return Ok(Some("E".into())),
            // Some MIS exports write S for SEN support.
            "S" => return Ok(Some("K".into())),
            _ => {}
        }
    }
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" => Ok(Some("yes".into())),
        "no" | "n" | "false" | "0" => Ok(Some("no".into())),
        // The roll's own reader reports a bad SEN value.
        _ if column == "sen" => Ok(None),
        _ => Err(format!("{column} {v:?} must be yes or no")),
    }
}

/// Every pupil's characteristics in the pupils CSV, by UPN (upper-case): (name, value) pairs for
/// the columns present and filled. Bad values are pushed onto `errors` as `file:line: reason`.
pub fn read_characteristics(path: &Path, errors: &mut Vec<String>) -> HashMap<String, Vec<(&'static str, String)>> {
    let name = path.display().to_string();
    let mut out = HashMap::new();
    let Ok(mut rdr) = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_path(path) else {
        // The roll's own reader reports an unreadable file.
        return out;
    };
    let Ok(headers) = rdr.headers().cloned() else { return out };
    let folded: Vec<String> = headers.iter().map(|h| fold(h.trim_start_matches('\u{feff}'))).collect();
    let upn_at = folded.iter().position(|h| ["upn", "uniquepupilnumber", "pupilupn"].contains(&h.as_str()));
    let columns: Vec<(usize, &'static str)> = folded
        .iter()
        .enumerate()
        .filter_map(|(i, h)| COLUMNS.iter().find(|(_, aliases)| aliases.iter().any(|a| fold(a) == *h)).map(|(c, _)| (i, *c)))
        .collect();
    let Some(upn_at) = upn_at else { return out };
    if columns.is_empty() {
        return out;
    }
    for rec in rdr.records().flatten() {
        let line = rec.position().map_or(0, |p| p.line());
        let Some(upn) = rec.get(upn_at).filter(|u| !u.is_empty()) else { continue };
        let mut values = Vec::new();
        for (i, column) in &columns {
            match read_value(column, rec.get(*i).unwrap_or("")) {
                Ok(Some(v)) => values.push((*column, v)),
                Ok(None) => {}
                Err(e) => errors.push(format!("{name}:{line}: {e}")),
            }
        }
        out.insert(upn.to_ascii_uppercase(), values);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_columns_are_read_and_bad_values_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pupils.csv");
        std::fs::write(
            &path,
            "UPN,Legal Forename,Legal Surname,FSM,In Care,SEN Status,Young Carer\n\
             A1,Jane,Smith,Yes,N,K,\n\
             A2,Tom,Price,no,maybe,,yes\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let read = read_characteristics(&path, &mut errors);
        assert_eq!(read["A1"], vec![("fsm", "yes".to_string()), ("in_care", "no".into()), ("sen", "K".into())]);
        assert_eq!(read["A2"], vec![("fsm", "no".to_string()), ("young_carer", "yes".into())]);
        let name = path.display();
        assert_eq!(errors, vec![format!("{name}:3: in_care \"maybe\" must be yes or no")]);
    }
}
