//! School B of the transfer tests: "Brook Academy", with its own intake domain (brook.example),
//! the test school's pupils on roll (Oliver Brown, who has SEN, among them) and a SENCO on the
//! staff. Its own database at `db_url`; no terms file (each test gives the terms it needs).

use super::haven::{HavenEnv, school_fixtures};
use chrono::{Duration, NaiveDate};

pub fn brook_academy(db_url: &str) -> HavenEnv {
    let env = HavenEnv::new(db_url, "");
    let config =
        std::fs::read_to_string(&env.config).unwrap().replace("Test School", "Brook Academy").replace("school.example", "brook.example");
    std::fs::write(&env.config, config).unwrap();
    let f = school_fixtures();
    let staff = std::fs::read_to_string(f.join("staff.csv")).unwrap().replace("school.example", "brook.example")
        + "senco@brook.example,Sena,Co,senco,,\n";
    std::fs::write(env.path("staff.csv"), staff).unwrap();
    let (pupils, contacts, staff) = (f.join("pupils.csv"), f.join("contacts.csv"), env.path("staff.csv"));
    let import = [
        "directory",
        "import",
        "--pupils",
        pupils.to_str().unwrap(),
        "--staff",
        staff.to_str().unwrap(),
        "--contacts",
        contacts.to_str().unwrap(),
    ];
    let r = env.haven(&import);
    assert_eq!(r.code, 0, "directory import at Brook Academy: {}{}", r.stdout, r.stderr);
    env
}

/// Terms around `today`, whenever the test runs: this term and the next (for tests whose
/// daemons run on the real clock).
pub fn terms_around(today: NaiveDate) -> String {
    format!(
        "[[term]]\nname = \"This\"\nstarts = {}\nends = {}\n\n[[term]]\nname = \"Next\"\nstarts = {}\nends = {}\n",
        today - Duration::days(60),
        today + Duration::days(60),
        today + Duration::days(70),
        today + Duration::days(200)
    )
}
