//! The school directory in the database: syncing an import, and loading a snapshot.
//!
//! Pupils' UPNs, names and dates of birth and contacts' addresses and names are sealed at rest
//! (fields below); a pupil's UPN and a contact's address also get a blind index, which keeps them
//! unique. The import matches rows by the opened values, so it still matches after a key
//! rotation, and rewrites every index under the current key. Staff names and addresses stay in
//! clear: they are the school's published staff list, and mail is routed by them.

use super::{Result, Store, StoreError, Tx, on_pool, on_tx, to_us};
use crate::blind::{BlindIndex, kinds, open_or_clear};
use crate::directory::{Contact, Directory, Pupil, Role, Staff};
use crate::seal::Sealer;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One parent/carer contact as imported: pupils named by UPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactImport {
    pub email: String,
    pub name: Option<String>,
    pub relationship: Option<String>,
    pub pupil_upns: Vec<String>,
}

/// What a directory sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub pupils_added: u64,
    pub pupils_updated: u64,
    pub pupils_left: u64,
    pub pupils_rejoined: u64,
    pub staff_active: u64,
    pub staff_deactivated: u64,
    pub contacts: u64,
    /// Pupils on roll before the import: what `pupils_left` is a share of.
    pub pupils_on_roll_before: u64,
    /// Active staff before the import: what `staff_deactivated` is a share of.
    pub staff_active_before: u64,
    /// Active members of the DSL team (dsl or ddsl) after the import.
    pub dsl_team_active: u64,
}

impl SyncReport {
    /// What the audit log says about an applied import: counts only.
    pub fn audit_detail(&self) -> String {
        format!(
            "pupils +{} ~{} left {} rejoined {}; staff {} active, {} deactivated; {} contacts",
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

/// One directory import, as read from the MIS files.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryImport<'a> {
    pub pupils: &'a [Pupil],
    pub staff: &'a [Staff],
    pub contacts: &'a [ContactImport],
}

fn date_text(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.format("%Y-%m-%d").to_string())
}

/// Names of the sealed directory fields (the AEAD's associated data).
pub(crate) mod fields {
    pub const UPN: &str = "pupil.upn";
    pub const FIRST_NAME: &str = "pupil.first_name";
    pub const LAST_NAME: &str = "pupil.last_name";
    pub const PREFERRED_NAME: &str = "pupil.preferred_name";
    pub const DATE_OF_BIRTH: &str = "pupil.date_of_birth";
    pub const CONTACT_EMAIL: &str = "contact.email";
    pub const CONTACT_NAME: &str = "contact.name";
}

/// Opens one sealed directory value (or passes a clear one from before sealing), naming the row
/// when it cannot.
fn open_field(sealer: &Sealer, what: &str, id: i64, field: &str, value: Option<String>) -> Result<Option<String>> {
    value
        .map(|v| open_or_clear(sealer, field, &v))
        .transpose()
        .map_err(|source| StoreError::Sealed { what: format!("{what} {id} ({field})"), source })
}

impl Store {
    /// Makes the directory match an import, in one transaction: pupils are matched by UPN,
    /// staff by email address, contacts by email. Pupils absent from the import are marked
    /// left on `today` (never deleted); staff absent are deactivated.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_directory(
        &self,
        sealer: &Sealer,
        blind: &BlindIndex,
        pupils: &[Pupil],
        staff: &[Staff],
        contacts: &[ContactImport],
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<SyncReport> {
        let import = DirectoryImport { pupils, staff, contacts };
        let checked = self
            .sync_directory_checked(sealer, blind, &import, today, now, None, |_| Ok::<(), std::convert::Infallible>(()), &mut |_| {})
            .await?;
        Ok(checked.unwrap_or_else(|never| match never {}))
    }

    /// [`Store::sync_directory`], with `progress` told of each pupil written and `check`
    /// judging the report inside the transaction
    /// before it commits: when `check` refuses, the transaction is rolled back, nothing at
    /// all has changed, and its error is returned inside `Ok`. When `audit_as` names an actor,
    /// the import's `directory_import` audit entry is written in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_directory_checked<E>(
        &self,
        sealer: &Sealer,
        blind: &BlindIndex,
        import: &DirectoryImport<'_>,
        today: NaiveDate,
        now: DateTime<Utc>,
        audit_as: Option<&str>,
        check: impl FnOnce(&SyncReport) -> std::result::Result<(), E>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<std::result::Result<SyncReport, E>> {
        let mut tx = self.begin().await?;
        seal_clear_directory(&mut tx, sealer, blind).await?;
        let keys = Keys { sealer, blind };
        let report = sync_in(&mut tx, keys, import, today, to_us(now), progress).await?;
        tx.bump_directory_generation().await?;
        if let Err(refused) = check(&report) {
            // Dropping an uncommitted transaction rolls it back.
            drop(tx);
            return Ok(Err(refused));
        }
        if let Some(actor) = audit_as {
            tx.append_audit(now, actor, "directory_import", "directory", &report.audit_detail()).await?;
        }
        tx.commit().await?;
        Ok(Ok(report))
    }

    /// Everything identification and rules need, in one read, opened with `sealer`.
    pub async fn load_directory(&self, sealer: &Sealer) -> Result<Directory> {
        self.load_directory_part(sealer, None, true).await
    }

    /// What a view of a few pupils needs: every member of staff (in clear, and few), only the
    /// pupils `ids` opened, and no contacts. A trust's whole roll is never decrypted for it.
    pub async fn load_directory_with_pupils(&self, sealer: &Sealer, ids: &[i64]) -> Result<Directory> {
        self.load_directory_part(sealer, Some(ids), true).await
    }

    /// Only the pupils `ids`, opened: for a view that already holds the staff.
    pub async fn load_pupils(&self, sealer: &Sealer, ids: &[i64]) -> Result<Vec<Pupil>> {
        Ok(self.load_directory_part(sealer, Some(ids), false).await?.pupils)
    }

    /// The pupils `only` names (all of them with None), the staff when `with_staff`, and the
    /// contacts with every pupil.
    async fn load_directory_part(&self, sealer: &Sealer, only: Option<&[i64]>, with_staff: bool) -> Result<Directory> {
        let pupils_sql = match only {
            None => PUPIL_COLUMNS.to_string() + " ORDER BY id",
            // Whole numbers only: nothing a user typed reaches this text.
            Some(ids) => format!(
                "{PUPIL_COLUMNS} WHERE id IN ({}) ORDER BY id",
                if ids.is_empty() { "NULL".to_string() } else { ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ") }
            ),
        };
        on_pool!(self, |p| {
            let pupil_rows = sqlx::query(sqlx::AssertSqlSafe(pupils_sql)).fetch_all(p).await?;
            let (staff_rows, email_rows, role_rows) = if with_staff {
                (
                    sqlx::query("SELECT id, first_name, last_name, house, tutor_group, active FROM staff ORDER BY id").fetch_all(p).await?,
                    sqlx::query("SELECT staff_id, email FROM staff_emails ORDER BY staff_id, position").fetch_all(p).await?,
                    sqlx::query("SELECT staff_id, role FROM staff_roles ORDER BY staff_id, role").fetch_all(p).await?,
                )
            } else {
                (Vec::new(), Vec::new(), Vec::new())
            };
            let (contact_rows, link_rows) = if only.is_some() {
                (Vec::new(), Vec::new())
            } else {
                (
                    sqlx::query("SELECT id, email, name, relationship FROM contacts ORDER BY id").fetch_all(p).await?,
                    sqlx::query("SELECT contact_id, pupil_id FROM contact_pupils ORDER BY contact_id, pupil_id").fetch_all(p).await?,
                )
            };

            let parse_date = |s: Option<String>| s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
            let mut pupils = Vec::with_capacity(pupil_rows.len());
            for r in pupil_rows {
                let id: i64 = r.try_get("id")?;
                let open = |field: &str, v: Option<String>| open_field(sealer, "pupil", id, field, v);
                // A pupil whose own key a disposal destroyed (a database restored from before
                // the disposal): gone, as the disposal meant.
                if let Some(upn) = r.try_get::<Option<String>, _>("upn")?
                    && matches!(crate::blind::open_or_clear(sealer, fields::UPN, &upn), Err(crate::seal::SealError::Shredded(_)))
                {
                    tracing::warn!(pupil = id, "a pupil's own key was destroyed by a disposal: their directory row is skipped");
                    continue;
                }
                pupils.push(Pupil {
                    id,
                    upn: open(fields::UPN, r.try_get("upn")?)?.unwrap_or_default(),
                    first_name: open(fields::FIRST_NAME, r.try_get("first_name")?)?.unwrap_or_default(),
                    last_name: open(fields::LAST_NAME, r.try_get("last_name")?)?.unwrap_or_default(),
                    preferred_name: open(fields::PREFERRED_NAME, r.try_get("preferred_name")?)?,
                    date_of_birth: parse_date(open(fields::DATE_OF_BIRTH, r.try_get("date_of_birth")?)?),
                    year_group: r.try_get("year_group")?,
                    tutor_group: r.try_get("tutor_group")?,
                    house: r.try_get("house")?,
                    sen: r.try_get("sen")?,
                    left_on: parse_date(r.try_get("left_on")?),
                });
            }
            let mut emails: HashMap<i64, Vec<String>> = HashMap::new();
            for r in email_rows {
                emails.entry(r.try_get("staff_id")?).or_default().push(r.try_get("email")?);
            }
            let mut roles: HashMap<i64, Vec<Role>> = HashMap::new();
            for r in role_rows {
                let role: String = r.try_get("role")?;
                if let Some(role) = Role::parse(&role) {
                    roles.entry(r.try_get("staff_id")?).or_default().push(role);
                }
            }
            let mut staff = Vec::with_capacity(staff_rows.len());
            for r in staff_rows {
                let id: i64 = r.try_get("id")?;
                let mut rs = roles.remove(&id).unwrap_or_default();
                rs.sort();
                staff.push(Staff {
                    id,
                    emails: emails.remove(&id).unwrap_or_default(),
                    first_name: r.try_get("first_name")?,
                    last_name: r.try_get("last_name")?,
                    roles: rs,
                    house: r.try_get("house")?,
                    tutor_group: r.try_get("tutor_group")?,
                    active: r.try_get("active")?,
                });
            }
            let mut links: HashMap<i64, Vec<i64>> = HashMap::new();
            for r in link_rows {
                links.entry(r.try_get("contact_id")?).or_default().push(r.try_get("pupil_id")?);
            }
            let mut contacts = Vec::with_capacity(contact_rows.len());
            for r in contact_rows {
                let id: i64 = r.try_get("id")?;
                let open = |field: &str, v: Option<String>| open_field(sealer, "contact", id, field, v);
                contacts.push(Contact {
                    id,
                    email: open(fields::CONTACT_EMAIL, r.try_get("email")?)?.unwrap_or_default(),
                    name: open(fields::CONTACT_NAME, r.try_get("name")?)?,
                    relationship: r.try_get("relationship")?,
                    pupil_ids: links.remove(&id).unwrap_or_default(),
                });
            }
            Ok(Directory::new(pupils, staff, contacts))
        })
    }
}

/// A pupil's columns, as a directory holds them.
const PUPIL_COLUMNS: &str = "SELECT id, upn, first_name, last_name, preferred_name, date_of_birth, year_group, \
     tutor_group, house, sen, left_on FROM pupils";

/// The keys a sync seals and indexes with.
#[derive(Clone, Copy)]
struct Keys<'a> {
    sealer: &'a Sealer,
    blind: &'a BlindIndex,
}

impl Keys<'_> {
    fn seal(&self, field: &str, value: &str) -> String {
        self.sealer.seal_text(field, value)
    }

    fn seal_opt(&self, field: &str, value: Option<&str>) -> Option<String> {
        value.map(|v| self.seal(field, v))
    }
}

/// Seals directory rows still in clear (written before sealing began, migration 0007): the
/// rows without a blind index.
pub(crate) async fn seal_clear_directory(tx: &mut Tx, sealer: &Sealer, blind: &BlindIndex) -> Result<u64> {
    let keys = Keys { sealer, blind };
    let mut sealed = 0;
    on_tx!(tx, |c| {
        let rows = sqlx::query("SELECT id, upn, first_name, last_name, preferred_name, date_of_birth FROM pupils WHERE upn_index IS NULL")
            .fetch_all(&mut *c)
            .await?;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let open = |field: &str, v: Option<String>| open_field(sealer, "pupil", id, field, v);
            let upn = open(fields::UPN, r.try_get("upn")?)?.unwrap_or_default();
            let first = open(fields::FIRST_NAME, r.try_get("first_name")?)?.unwrap_or_default();
            let last = open(fields::LAST_NAME, r.try_get("last_name")?)?.unwrap_or_default();
            let preferred = open(fields::PREFERRED_NAME, r.try_get("preferred_name")?)?;
            let dob = open(fields::DATE_OF_BIRTH, r.try_get("date_of_birth")?)?;
            sqlx::query(
                "UPDATE pupils SET upn = $1, upn_index = $2, first_name = $3, last_name = $4, \
                 preferred_name = $5, date_of_birth = $6 WHERE id = $7",
            )
            .bind(keys.seal(fields::UPN, &upn))
            .bind(blind.index(kinds::UPN, &upn))
            .bind(keys.seal(fields::FIRST_NAME, &first))
            .bind(keys.seal(fields::LAST_NAME, &last))
            .bind(keys.seal_opt(fields::PREFERRED_NAME, preferred.as_deref()))
            .bind(keys.seal_opt(fields::DATE_OF_BIRTH, dob.as_deref()))
            .bind(id)
            .execute(&mut *c)
            .await?;
            sealed += 1;
        }
        let rows = sqlx::query("SELECT id, email, name FROM contacts WHERE email_index IS NULL").fetch_all(&mut *c).await?;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let open = |field: &str, v: Option<String>| open_field(sealer, "contact", id, field, v);
            let email = open(fields::CONTACT_EMAIL, r.try_get("email")?)?.unwrap_or_default();
            let name = open(fields::CONTACT_NAME, r.try_get("name")?)?;
            sqlx::query("UPDATE contacts SET email = $1, email_index = $2, name = $3 WHERE id = $4")
                .bind(keys.seal(fields::CONTACT_EMAIL, &email))
                .bind(blind.index(kinds::CONTACT_EMAIL, &email))
                .bind(keys.seal_opt(fields::CONTACT_NAME, name.as_deref()))
                .bind(id)
                .execute(&mut *c)
                .await?;
            sealed += 1;
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(sealed)
}

async fn sync_in(
    tx: &mut Tx,
    keys: Keys<'_>,
    import: &DirectoryImport<'_>,
    today: NaiveDate,
    now_us: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<SyncReport> {
    let DirectoryImport { pupils, staff, contacts } = *import;
    let mut report = SyncReport::default();
    let today = today.format("%Y-%m-%d").to_string();
    on_tx!(tx, |c| {
        // Pupils, by UPN (opened: the stored values are sealed).
        let mut existing: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        for r in sqlx::query("SELECT id, upn, left_on FROM pupils").fetch_all(&mut *c).await? {
            let id: i64 = r.try_get("id")?;
            let upn = open_field(keys.sealer, "pupil", id, fields::UPN, r.try_get("upn")?)?.unwrap_or_default();
            existing.insert(upn, (id, r.try_get("left_on")?));
        }
        report.pupils_on_roll_before = existing.values().filter(|(_, left_on)| left_on.is_none()).count() as u64;
        let mut upn_to_id: HashMap<String, i64> = HashMap::new();
        let mut seen = HashSet::new();
        // Each pupil gets a key of their own (crypto-shredding), made when first needed: a new
        // pupil's row is written, then sealed again under their key once it has an id.
        let mut ring = keys.sealer.clone();
        let own_key = |ring: Sealer, id: i64| {
            ring.with_pupil_key(id).map_err(|source| StoreError::Sealed { what: format!("pupil {id}'s own key"), source })
        };
        for p in pupils {
            seen.insert(p.upn.clone());
            let known = upn_to_id.get(&p.upn).copied().or_else(|| existing.get(&p.upn).map(|(id, _)| *id));
            if let Some(id) = known {
                ring = own_key(ring, id)?;
            }
            let pupil = known.unwrap_or(0);
            let seal = |field: &str, v: &str| {
                ring.seal_text_for(pupil, field, v)
                    .map_err(|source| StoreError::Sealed { what: format!("pupil {pupil}'s {field}"), source })
            };
            let query = match known {
                Some(_) => sqlx::query(
                    "UPDATE pupils SET upn = $1, upn_index = $2, first_name = $3, last_name = $4, \
                     preferred_name = $5, date_of_birth = $6, year_group = $7, tutor_group = $8, house = $9, \
                     sen = $10, left_on = NULL, updated_us = $11 WHERE id = $12 RETURNING id",
                ),
                None => sqlx::query(
                    "INSERT INTO pupils (upn, upn_index, first_name, last_name, preferred_name, date_of_birth, \
                     year_group, tutor_group, house, sen, left_on, updated_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11) RETURNING id",
                ),
            };
            let values = query
                .bind(seal(fields::UPN, &p.upn)?)
                .bind(keys.blind.index(kinds::UPN, &p.upn))
                .bind(seal(fields::FIRST_NAME, &p.first_name)?)
                .bind(seal(fields::LAST_NAME, &p.last_name)?)
                .bind(p.preferred_name.as_deref().map(|v| seal(fields::PREFERRED_NAME, v)).transpose()?)
                .bind(date_text(p.date_of_birth).as_deref().map(|v| seal(fields::DATE_OF_BIRTH, v)).transpose()?)
                .bind(p.year_group)
                .bind(&p.tutor_group)
                .bind(&p.house)
                .bind(p.sen)
                .bind(now_us);
            let values = match known {
                Some(id) => values.bind(id),
                None => values,
            }
            .fetch_one(&mut *c)
            .await?;
            let id: i64 = values.try_get("id")?;
            // The name index follows the names (see `pupil_search`).
            let tokens = super::pupil_search::name_tokens(keys.blind, &p.first_name, p.preferred_name.as_deref(), &p.last_name);
            sqlx::query("DELETE FROM pupil_name_tokens WHERE pupil_id = $1").bind(id).execute(&mut *c).await?;
            if !tokens.is_empty() {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(super::pupil_search::insert_words_sql(tokens.len()))).bind(id);
                for t in tokens {
                    q = q.bind(t);
                }
                q.execute(&mut *c).await?;
            }
            if known.is_none() {
                ring = own_key(ring, id)?;
                let seal = |field: &str, v: &str| {
                    ring.seal_text_for(id, field, v).map_err(|source| StoreError::Sealed { what: format!("pupil {id}'s {field}"), source })
                };
                sqlx::query(
                    "UPDATE pupils SET upn = $1, first_name = $2, last_name = $3, preferred_name = $4, date_of_birth = $5 WHERE id = $6",
                )
                .bind(seal(fields::UPN, &p.upn)?)
                .bind(seal(fields::FIRST_NAME, &p.first_name)?)
                .bind(seal(fields::LAST_NAME, &p.last_name)?)
                .bind(p.preferred_name.as_deref().map(|v| seal(fields::PREFERRED_NAME, v)).transpose()?)
                .bind(date_text(p.date_of_birth).as_deref().map(|v| seal(fields::DATE_OF_BIRTH, v)).transpose()?)
                .bind(id)
                .execute(&mut *c)
                .await?;
            }
            upn_to_id.insert(p.upn.clone(), id);
            match existing.get(&p.upn) {
                None => report.pupils_added += 1,
                Some((_, Some(_))) => report.pupils_rejoined += 1,
                Some((_, None)) => report.pupils_updated += 1,
            }
            progress(1);
        }
        for (upn, (id, left_on)) in &existing {
            upn_to_id.entry(upn.clone()).or_insert(*id);
            if !seen.contains(upn) && left_on.is_none() {
                sqlx::query("UPDATE pupils SET left_on = $1, updated_us = $2 WHERE id = $3")
                    .bind(&today)
                    .bind(now_us)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                report.pupils_left += 1;
            }
        }

        // Staff, by any of their addresses.
        let active_before: i64 = sqlx::query("SELECT COUNT(*) AS n FROM staff WHERE active").fetch_one(&mut *c).await?.try_get("n")?;
        report.staff_active_before = active_before as u64;
        let mut staff_ids_seen = HashSet::new();
        for s in staff {
            let emails: Vec<String> = s.emails.iter().map(|e| e.to_ascii_lowercase()).collect();
            let mut found: Option<i64> = None;
            for e in &emails {
                if let Some(r) = sqlx::query("SELECT staff_id FROM staff_emails WHERE email = $1").bind(e).fetch_optional(&mut *c).await? {
                    found = Some(r.try_get("staff_id")?);
                    break;
                }
            }
            let id: i64 = match found {
                Some(id) => {
                    sqlx::query(
                        "UPDATE staff SET first_name = $1, last_name = $2, house = $3, \
                         tutor_group = $4, active = $5, updated_us = $6 WHERE id = $7",
                    )
                    .bind(&s.first_name)
                    .bind(&s.last_name)
                    .bind(&s.house)
                    .bind(&s.tutor_group)
                    .bind(s.active)
                    .bind(now_us)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                    id
                }
                None => sqlx::query(
                    "INSERT INTO staff (first_name, last_name, house, tutor_group, active, updated_us) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&s.first_name)
                .bind(&s.last_name)
                .bind(&s.house)
                .bind(&s.tutor_group)
                .bind(s.active)
                .bind(now_us)
                .fetch_one(&mut *c)
                .await?
                .try_get("id")?,
            };
            staff_ids_seen.insert(id);
            sqlx::query("DELETE FROM staff_emails WHERE staff_id = $1").bind(id).execute(&mut *c).await?;
            for (i, e) in emails.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO staff_emails (email, staff_id, position) VALUES ($1, $2, $3) \
                     ON CONFLICT (email) DO UPDATE SET staff_id = excluded.staff_id, position = excluded.position",
                )
                .bind(e)
                .bind(id)
                .bind(i as i32)
                .execute(&mut *c)
                .await?;
            }
            sqlx::query("DELETE FROM staff_roles WHERE staff_id = $1").bind(id).execute(&mut *c).await?;
            for role in &s.roles {
                sqlx::query("INSERT INTO staff_roles (staff_id, role) VALUES ($1, $2)")
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            if s.active {
                report.staff_active += 1;
            }
        }
        let all_staff: Vec<(i64, bool)> = sqlx::query("SELECT id, active FROM staff")
            .fetch_all(&mut *c)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("active")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (id, active) in all_staff {
            if active && !staff_ids_seen.contains(&id) {
                sqlx::query("UPDATE staff SET active = $1, updated_us = $2 WHERE id = $3")
                    .bind(false)
                    .bind(now_us)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                report.staff_deactivated += 1;
            }
        }
        let dsl_team: i64 = sqlx::query(
            "SELECT COUNT(DISTINCT staff.id) AS n FROM staff JOIN staff_roles ON staff_roles.staff_id = staff.id \
             WHERE staff.active AND staff_roles.role IN ($1, $2)",
        )
        .bind(Role::Dsl.as_str())
        .bind(Role::Ddsl.as_str())
        .fetch_one(&mut *c)
        .await?
        .try_get("n")?;
        report.dsl_team_active = dsl_team as u64;

        // Contacts, by email; their links are replaced by the import's.
        sqlx::query("DELETE FROM contact_pupils").execute(&mut *c).await?;
        let mut contact_ids: HashMap<String, i64> = HashMap::new();
        for r in sqlx::query("SELECT id, email FROM contacts").fetch_all(&mut *c).await? {
            let id: i64 = r.try_get("id")?;
            let email = open_field(keys.sealer, "contact", id, fields::CONTACT_EMAIL, r.try_get("email")?)?;
            contact_ids.insert(email.unwrap_or_default().to_ascii_lowercase(), id);
        }
        for ct in contacts {
            let email = ct.email.to_ascii_lowercase();
            let known = contact_ids.get(&email).copied();
            let query = match known {
                Some(_) => sqlx::query(
                    "UPDATE contacts SET email = $1, email_index = $2, name = $3, relationship = $4 \
                     WHERE id = $5 RETURNING id",
                ),
                None => sqlx::query("INSERT INTO contacts (email, email_index, name, relationship) VALUES ($1, $2, $3, $4) RETURNING id"),
            }
            .bind(keys.seal(fields::CONTACT_EMAIL, &email))
            .bind(keys.blind.index(kinds::CONTACT_EMAIL, &email))
            .bind(keys.seal_opt(fields::CONTACT_NAME, ct.name.as_deref()))
            .bind(&ct.relationship);
            let id: i64 = match known {
                Some(id) => query.bind(id),
                None => query,
            }
            .fetch_one(&mut *c)
            .await?
            .try_get("id")?;
            contact_ids.insert(email, id);
            for upn in &ct.pupil_upns {
                let pupil_id = upn_to_id.get(upn).ok_or_else(|| StoreError::Invalid(format!("contact refers to unknown UPN {upn}")))?;
                sqlx::query("INSERT INTO contact_pupils (contact_id, pupil_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(pupil_id)
                    .execute(&mut *c)
                    .await?;
            }
            report.contacts += 1;
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(report)
}
