//! Scale benchmark (issue 25): a multi-academy trust built through Haven's own import (CSV
//! files through `haven directory import`'s code) and filing (realistic forwards and notes
//! through the pipeline, a batch at a time as the daemon commits them), then the read paths a
//! DSL waits for, on SQLite and on PostgreSQL, printed side by side.
//!
//!     cargo bench --bench scale                  # HAVEN_SCALE=0.005: about 3 minutes
//!     HAVEN_SCALE=1 cargo bench --bench scale    # the whole trust: 50,000 pupils, 1,000,000 messages
//!     HAVEN_BENCH_BACKEND=sqlite cargo bench --bench scale   # one engine
//!
//! At `HAVEN_SCALE=1` the trust has 50,000 pupils, 3,000 staff, 80,000 contacts and a decade of
//! 1,000,000 messages (the last 1 % written in the past week, so they alert; the rest are
//! historical and file quietly). One pupil has 500 incidents (fewer when the scale has fewer
//! messages), another 5. Resident memory is the process's own: the filer, its caches and the
//! database engine (SQLite runs in-process).
//!
//! PostgreSQL: HAVEN_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres); a fresh
//! database is created and dropped.
//!
//! `HAVEN_SCALE_KEEP=DIR` keeps the trust for the next run: the SQLite file in DIR and the
//! PostgreSQL database `haven_scale_keep_<scale>` are left in place, and a run that finds them
//! filled skips the import and the filing (those rows say "kept") and measures the reads again.

#[path = "support/photo.rs"]
mod photo;
use chrono::{DateTime, Duration, Utc};
use haven::blind::BlindIndex;
use haven::cli::directory::{ImportFiles, ImportGuard};
use haven::clock::SystemClock;
use haven::pipeline::{Filer, FilingSettings};
use haven::read::Limits;
use haven::rules::{LiveRules, RuleSet};
use haven::schedule::digest::{DigestFacts, digest_for};
use haven::seal::Sealer;
use haven::source::{Incoming, Origin, Payload};
use haven::store::{MessageState, Store};
use photo::attachment;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const KEY: [u8; 32] = [11; 32];
/// Messages per transaction, as the daemon commits a backlog.
const BATCH: usize = 250;
/// How many times each read is timed.
const RUNS: usize = 40;
const HOUSES: usize = 8;

/// The trust at `HAVEN_SCALE` (default 0.005).
struct Trust {
    pupils: usize,
    staff: usize,
    contacts: usize,
    messages: usize,
    /// Incidents of the busiest pupil (500 at full scale).
    busiest: usize,
}

impl Trust {
    fn at_scale() -> (f64, Trust) {
        let f: f64 = std::env::var("HAVEN_SCALE").ok().and_then(|v| v.parse().ok()).filter(|f: &f64| *f > 0.0).unwrap_or(0.005);
        let n = |whole: f64, min: usize| ((whole * f) as usize).max(min);
        let messages = n(1_000_000.0, 2_000);
        (f, Trust { pupils: n(50_000.0, 100), staff: n(3_000.0, 20), contacts: n(80_000.0, 160), messages, busiest: 500.min(messages / 4) })
    }
}

/// A name that no other index shares: syllables spelling `i` in base 24.
fn name(mut i: usize, salt: usize) -> String {
    const SYL: [&str; 24] = [
        "ka", "lo", "mi", "na", "ro", "sa", "te", "vi", "da", "fe", "go", "ha", "ju", "ke", "li", "mo", "nu", "pa", "ri", "so", "tu", "wa",
        "ye", "zo",
    ];
    i = i * 7 + salt;
    let mut s = String::new();
    loop {
        s.push_str(SYL[i % 24]);
        i /= 24;
        if i == 0 {
            break;
        }
    }
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn upn(p: usize) -> String {
    format!("T{p:012}")
}

fn staff_email(j: usize) -> String {
    format!("staff{j}@trust.example")
}

/// The trust's MIS export: pupils, staff and contacts CSV files in `dir`.
fn write_csvs(t: &Trust, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut pupils = String::from("upn,first_name,last_name,preferred_name,date_of_birth,year_group,tutor_group,house,sen\n");
    for p in 0..t.pupils {
        let year = 7 + p % 7;
        pupils.push_str(&format!(
            "{},{},{},,2012-0{}-1{},{year},{year}{},House{},{}\n",
            upn(p),
            name(p, 1),
            name(p / 3, 2),
            1 + p % 9,
            p % 10,
            ["A", "B", "C", "D"][p % 4],
            p % HOUSES,
            if p % 11 == 0 { "yes" } else { "no" }
        ));
    }
    let mut staff = String::from("email,first_name,last_name,roles,house,tutor_group\n");
    for j in 0..t.staff {
        let (roles, house) = match j {
            0 => ("dsl", String::new()),
            1 | 2 => ("ddsl", String::new()),
            3 => ("head;slt", String::new()),
            j if j < 4 + HOUSES => ("housem", format!("House{}", j - 4)),
            j if j % 50 == 0 => ("esafety;teacher", String::new()),
            _ => ("teacher;tutor", String::new()),
        };
        staff.push_str(&format!("{},{},{},{roles},{house},\n", staff_email(j), name(j, 3), name(j, 4)));
    }
    let mut contacts = String::from("email,name,relationship,pupil_upns\n");
    for k in 0..t.contacts {
        let p = k % t.pupils;
        let (who, rel) = if k < t.pupils { ("parent", "mother") } else { ("carer", "father") };
        contacts.push_str(&format!("{who}{k}@home.example,{} {},{rel},{}\n", name(k, 5), name(p / 3, 2), upn(p)));
    }
    let files = (dir.join("pupils.csv"), dir.join("staff.csv"), dir.join("contacts.csv"));
    std::fs::write(&files.0, pupils).expect("pupils.csv");
    std::fs::write(&files.1, staff).expect("staff.csv");
    std::fs::write(&files.2, contacts).expect("contacts.csv");
    files
}

const WORDS: [&str; 8] = [
    "She has not been sleeping and says the older girls on the bus keep taking her lunch money. Could someone have a quiet word?",
    "He came home upset again; a boy in his class keeps calling him names in the changing rooms and pushing him.",
    "Just letting you know her grandmother passed away at the weekend, so she may be quiet this week.",
    "Someone has been sending him messages on Instagram asking for pictures and telling him to keep it secret.",
    "She said her dad hits me when he has been drinking, and she is scared to go home tonight.",
    "He missed Tuesday and Wednesday with a temperature; he should be back on Monday.",
    "We found cuts on her arm and she admitted self-harm; we have booked the GP for tomorrow.",
    "There was a fight at the bus stop after school and his phone was broken. He has a bruise on his cheek.",
];

/// Message `i`: about pupil `p`, written by the parent (or seen by staff) at `written`. Every
/// other message is a parent's email forwarded by a teacher, the rest a teacher's own note.
fn message(i: usize, p: usize, t: &Trust, written: DateTime<Utc>) -> Vec<u8> {
    let teacher = staff_email(4 + HOUSES + i % (t.staff - 4 - HOUSES).max(1));
    let words = WORDS[i % WORDS.len()];
    let sent = Utc::now().format("%a, %-d %b %Y %H:%M:%S +0000");
    if i.is_multiple_of(2) {
        let parent = format!("parent{p}@home.example");
        format!(
            "From: Teacher <{teacher}>\r\nTo: safeguarding@trust.example\r\nSubject: Fwd: This week\r\nDate: {sent}\r\n\
             Message-ID: <scale-{i}@mail.trust.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Passing this on from mum.\r\n\r\n---------- Forwarded message ---------\r\nFrom: Parent <{parent}>\r\n\
             Date: {}\r\nSubject: This week\r\nTo: Teacher <{teacher}>\r\n\r\nHello,\r\n\r\n{words}\r\n\r\nThanks\r\n",
            written.format("%a, %-d %b %Y at %H:%M")
        )
        .into_bytes()
    } else {
        let head = format!(
            "From: Teacher <{teacher}>\r\nTo: safeguarding@trust.example\r\nSubject: Note\r\nDate: {}\r\n\
             Message-ID: <scale-{i}@mail.trust.example>\r\nMIME-Version: 1.0\r\n",
            written.format("%a, %-d %b %Y %H:%M:%S +0000")
        );
        let note = format!("Pupil: {}\r\n\r\n{words}\r\n", upn(p));
        // A third of the notes carry a scan or photo: 100 KB, and 3 MB every 750th message.
        if i % 6 != 1 {
            return format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{note}").into_bytes();
        }
        let kb = if i % 250 == 1 { 3 * 1024 } else { 100 };
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n--b{i}\r\nContent-Type: image/jpeg\r\n\
             Content-Disposition: attachment; filename=\"scan-{i}.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b{i}--\r\n",
            attachment(i, kb)
        )
        .into_bytes()
    }
}

/// Which pupil message `i` is about, and when it was written: pupil 0 gets the busiest
/// chronology, pupil 1 five incidents, the rest spread; a decade of history, its last 1 % in
/// the past six days.
fn about(i: usize, t: &Trust, now: DateTime<Utc>) -> (usize, DateTime<Utc>) {
    let spread = (i.wrapping_mul(2_654_435_761)) % (t.pupils - 2).max(1) + 2;
    let every = (t.messages / t.busiest.max(1)).max(1);
    let p = if i.is_multiple_of(every) && i / every < t.busiest {
        0
    } else if i % (t.messages / 5).max(1) == 1 {
        1
    } else {
        spread
    };
    let live_from = t.messages - t.messages / 100;
    let written = if i >= live_from {
        now - Duration::minutes(((t.messages - i) * 517 % (6 * 24 * 60)) as i64 + 5)
    } else {
        // Oldest first, across ten years, ending a week ago.
        let span = Duration::days(3650).num_minutes();
        now - Duration::days(8) - Duration::minutes(span - span * i as i64 / live_from.max(1) as i64)
    };
    (p, written)
}

fn rss(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident size (VmHWM), so each phase's own peak can be read.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Median and 99th percentile, in milliseconds, of `RUNS` runs of `f`.
async fn timed<F, Fut>(mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        f().await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let p99 = ms[((ms.len() * 99).div_ceil(100)).saturating_sub(1)];
    (ms[ms.len() / 2], p99)
}

/// What one engine measured, in print order.
type Figures = Vec<(String, String)>;

fn filer(store: &Store) -> Filer {
    let rules = RuleSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")).expect("shipped rules");
    let settings = FilingSettings {
        intake_address: "safeguarding@trust.example".into(),
        mail_domain: "trust.example".into(),
        limits: Limits { timezone: chrono_tz::Europe::London, ..Limits::default() },
        trusted_authserv_id: None,
        alerts: haven::alert::AlertSettings {
            detail: haven::config::Detail::Minimal,
            mail_domain: "trust.example".into(),
            school_name: "Bench Trust".into(),
        },
        reply_key: Some(vec![3; 32]),
        backfill_age: Duration::days(7),
        ai_read: false,
    };
    Filer::new(store.clone(), Arc::new(LiveRules::new(rules)), Arc::new(SystemClock), Sealer::from_key(&KEY), settings)
}

/// Files messages `range` a batch at a time; messages per second. With `progress`, says on
/// stderr how far it has got every 100,000 messages (a full-scale run files for many minutes).
async fn file_range(filer: &Filer, t: &Trust, range: std::ops::Range<usize>, now: DateTime<Utc>, progress: bool) -> f64 {
    let n = range.len();
    let mut busy = std::time::Duration::ZERO;
    let (mut since, mut busy_since) = (0, std::time::Duration::ZERO);
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(BATCH) {
        // Generated per batch, as a mailbox delivers them, so memory is Haven's, not the corpus's.
        let batch: Vec<Incoming> = chunk
            .iter()
            .map(|&i| {
                let (p, written) = about(i, t, now);
                Incoming {
                    origin: Origin::Maildir { path: PathBuf::from(format!("new/{i}")) },
                    payload: Payload::Raw(message(i, p, t, written)),
                }
            })
            .collect();
        let started = Instant::now();
        filer.file_batch(&batch).await.expect("file a batch");
        busy += started.elapsed();
        since += chunk.len();
        if progress && since >= 100_000 {
            let rate = since as f64 / (busy - busy_since).as_secs_f64();
            eprintln!("  filed up to message {}: {rate:.0} msg/s, RSS {:.0} MiB", chunk[chunk.len() - 1] + 1, rss("VmRSS:"));
            (since, busy_since) = (0, busy);
        }
    }
    n as f64 / busy.as_secs_f64()
}

/// The rows [`build`] puts, in order: a kept trust shows them as "kept".
const KEPT_ROWS: [&str; 8] = [
    "directory import",
    "filing, empty database",
    "filing, last historical messages",
    "filing, at the end / empty",
    "filing, the week's messages (they alert)",
    "filing, whole run",
    "RSS filing: start / end / peak",
    "RssAnon / RssFile at the end of filing",
];

/// Imports the trust's directory and files its messages, putting the figures of both.
async fn build(store: &Store, t: &Trust, csv_dir: &Path, now: DateTime<Utc>, put: &mut impl FnMut(&str, String)) {
    let sealer = Sealer::from_key(&KEY);
    let (pupils, staff, contacts) = write_csvs(t, csv_dir);
    let started = Instant::now();
    let guard = ImportGuard { max_change: haven::config::parse_share("10%").expect("a share"), allow_mass_change: true };
    let files = ImportFiles { pupils: &pupils, staff: &staff, contacts: &contacts };
    haven::cli::directory::import(store, &sealer, &BlindIndex::from_storage_key(&KEY), files, guard, chrono_tz::Europe::London, now)
        .await
        .expect("import the trust's directory");
    put("directory import", format!("{:.1} s", started.elapsed().as_secs_f64()));

    // Filing: the first messages into an empty database, the bulk, then the last historical
    // ones (the same kind of message as the first, so the two rates compare the database's
    // size alone), then the past week's, which alert and open reminders.
    let filer = filer(store);
    let live_from = t.messages - t.messages / 100;
    let edge = (t.messages / 10).clamp(200, 2_000).min(live_from.saturating_sub(BATCH) / 3);
    reset_peak();
    let rss_start = rss("VmRSS:");
    let started = Instant::now();
    // The first batch opens the directory and builds its look-ups, once: not part of a rate.
    file_range(&filer, t, 0..BATCH, now, false).await;
    let empty_rate = file_range(&filer, t, BATCH..BATCH + edge, now, false).await;
    put("filing, empty database", format!("{empty_rate:.0} msg/s (the {edge} after the first {BATCH})"));
    file_range(&filer, t, BATCH + edge..live_from - edge, now, true).await;
    let end_rate = file_range(&filer, t, live_from - edge..live_from, now, false).await;
    put("filing, last historical messages", format!("{end_rate:.0} msg/s (the {edge} before message {live_from})"));
    put("filing, at the end / empty", format!("{:.0} %", end_rate * 100.0 / empty_rate));
    let live_rate = file_range(&filer, t, live_from..t.messages, now, false).await;
    put("filing, the week's messages (they alert)", format!("{live_rate:.0} msg/s (the last {})", t.messages - live_from));
    put("filing, whole run", format!("{:.0} s", started.elapsed().as_secs_f64()));
    put("RSS filing: start / end / peak", format!("{rss_start:.0} / {:.0} / {:.0} MiB", rss("VmRSS:"), rss("VmHWM:")));
    // Of that, what the process holds itself (heap), not mapped file pages (SQLite's mmap).
    put("RssAnon / RssFile at the end of filing", format!("{:.0} / {:.0} MiB", rss("RssAnon:"), rss("RssFile:")));
}

async fn run(url: &str, t: &Trust, csv_dir: &Path) -> Figures {
    let mut out: Figures = Vec::new();
    // Each figure is said as soon as it is measured, so a long run that stops keeps what it had.
    let mut put = |k: &str, v: String| {
        eprintln!("  {k}: {v}");
        out.push((k.to_string(), v));
    };
    let store = Store::open(url).await.expect("open the store");
    let now = Utc::now();
    if store.status(now).await.expect("status").incidents > 0 {
        // A trust kept by an earlier run (HAVEN_SCALE_KEEP): the same rows, nothing filed again.
        for k in KEPT_ROWS {
            put(k, "kept".into());
        }
    } else {
        build(&store, t, csv_dir, now, &mut put).await;
    }
    let sealer = Sealer::from_key(&KEY);
    let s = store.status(now).await.expect("status");
    put("incidents / outbox pending / open outcomes", format!("{} / {} / {}", s.incidents, s.outbox_pending, s.outcomes_open));

    // Reads, as the commands run them.
    let blind = BlindIndex::from_storage_key(&KEY);
    let (st, sealer, blind) = (&store, &sealer, &blind);
    let dir = store.load_directory(sealer).await.expect("directory");
    let pupil = |u: String| dir.pupils.iter().find(|p| p.upn == u).map(|p| p.id).expect("a pupil");
    let (busiest, five) = (pupil(upn(0)), pupil(upn(1)));
    for (label, id, u) in [("5", five, upn(1)), ("busiest", busiest, upn(0))] {
        let n = store.chronology(id).await.expect("chronology").len();
        let (med, p99) = timed(|| async move {
            st.chronology(id).await.expect("chronology");
        })
        .await;
        put(&format!("chronology query, {label} ({n} incidents)"), format!("{med:.1} / {p99:.1} ms"));
        let u = u.as_str();
        let (med, p99) = timed(|| async move {
            haven::cli::chronology::load_view(st, sealer, blind, u, "staff0@trust.example", "chronology_view", now)
                .await
                .expect("the chronology view");
        })
        .await;
        put(&format!("haven chronology, {label} ({n} incidents)"), format!("{med:.1} / {p99:.1} ms"));
    }
    // Finding a pupil by full name: the name index, then only the pupils it returns opened.
    let full_name = {
        let p = dir.pupils.iter().find(|p| p.id == five).expect("the pupil with five incidents");
        format!("{} {}", p.first_name, p.last_name)
    };
    let full_name = full_name.as_str();
    let (med, p99) = timed(|| async move {
        let ids = st.find_pupils(blind, full_name).await.expect("find by name");
        let found = st.load_directory_with_pupils(sealer, &ids).await.expect("open them");
        haven::cli::chronology::find_pupil(&found, full_name).expect("the pupil, by name");
    })
    .await;
    put("find a pupil by name", format!("{med:.1} / {p99:.1} ms"));
    let (med, p99) = timed(|| async move {
        haven::cli::outcomes::run(st, now, chrono_tz::Europe::London, true, false).await.expect("outcomes");
    })
    .await;
    put("haven outcomes --overdue", format!("{med:.1} / {p99:.1} ms"));
    let (med, p99) = timed(|| async move {
        haven::cli::status::run(st, "imap", chrono_tz::Europe::London, now, false).await.expect("status");
    })
    .await;
    put("haven status", format!("{med:.1} / {p99:.1} ms"));
    let dsl = &dir.staff.iter().find(|s| s.email() == "staff0@trust.example").expect("the DSL").clone();
    let dir = &dir;
    let (med, p99) = timed(|| async move {
        let since = now - Duration::days(1);
        let incidents = st.incidents_recorded_between(since, now).await.expect("incidents");
        let open = st.open_actions().await.expect("open actions");
        let counts = st.status(now).await.expect("counts");
        let head = st.audit_head().await.expect("audit head");
        let facts = DigestFacts {
            school_name: "Bench Trust",
            tz: chrono_tz::Europe::London,
            slot: now,
            since: Some(since),
            new_incidents: &incidents,
            open_actions: &open,
            awaiting_triage: counts.messages.get(&MessageState::AwaitingTriage).copied().unwrap_or(0),
            quarantined: counts.messages.get(&MessageState::Quarantined).copied().unwrap_or(0),
            dead_lettered: st.dead_lettered_between(since, now).await.expect("dead"),
            historical: st.historical_filed_between(since, now).await.expect("historical"),
            directory: dir,
            audit_head: head.as_ref().map(|(n, mac)| (*n, mac.as_str())),
            ai_suggestions: &std::collections::HashMap::new(),
        };
        let body = digest_for(dsl, &facts).body(&facts);
        assert!(!body.is_empty());
    })
    .await;
    put("digest build (DSL)", format!("{med:.1} / {p99:.1} ms"));

    reset_peak();
    let before = rss("VmRSS:");
    let started = Instant::now();
    let verdict = store.verify_audit().await.expect("audit verify");
    let (n, secs) = match verdict {
        haven::store::AuditVerdict::Intact { entries } => (entries, started.elapsed().as_secs_f64()),
        other => panic!("the audit log does not verify: {other:?}"),
    };
    put(
        &format!("audit verify ({n} entries)"),
        format!("{secs:.1} s, {:.1} s per million, +{:.0} MiB peak", secs * 1e6 / n.max(1) as f64, rss("VmHWM:") - before),
    );
    let size = match &store {
        Store::Sqlite(_) => {
            let path = url.trim_start_matches("sqlite://");
            ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok()).map(|m| m.len()).sum::<u64>()
        }
        Store::Postgres(p) => {
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())").fetch_one(p).await.map_or(0, |n| n as u64)
        }
    };
    put("database size", format!("{:.0} MiB", size as f64 / 1048576.0));
    put("RSS at the end", format!("{:.0} MiB", rss("VmRSS:")));
    store.close().await;
    out
}

fn main() {
    let (f, trust) = Trust::at_scale();
    println!(
        "scale {f}: {} pupils, {} staff, {} contacts, {} messages (busiest pupil {} incidents)",
        trust.pupils, trust.staff, trust.contacts, trust.messages, trust.busiest
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // HAVEN_BENCH_BACKEND=sqlite or postgres runs one engine only (a process of its own, so
    // its resident memory is not the other engine's leftovers).
    let which = std::env::var("HAVEN_BENCH_BACKEND").unwrap_or_default();
    let keep = std::env::var_os("HAVEN_SCALE_KEEP").map(PathBuf::from);
    // The kept trust is named by its scale, so another scale builds its own.
    let tag = format!("{f}").replace('.', "_");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_dir = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
        std::fs::create_dir_all(&db_dir).expect("HAVEN_SCALE_KEEP: a folder");
        let sqlite = if which.is_empty() || which == "sqlite" {
            run(&format!("sqlite://{}", db_dir.join(format!("scale-{tag}.db")).display()), &trust, dir.path()).await
        } else {
            Figures::new()
        };
        if which == "sqlite" {
            print_figures(&sqlite, &Figures::new());
            return;
        }

        let admin = std::env::var("HAVEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = if keep.is_some() { format!("haven_scale_keep_{tag}") } else { format!("haven_scale_{}", std::process::id()) };
        let pool =
            sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e} (start it, or set HAVEN_TEST_PG)"));
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .expect("pg_database");
        if !exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("CREATE DATABASE");
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let postgres = run(&format!("{base}/{name}"), &trust, dir.path()).await;
        if keep.is_none() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&pool).await.expect("DROP DATABASE");
        }

        print_figures(&sqlite, &postgres);
    });
}

/// Both engines' figures side by side (an engine not run shows blanks).
fn print_figures(sqlite: &Figures, postgres: &Figures) {
    println!("\n{:<44} {:>30} {:>30}", "(median / p99 for reads)", "sqlite", "postgres");
    let rows = if sqlite.is_empty() { postgres } else { sqlite };
    for (i, (k, _)) in rows.iter().enumerate() {
        let at = |f: &Figures| f.get(i).map_or(String::new(), |(_, v)| v.clone());
        println!("{k:<44} {:>30} {:>30}", at(sqlite), at(postgres));
    }
}
