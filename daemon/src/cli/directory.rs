//! `haven directory import --pupils F --staff F --contacts F`: the school directory from CSV
//! exports of the MIS. Every bad row is reported (`file:line: reason`) and nothing is imported
//! unless all three files are clean; a clean import is applied in one transaction.

use super::CliError;
use crate::blind::BlindIndex;
use crate::seal::Sealer;
use crate::directory_csv::{read_contacts, read_pupils, read_staff};
use crate::store::{Store, SyncReport};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::path::Path;

pub struct ImportFiles<'a> {
    pub pupils: &'a Path,
    pub staff: &'a Path,
    pub contacts: &'a Path,
}

pub async fn import(store: &Store, sealer: &Sealer, blind: &BlindIndex, files: ImportFiles<'_>, tz: Tz, now: DateTime<Utc>) -> Result<SyncReport, CliError> {
    let mut errors = Vec::new();
    let pupils = read_pupils(files.pupils, &mut errors);
    let staff = read_staff(files.staff, &mut errors);
    let contacts = read_contacts(files.contacts, &pupils, &mut errors);
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
    let report = store.sync_directory(sealer, blind, &pupils, &staff, &contacts, today, now).await?;
    store
        .audit(
            now,
            "cli",
            "directory_import",
            "directory",
            &format!(
                "pupils +{} ~{} left {} rejoined {}; staff {} active, {} deactivated; {} contacts",
                report.pupils_added,
                report.pupils_updated,
                report.pupils_left,
                report.pupils_rejoined,
                report.staff_active,
                report.staff_deactivated,
                report.contacts
            ),
        )
        .await?;
    Ok(report)
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
