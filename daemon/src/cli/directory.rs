//! `haven directory import --pupils F --staff F --contacts F [--allow-mass-change]`: the school
//! directory from CSV exports of the MIS. Every bad row is reported (`file:line: reason`) and
//! nothing is imported unless all three files are clean; a clean import is applied in one
//! transaction with its audit entry, and rolled back whole when [`judge`] refuses what it would
//! change (too many pupils marked as left or staff deactivated, or no DSL team left).

use super::CliError;
use super::progress::Progress;
use crate::blind::BlindIndex;
use crate::config::Share;
use crate::directory_csv::{read_contacts, read_pupils, read_staff};
use crate::seal::Sealer;
use crate::store::{DirectoryImport, Store, SyncReport};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashSet;
use std::path::Path;

pub struct ImportFiles<'a> {
    pub pupils: &'a Path,
    pub staff: &'a Path,
    pub contacts: &'a Path,
}

/// How much one import may change: more than `max_change` of the pupils on roll marked as
/// left, or of the active staff deactivated, needs `allow_mass_change`; one of each is always
/// allowed, so a very small school can still lose a pupil. Leaving no active member of the
/// DSL team is refused whatever the flag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportGuard {
    pub max_change: Share,
    pub allow_mass_change: bool,
}

/// A directory import that was applied, with what the user should know about it.
#[derive(Debug)]
pub struct Imported {
    pub report: SyncReport,
    pub warnings: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn import(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    files: ImportFiles<'_>,
    guard: ImportGuard,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Imported, CliError> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let pupils = read_pupils(files.pupils, &mut errors);
    let staff = read_staff(files.staff, &mut errors);
    let known_upns: HashSet<String> = store.load_directory(sealer).await?.pupils.into_iter().map(|p| p.upn).collect();
    let contacts = read_contacts(files.contacts, &pupils, &known_upns, &mut errors, &mut warnings);
    let characteristics = crate::characteristics::read_characteristics(files.pupils, &mut errors);
    if !errors.is_empty() {
        return Err(CliError::Data(format!("{}\nnothing was imported", errors.join("\n"))));
    }
    if pupils.is_empty() {
        return Err(CliError::Data(format!(
            "{}: no pupils; an empty roll would mark every pupil as left, so nothing was imported",
            files.pupils.display()
        )));
    }
    let today = now.with_timezone(&tz).date_naive();
    let import = DirectoryImport { pupils: &pupils, staff: &staff, contacts: &contacts };
    let mut progress = Progress::start("pupils imported", pupils.len() as u64);
    let judged = |report: &SyncReport| match judge(report, &files, guard) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    };
    let checked =
        store.sync_directory_checked(sealer, blind, &import, today, now, Some("cli"), judged, &mut |n| progress.advance(n)).await?;
    progress.finish();
    let report = match checked {
        Ok(report) => report,
        Err(refusal) => {
            store.audit(now, "cli", "directory_import_refused", "directory", &refusal.audit).await?;
            return Err(CliError::Data(refusal.message));
        }
    };
    record_characteristics(store, blind, &characteristics, crate::report::period::day_start_us(today, tz), now).await?;
    Ok(Imported { report, warnings })
}

/// Why an import must not be applied: the message for the user and the audit log's detail
/// (counts only, no names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub audit: String,
}

/// Judges what an import would change against the guard; `None` when it may be applied.
pub fn judge(report: &SyncReport, files: &ImportFiles<'_>, guard: ImportGuard) -> Option<Refusal> {
    let over = |changed: u64, of: u64| changed > guard.max_change.of(of).max(1);
    let mut reasons = Vec::new();
    let no_dsl = report.dsl_team_active == 0;
    if no_dsl {
        reasons.push(format!(
            "{}: would leave no active member of the DSL team (role dsl or ddsl), so nobody could record outcomes; \
             this is refused even with --allow-mass-change",
            files.staff.display()
        ));
    }
    let mass_pupils = !guard.allow_mass_change && over(report.pupils_left, report.pupils_on_roll_before);
    if mass_pupils {
        reasons.push(format!(
            "{}: would mark {} of {} pupils as left ({}), over the {} limit",
            files.pupils.display(),
            report.pupils_left,
            report.pupils_on_roll_before,
            percent(report.pupils_left, report.pupils_on_roll_before),
            guard.max_change
        ));
    }
    let mass_staff = !guard.allow_mass_change && over(report.staff_deactivated, report.staff_active_before);
    if mass_staff {
        reasons.push(format!(
            "{}: would deactivate {} of {} active staff ({}), over the {} limit",
            files.staff.display(),
            report.staff_deactivated,
            report.staff_active_before,
            percent(report.staff_deactivated, report.staff_active_before),
            guard.max_change
        ));
    }
    if reasons.is_empty() {
        return None;
    }
    let both_files = (no_dsl || mass_staff) && mass_pupils;
    let files_word = if both_files { "files" } else { "file" };
    let advice = if no_dsl { format!("check the {files_word}") } else { format!("check the {files_word} or pass --allow-mass-change") };
    Some(Refusal {
        message: format!("{}; nothing was changed; {advice}", reasons.join(";\n")),
        audit: format!(
            "refused{}{}{}: pupils {} of {} would leave; staff {} of {} would be deactivated; {} of the DSL team would stay active; \
             limit {}, --allow-mass-change {}",
            if no_dsl { " (no DSL team)" } else { "" },
            if mass_pupils { " (pupils over the limit)" } else { "" },
            if mass_staff { " (staff over the limit)" } else { "" },
            report.pupils_left,
            report.pupils_on_roll_before,
            report.staff_deactivated,
            report.staff_active_before,
            report.dsl_team_active,
            guard.max_change,
            if guard.allow_mass_change { "given" } else { "not given" }
        ),
    })
}

/// "90 %", "33.3 %".
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".into();
    }
    let tenths = (part * 1000 + whole / 2) / whole;
    match tenths % 10 {
        0 => format!("{} %", tenths / 10),
        t => format!("{}.{t} %", tenths / 10),
    }
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pupils: {} added, {} updated, {} left, {} rejoined\nstaff: {} active, {} deactivated\ncontacts: {}",
            self.pupils_added,
            self.pupils_updated,
            self.pupils_left,
            self.pupils_rejoined,
            self.staff_active,
            self.staff_deactivated,
            self.contacts
        )
    }
}

/// Keeps the pupils' characteristics from the import with their history (from the import's
/// day), in a transaction of its own after the roll's; a change is audited with the counts only.
async fn record_characteristics(
    store: &Store,
    blind: &BlindIndex,
    read: &std::collections::HashMap<String, Vec<(&'static str, String)>>,
    from_us: i64,
    now: DateTime<Utc>,
) -> Result<(), CliError> {
    if read.values().all(Vec::is_empty) {
        return Ok(());
    }
    // By the UPN's blind index: the roll just written is sealed under keys this process has
    // not loaded, and nothing needs opening to find a pupil's row.
    let mut values: Vec<(i64, &str, String)> = Vec::new();
    for (upn, read) in read {
        if let Some(id) = store.pupil_by_upn(blind, upn).await? {
            values.extend(read.iter().map(|(name, value)| (id, *name, value.clone())));
        }
    }
    let changed = store.record_characteristics(&values, from_us).await?;
    if changed > 0 {
        store.audit(now, "cli", "directory_characteristics", "directory", &format!("{} values, {changed} changed", values.len())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_share;

    fn files() -> ImportFiles<'static> {
        ImportFiles { pupils: Path::new("pupils.csv"), staff: Path::new("staff.csv"), contacts: Path::new("contacts.csv") }
    }

    fn guard(allow_mass_change: bool) -> ImportGuard {
        ImportGuard { max_change: parse_share("10%").unwrap(), allow_mass_change }
    }

    fn report(left: u64, on_roll: u64, deactivated: u64, active: u64, dsl_team: u64) -> SyncReport {
        SyncReport {
            pupils_left: left,
            pupils_on_roll_before: on_roll,
            staff_deactivated: deactivated,
            staff_active_before: active,
            dsl_team_active: dsl_team,
            ..SyncReport::default()
        }
    }

    #[test]
    fn up_to_the_limit_passes_and_one_is_always_allowed() {
        assert_eq!(judge(&report(3, 30, 1, 13, 2), &files(), guard(false)), None);
        assert_eq!(judge(&report(1, 3, 1, 2, 1), &files(), guard(false)), None, "a 3-pupil school may lose one");
        assert_eq!(judge(&report(0, 0, 0, 0, 1), &files(), guard(false)), None, "a first import");
    }

    #[test]
    fn over_the_limit_is_refused_with_the_counts_unless_allowed() {
        let r = judge(&report(27, 30, 0, 13, 2), &files(), guard(false)).unwrap();
        assert_eq!(
            r.message,
            "pupils.csv: would mark 27 of 30 pupils as left (90 %), over the 10 % limit; nothing was changed; \
             check the file or pass --allow-mass-change"
        );
        assert!(!r.audit.contains("pupils.csv"), "{}", r.audit);
        let r = judge(&report(4, 30, 2, 3, 1), &files(), guard(false)).unwrap();
        assert_eq!(
            r.message,
            "pupils.csv: would mark 4 of 30 pupils as left (13.3 %), over the 10 % limit;\n\
             staff.csv: would deactivate 2 of 3 active staff (66.7 %), over the 10 % limit; nothing was changed; \
             check the files or pass --allow-mass-change"
        );
        assert_eq!(judge(&report(27, 30, 2, 3, 1), &files(), guard(true)), None);
    }

    #[test]
    fn no_dsl_team_is_refused_even_when_mass_change_is_allowed() {
        let r = judge(&report(0, 30, 1, 13, 0), &files(), guard(true)).unwrap();
        assert_eq!(
            r.message,
            "staff.csv: would leave no active member of the DSL team (role dsl or ddsl), so nobody could record outcomes; \
             this is refused even with --allow-mass-change; nothing was changed; check the file"
        );
    }
}
