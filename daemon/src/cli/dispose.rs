//! `haven dispose request|approve|cancel|run|certificate` and `haven disposals`: destroying a
//! pupil's records in one retention series, by two different people. The DSL team asks (only
//! when a destroy decision stands on review, or the series is past its date); the head or the
//! DPO, never the one who asked, approves; after the cooling-off period (`[disposal]
//! cooling_off` in retention.toml) someone from the DSL team, the head or the DPO carries it
//! out with `dispose run`. Haven never carries one out by itself. Any standing hold on the
//! pupil or one of their incidents stops every step. Every step and every refusal is audited.

use super::hold::may_manage_records;
use super::retention::load_policy;
use super::{App, CliError, load_rules};
use crate::directory::{Directory, Role, Staff};
use crate::retention::certificate::{Certificate, lines};
use crate::retention::{Policy, describe};
use crate::store::{Disposal, DisposalPlan, DisposalState, MailCopy, disposal_fields};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// The certificate's formats: text and HTML on standard output, PDF/A into `--out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CertificateFormat {
    Text,
    Html,
    Pdf,
}

/// How long a disposal waits for the mailbox to delete its copies while it holds the database's
/// write transaction open (SQLite's writers wait up to 30 s for it).
const MAILBOX_TIME: std::time::Duration = std::time::Duration::from_secs(20);

fn reference(id: i64) -> String {
    format!("D-{id:04}")
}

fn day(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %Y").to_string()
}

fn moment(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %Y %H:%M").to_string()
}

fn staff_name(dir: &Directory, id: i64) -> String {
    dir.staff.iter().find(|s| s.id == id).map_or_else(
        || format!("staff #{id}"),
        |s| {
            let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
            format!("{} {} ({})", s.first_name, s.last_name, roles.join(", "))
        },
    )
}

/// Refuses with `message` (exit 2), auditing the refusal first.
async fn refuse<T>(app: &App, id: Option<i64>, actor: &str, why: &str, message: String) -> Result<T, CliError> {
    let mut tx = app.store.begin().await?;
    tx.audit_disposal_refusal(id, actor, why, app.now()).await?;
    tx.commit().await?;
    Err(CliError::Usage(format!("{message}; nothing was changed")))
}

fn active<'a>(dir: &'a Directory, email: &str) -> Result<&'a Staff, CliError> {
    dir.active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("--by {email}: not an active member of staff; nothing was changed")))
}

/// The active member of staff `by`, when they may manage records (the DSL team, the head, the
/// DPO); otherwise the refusal of `step` on disposal `id` is audited and explained. Only the staff
/// list is loaded: no pupil is opened to check who is asking.
async fn manager(app: &App, sealer: &crate::seal::Sealer, id: i64, by: &str, step: &str, doing: &str) -> Result<Staff, CliError> {
    let dir = app.store.load_directory_with_pupils(sealer, &[]).await?;
    let staff = active(&dir, by)?;
    if !may_manage_records(staff) {
        return refuse(
            app,
            Some(id),
            &actor(staff),
            &format!("{step}: not DSL team, head or DPO"),
            format!("--by {by}: only the DSL team, the head or the DPO may {doing}"),
        )
        .await;
    }
    Ok(staff.clone())
}

fn actor(staff: &Staff) -> String {
    format!("staff:{}", staff.id)
}

/// The standing holds on the pupil or one of their incidents, as one refusal line; None when
/// there are none.
async fn held(app: &App, pupil: i64) -> Result<Option<String>, CliError> {
    let holds = app.store.holds_touching(Some(pupil), None).await?;
    Ok(holds.first().map(|h| {
        let on = match h.on {
            crate::store::HoldOn::Pupil(_) => "the pupil".to_string(),
            crate::store::HoldOn::Incident(i) => format!("incident #{i}"),
        };
        format!("{} standing hold(s) (hold #{} on {on}, {}): nothing can be disposed of while a hold stands", holds.len(), h.id, h.reason)
    }))
}

async fn load(app: &App, id: i64) -> Result<Disposal, CliError> {
    app.store
        .disposal(id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("there is no disposal #{id} (see `haven disposals`); nothing was changed")))
}

/// The pupil's incidents in `series`: (only theirs, shared with other pupils).
async fn incidents_in(app: &App, policy: &Policy, pupil: i64, series: &str) -> Result<(Vec<i64>, Vec<i64>), CliError> {
    let categories = load_rules(&app.config)?.categories().clone();
    let mut own = Vec::new();
    let mut shared = Vec::new();
    for i in app.store.pupil_incidents(pupil).await? {
        if policy.series_for(&i.category, &categories).is_some_and(|s| s.name == series) {
            if i.others == 0 { own.push(i.incident) } else { shared.push(i.incident) }
        }
    }
    Ok((own, shared))
}

pub struct Request<'a> {
    pub pupil: &'a str,
    pub series: &'a str,
    pub by: &'a str,
    pub reason: &'a str,
}

pub async fn request(app: &App, req: Request<'_>) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    if req.reason.trim().is_empty() {
        return Err(CliError::Usage("--reason is empty: say why these records are to be destroyed; nothing was changed".into()));
    }
    let policy = load_policy(app)?;
    if policy.get(req.series).is_none() {
        let known: Vec<&str> = policy.series.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--series {:?} is not in the retention schedule ({}); nothing was changed",
            req.series,
            known.join(", ")
        )));
    }
    let sealer = app.sealer().await?;
    let named = app.store.find_pupils(&app.blind_index()?, req.pupil).await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &named).await?;
    let pupil = super::chronology::find_pupil(&dir, req.pupil)?;
    let staff = active(&dir, req.by)?;
    if !staff.is_dsl_team() {
        return refuse(
            app,
            None,
            &actor(staff),
            "request: not DSL team",
            format!("--by {}: only the DSL team may ask for a disposal (the head or the DPO then approves it)", req.by),
        )
        .await;
    }
    if let Some(hold) = held(app, pupil.id).await? {
        return refuse(app, None, &actor(staff), "request: hold stands", format!("pupil {} is under {hold}", pupil.upn)).await;
    }
    let (own, shared) = incidents_in(app, &policy, pupil.id, req.series).await?;
    if own.is_empty() && shared.is_empty() {
        return Err(CliError::Usage(format!(
            "pupil {} has no records in series {}: nothing to dispose of; nothing was changed",
            pupil.upn, req.series
        )));
    }
    if let Some(open) = app.store.disposals().await?.into_iter().find(|d| {
        d.pupil_id == Some(pupil.id) && d.series == req.series && matches!(d.state, DisposalState::Requested | DisposalState::Approved)
    }) {
        return Err(CliError::Usage(format!(
            "disposal #{} of pupil {}'s {} records is already {}; nothing was changed",
            open.id,
            pupil.upn,
            req.series,
            open.state.as_str()
        )));
    }
    let review = app.store.latest_reviews().await?.into_iter().find(|r| r.pupil_id == pupil.id && r.series == req.series);
    let today = now.with_timezone(&tz).date_naive();
    let basis = if review.as_ref().is_some_and(|r| r.destroy) {
        "review"
    } else {
        let (_, rows) = super::retention::schedule(app).await?;
        let due = rows.iter().find(|r| r.upn == pupil.upn && r.series == req.series).and_then(|r| r.due);
        match due {
            Some(d) if d <= today => "due",
            other => {
                let when = other.map_or_else(|| "cannot be worked out yet".to_string(), |d| format!("falls due for review on {d}"));
                return refuse(
                    app,
                    None,
                    &actor(staff),
                    "request: not due",
                    format!(
                        "pupil {}'s {} records are not due for disposal: the series {when} and no destroy decision stands \
                     (record one with `haven retention review {} --series {} --decision destroy …`)",
                        pupil.upn, req.series, pupil.upn, req.series
                    ),
                )
                .await;
            }
        }
    };
    let mut tx = app.store.begin().await?;
    let id = tx
        .request_disposal(pupil.id, req.series, basis, &sealer.seal_text(disposal_fields::REASON, req.reason.trim()), staff.id, now)
        .await?;
    tx.commit().await?;
    Ok(format!(
        "disposal #{id} requested: pupil {}'s {} records ({} incident(s) about them only, {} shared with other pupils); \
         the head or the DPO approves it with `haven dispose approve {id} --by EMAIL`, and it can be carried out {} after that",
        pupil.upn,
        req.series,
        own.len(),
        shared.len(),
        describe(policy.disposal.cooling_off)
    ))
}

pub async fn approve(app: &App, id: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let policy = load_policy(app)?;
    let d = load(app, id).await?;
    let sealer = app.sealer().await?;
    // Staff only: no pupil is opened to check who is asking.
    let dir = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let staff = active(&dir, by)?;
    if !(staff.has_role(Role::Head) || staff.has_role(Role::Dpo)) {
        return refuse(
            app,
            Some(id),
            &actor(staff),
            "approve: not head or DPO",
            format!("--by {by}: only the head or the DPO may approve a disposal"),
        )
        .await;
    }
    if staff.id == d.requested_by {
        return refuse(app, Some(id), &actor(staff), "approve: same person", format!(
            "--by {by} asked for disposal #{id}: a disposal needs two different people, so someone else (the head or the DPO) must approve it"
        ))
        .await;
    }
    if d.state != DisposalState::Requested {
        return Err(CliError::Usage(format!("disposal #{id} is {}, not waiting for approval; nothing was changed", d.state.as_str())));
    }
    if let Some(pupil) = d.pupil_id
        && let Some(hold) = held(app, pupil).await?
    {
        return refuse(app, Some(id), &actor(staff), "approve: hold stands", format!("disposal #{id}: the pupil is under {hold}")).await;
    }
    let cooling = chrono::Duration::from_std(policy.disposal.cooling_off).unwrap_or(chrono::Duration::MAX);
    let not_before = now.checked_add_signed(cooling).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut tx = app.store.begin().await?;
    if !tx.approve_disposal(id, staff.id, now, not_before).await? {
        return Err(CliError::Usage(format!("disposal #{id} is no longer waiting for approval; nothing was changed")));
    }
    tx.commit().await?;
    Ok(format!(
        "disposal #{id} approved: after the {} cooling-off it can be carried out from {} (`haven dispose run {id} --by EMAIL`); \
         until then anyone from the DSL team, the head or the DPO can cancel it, and a hold stops it",
        describe(policy.disposal.cooling_off),
        moment(not_before, tz)
    ))
}

pub async fn cancel(app: &App, id: i64, by: &str, reason: &str) -> Result<String, CliError> {
    let now = app.now();
    if reason.trim().is_empty() {
        return Err(CliError::Usage("--reason is empty: say why the disposal is cancelled; nothing was changed".into()));
    }
    let d = load(app, id).await?;
    let sealer = app.sealer().await?;
    let staff = &manager(app, &sealer, id, by, "cancel", "cancel a disposal").await?;
    if !matches!(d.state, DisposalState::Requested | DisposalState::Approved) {
        return Err(CliError::Usage(format!(
            "disposal #{id} is {}: only a requested or approved disposal can be cancelled; nothing was changed",
            d.state.as_str()
        )));
    }
    let mut tx = app.store.begin().await?;
    if !tx.cancel_disposal(id, &sealer.seal_text(disposal_fields::CANCEL_REASON, reason.trim()), staff.id, now).await? {
        return Err(CliError::Usage(format!("disposal #{id} was carried out or cancelled meanwhile; nothing was changed")));
    }
    tx.commit().await?;
    Ok(format!("disposal #{id} cancelled: nothing was deleted"))
}

/// Deletes the messages' copies from the configured mailbox: the IMAP Filed, Quarantine and
/// intake folders, or the intake Maildir. Returns how many copies went.
async fn delete_from_mailbox(app: &App, messages: &[MailCopy]) -> Result<u64, CliError> {
    let hashed: Vec<&MailCopy> = messages.iter().filter(|m| m.sha256.is_some()).collect();
    if hashed.is_empty() {
        return Ok(0);
    }
    let failed = |e: String| {
        CliError::Other(anyhow::anyhow!(
            "cannot delete the original messages from the mailbox: {e}; nothing was deleted from the database: run it again once the mailbox can be reached"
        ))
    };
    match app.config.intake.source {
        crate::config::SourceKind::Imap => {
            let Some(settings) = crate::daemon::imap_settings(&app.config) else {
                return Ok(0);
            };
            let wanted: Vec<crate::source::imap::Wanted> = hashed
                .iter()
                .map(|m| crate::source::imap::Wanted {
                    message_id: m.message_id.clone(),
                    size: u64::try_from(m.size).unwrap_or(0),
                    sha256: m.sha256.clone().unwrap_or_default(),
                })
                .collect();
            crate::source::imap::delete_messages(&settings, &wanted).await.map(|p| p.total()).map_err(|e| failed(e.to_string()))
        }
        crate::config::SourceKind::Maildir => {
            let Some(m) = &app.config.intake.maildir else {
                return Ok(0);
            };
            let wanted: Vec<(u64, String)> =
                hashed.iter().map(|m| (u64::try_from(m.size).unwrap_or(0), m.sha256.clone().unwrap_or_default())).collect();
            let path = m.path.clone();
            tokio::task::spawn_blocking(move || crate::source::maildir::delete_messages(&path, &wanted))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))
        }
    }
}

pub async fn run(app: &App, id: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let policy = load_policy(app)?;
    let d = load(app, id).await?;
    let sealer = app.sealer().await?;
    let staff = &manager(app, &sealer, id, by, "run", "carry out a disposal").await?;
    match d.state {
        DisposalState::Approved => {}
        DisposalState::Requested => {
            return refuse(
                app,
                Some(id),
                &actor(staff),
                "run: not approved",
                format!(
                    "disposal #{id} is not approved yet: the head or the DPO approves it first (`haven dispose approve {id} --by EMAIL`)"
                ),
            )
            .await;
        }
        DisposalState::Cancelled | DisposalState::Done => {
            return Err(CliError::Usage(format!(
                "disposal #{id} is {}: there is nothing to carry out; nothing was changed",
                d.state.as_str()
            )));
        }
    }
    if let Some(not_before) = d.not_before
        && now < not_before
    {
        return refuse(
            app,
            Some(id),
            &actor(staff),
            "run: cooling-off",
            format!("disposal #{id} is in its cooling-off period until {}: it can be carried out from then", moment(not_before, tz)),
        )
        .await;
    }
    let Some(pupil) = d.pupil_id else {
        return Err(CliError::Usage(format!("disposal #{id} names no pupil any more; nothing was changed")));
    };
    if let Some(hold) = held(app, pupil).await? {
        return refuse(app, Some(id), &actor(staff), "run: hold stands", format!("disposal #{id}: the pupil is under {hold}")).await;
    }
    let (own, shared) = incidents_in(app, &policy, pupil, &d.series).await?;
    let messages = app.store.messages_only_of(&own).await?;
    let plan = DisposalPlan { disposal: id, pupil, series: d.series.clone(), own, shared, messages };
    let has_key = sealer.has_pupil_key(pupil).map_err(super::pupil_key_error)?;
    // Whatever of another pupil's record is sealed under this pupil's own key is sealed under
    // the ring alone first, so destroying the key loses nothing of theirs.
    app.store.unseal_from_pupil(&plan.own, pupil, &sealer).await?;
    let kept_for = chrono::Duration::from_std(policy.disposal.backups_kept_for).unwrap_or(chrono::Duration::MAX);
    let expire: NaiveDate = now.checked_add_signed(kept_for).unwrap_or(now).with_timezone(&tz).date_naive();
    // The database's deletions first, uncommitted: a database that cannot take them (a full
    // disk) fails before the mailbox is touched. Then the mailbox's copies (bounded in time, so
    // the daemon's writers waiting on this transaction are not held for long), then the log
    // entry counting them, and one commit. A mailbox that cannot be reached rolls it all back.
    let mut tx = app.store.begin().await?;
    let mut destroyed = tx.carry_out_disposal(&plan, staff.id, now, has_key).await.map_err(|e| match e {
        crate::store::StoreError::Invalid(m) => CliError::Usage(m),
        other => other.into(),
    })?;
    destroyed.mailbox_copies = match tokio::time::timeout(MAILBOX_TIME, delete_from_mailbox(app, &plan.messages)).await {
        Ok(copies) => copies?,
        Err(_) => {
            return Err(CliError::Other(anyhow::anyhow!(
                "the mailbox did not finish deleting the original messages within {} s; nothing was deleted from the database: \
                 run it again once the mailbox answers",
                MAILBOX_TIME.as_secs()
            )));
        }
    };
    tx.record_disposal(&plan, &destroyed, staff.id, now, expire).await?;
    tx.commit().await?;
    if destroyed.pupil_key {
        sealer.destroy_pupil_key(pupil).map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "disposal #{id} deleted the records, but the pupil's own key could not be destroyed: {e}; delete the file named by the pupil's number in {} by hand",
                crate::seal::KeyFiles::new(&app.config.storage.key_file).pupil_dir().display()
            ))
        })?;
    }
    if !app.store.scrub_deleted().await? {
        tracing::warn!(
            disposal = id,
            "the database's write-ahead log could not be truncated after a disposal; the next checkpoint does it"
        );
    }
    Ok(format!(
        "disposal #{id} carried out: {} incident(s) destroyed, {} shared incident(s) unlinked, {} message(s) and {} mailbox cop(ies) deleted, \
         directory entry {}{}; backups holding them expire by {expire}. Certificate: `haven dispose certificate {id}`",
        destroyed.incidents,
        destroyed.shared_incidents_unlinked,
        destroyed.messages,
        destroyed.mailbox_copies,
        if destroyed.directory_entry { "deleted" } else { "kept (records in another series remain)" },
        if destroyed.pupil_key { ", their own key destroyed" } else { "" },
    ))
}

fn basis_words(basis: &str) -> &'static str {
    match basis {
        "review" => "a destroy decision recorded on retention review",
        _ => "the series was past its retention date",
    }
}

pub async fn certificate(app: &App, id: i64, format: CertificateFormat, out: Option<&std::path::Path>) -> Result<String, CliError> {
    if (format == CertificateFormat::Pdf) != out.is_some() {
        return Err(CliError::Usage(match format {
            CertificateFormat::Pdf => "a PDF certificate needs --out FILE.pdf (it is not written to the terminal)".into(),
            _ => "--out is for --format pdf; text and HTML go to standard output".into(),
        }));
    }
    let tz = app.config.school.tz();
    let policy = load_policy(app)?;
    let d = load(app, id).await?;
    let (Some((run_by, run_at)), Some(destroyed), Some((approved_by, approved_at))) = (d.run, d.destroyed.as_ref(), d.approved) else {
        return Err(CliError::Usage(format!("disposal #{id} is {}, not carried out: there is no certificate yet", d.state.as_str())));
    };
    let sealer = app.sealer().await?;
    // Staff only: no pupil is opened to check who is asking.
    let dir = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let c = Certificate {
        school: app.config.school.name.clone(),
        reference: reference(id),
        series: d.series.clone(),
        basis: basis_words(&d.basis).into(),
        requested_by: staff_name(&dir, d.requested_by),
        requested_on: day(d.requested_at, tz),
        approved_by: staff_name(&dir, approved_by),
        approved_on: day(approved_at, tz),
        cooling_off_ended: d.not_before.map(|t| moment(t, tz)).unwrap_or_default(),
        run_by: staff_name(&dir, run_by),
        run_on: moment(run_at, tz),
        destroyed: lines(destroyed),
        backups_expire_on: d.backups_expire_on.map(|d| d.to_string()).unwrap_or_default(),
        backups_kept_for: describe(policy.disposal.backups_kept_for),
        issued_on: day(app.now(), tz),
    };
    let rendered = match (format, out) {
        (CertificateFormat::Pdf, Some(path)) => return write_pdf(&c, path, app.now()).await,
        (CertificateFormat::Html, _) => c.html(),
        _ => c.text(),
    };
    rendered.map_err(|e| CliError::Other(anyhow::anyhow!("cannot render the certificate: {e}")))
}

/// Writes the certificate as PDF/A to `path` (a new file, mode 0600).
#[cfg(feature = "pdf")]
async fn write_pdf(c: &Certificate, path: &std::path::Path, now: DateTime<Utc>) -> Result<String, CliError> {
    let c = c.clone();
    let rendered = tokio::task::spawn_blocking(move || c.pdf(now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    super::write_new(path, &rendered.bytes)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e} (an existing file is never overwritten)", path.display())))?;
    Ok(format!("certificate written to {} ({} page{})", path.display(), rendered.pages, if rendered.pages == 1 { "" } else { "s" }))
}

#[cfg(not(feature = "pdf"))]
async fn write_pdf(_c: &Certificate, _path: &std::path::Path, _now: DateTime<Utc>) -> Result<String, CliError> {
    Err(CliError::Usage("this haven was built without PDF support (cargo feature `pdf`): use --format html and print it to PDF".into()))
}

pub async fn list(app: &App, json_out: bool) -> Result<String, CliError> {
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let all = app.store.disposals().await?;
    let named: Vec<i64> = all.iter().filter_map(|d| d.pupil_id).collect();
    let dir = app.store.load_directory_with_pupils(&sealer, &named).await?;
    let pupil =
        |d: &Disposal| d.pupil_id.map(|p| dir.pupils.iter().find(|x| x.id == p).map_or_else(|| format!("pupil #{p}"), |x| x.upn.clone()));
    if json_out {
        let rows: Vec<_> = all
            .iter()
            .map(|d| {
                json!({
                    "id": d.id, "state": d.state, "series": d.series, "basis": d.basis, "pupil": pupil(d),
                    "requested_by": staff_name(&dir, d.requested_by), "requested_at": d.requested_at.to_rfc3339(),
                    "approved_by": d.approved.map(|(by, _)| staff_name(&dir, by)), "approved_at": d.approved.map(|(_, at)| at.to_rfc3339()),
                    "not_before": d.not_before.map(|t| t.to_rfc3339()),
                    "cancelled_by": d.cancelled.map(|(by, _)| staff_name(&dir, by)), "cancelled_at": d.cancelled.map(|(_, at)| at.to_rfc3339()),
                    "run_by": d.run.map(|(by, _)| staff_name(&dir, by)), "run_at": d.run.map(|(_, at)| at.to_rfc3339()),
                    "backups_expire_on": d.backups_expire_on.map(|d| d.to_string()),
                    "destroyed": d.destroyed,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default());
    }
    if all.is_empty() {
        return Ok("no disposals have been requested".into());
    }
    let mut out = Vec::new();
    for d in &all {
        let who = pupil(d).unwrap_or_else(|| "(pupil no longer named)".into());
        let mut line = format!(
            "disposal #{} {}: {} {}, requested {} by {}",
            d.id,
            d.state.as_str(),
            who,
            d.series,
            day(d.requested_at, tz),
            staff_name(&dir, d.requested_by)
        );
        if let Some((by, at)) = d.approved {
            line.push_str(&format!("; approved {} by {}", day(at, tz), staff_name(&dir, by)));
        }
        if d.state == DisposalState::Approved
            && let Some(t) = d.not_before
        {
            line.push_str(&format!("; can be carried out from {}", moment(t, tz)));
        }
        if let Some((by, at)) = d.cancelled {
            line.push_str(&format!("; cancelled {} by {}", day(at, tz), staff_name(&dir, by)));
        }
        if let Some((by, at)) = d.run {
            line.push_str(&format!("; carried out {} by {}", day(at, tz), staff_name(&dir, by)));
        }
        if let (Some(x), Some(e)) = (&d.destroyed, d.backups_expire_on) {
            line.push_str(&format!("; {} incident(s) destroyed; backups expire by {e}", x.incidents));
        }
        out.push(line);
    }
    Ok(out.join("\n"))
}
