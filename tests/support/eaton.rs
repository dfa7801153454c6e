//! The example school (examples/eaton) as a test installation: its folder, its intake messages
//! in their numbered order, and a Haven installation with its intake address and directory.

use super::haven::HavenEnv;
use std::path::{Path, PathBuf};

/// The example school's intake address.
pub const INTAKE: &str = "safeguarding@eaton.sch.example";
/// The example school's DSL.
pub const DSL: &str = "dsl@eaton.sch.example";

/// examples/eaton.
pub fn eaton() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton")
}

/// Every `.eml` in `dir`, sorted by name.
pub fn emails_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

/// The example intake's eighteen messages, in their numbered order.
pub fn example_messages() -> Vec<PathBuf> {
    let files = emails_in(&eaton().join("mail/intake/new"));
    assert_eq!(files.len(), 18, "the example intake changed");
    files
}

/// A Haven installation for the example school on `db_url`: its intake address, its directory
/// imported.
pub fn eaton_env(db_url: &str) -> HavenEnv {
    let env = HavenEnv::new(db_url, "");
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace("safeguarding@school.example", INTAKE)).unwrap();
    let d = eaton().join("directory");
    let file = |name: &str| d.join(name).display().to_string();
    let (pupils, staff, contacts) = (file("pupils.csv"), file("staff.csv"), file("contacts.csv"));
    let r = env.haven(&["directory", "import", "--pupils", &pupils, "--staff", &staff, "--contacts", &contacts]);
    assert_eq!(r.code, 0, "directory import: {}{}", r.stdout, r.stderr);
    env
}

/// [`eaton_env`] with the example intake's messages filed (`haven ingest`).
pub fn eaton_school(db_url: &str) -> HavenEnv {
    let env = eaton_env(db_url);
    let mut args = vec!["ingest".to_string()];
    args.extend(example_messages().iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = env.haven(&args);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    env
}

/// The alert the daemon wrote for `incident` to the DSL: (Reply-To address, Message-ID, subject, body).
pub fn alert_to_dsl(env: &HavenEnv, incident: i64) -> (String, String, String, String) {
    let dir = env.path("var/outbox/new");
    let found = std::fs::read_dir(&dir).into_iter().flatten().filter_map(|e| e.ok()).find_map(|e| {
        let raw = std::fs::read(e.path()).ok()?;
        let m = mail_parser::MessageParser::default().parse(&raw)?;
        let to = m.to()?.first()?.address()?.to_string();
        let subject = m.subject()?.to_string();
        (to == DSL && subject.contains(&format!("incident #{incident}")))
            .then(|| {
                let reply_to = m.reply_to()?.first()?.address()?.to_string();
                let body = m.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
                Some((reply_to, m.message_id()?.to_string(), subject, body))
            })
            .flatten()
    });
    found.unwrap_or_else(|| panic!("no alert to {DSL} about incident #{incident} in {}", dir.display()))
}
