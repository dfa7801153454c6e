//! The example school (examples/eaton) as a test installation: its folder, its intake messages
//! in their numbered order, and a Haven installation with its intake address and directory.

use super::haven::HavenEnv;
use std::path::{Path, PathBuf};

/// The example school's intake address.
pub const INTAKE: &str = "safeguarding@eaton.sch.example";

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
