//! Pupils' own keys at start-up (issue 25): a keyring with HAVEN_KEYS_N pupils' key files
//! (default 50,000, a trust's roll), made the way a directory import makes them
//! (`Sealer::with_pupil_key`), then how long each command's `Sealer::load` takes, how long
//! opening one pupil's key takes the first time, and `haven key retire`'s check of every key.
//!
//!     cargo bench --bench pupil_keys
//!     HAVEN_KEYS_KEEP=/var/tmp/keys cargo bench --bench pupil_keys   # make the keys once, reuse them
//!
//! The first 1,000 keys are written as an import writes them (each file synced with its folder,
//! milliseconds each); the other pupils' files are copies of those.

use haven::seal::{KeyFiles, Sealer};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How many times each step is timed.
const RUNS: usize = 7;
/// Keys made through `with_pupil_key`; the rest of the roll gets copies of their files (the
/// same bytes, as many files to open and decrypt).
const MADE: i64 = 1_000;
/// A plain value sealed for one pupil, to time opening their key.
const FIELD: &str = "incidents.body_text";

fn write_ring_key(path: &Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("secrets folder");
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("the ring's key file");
    writeln!(f, "{}", Sealer::generate_key_hex().as_str()).expect("write the key");
}

/// Median milliseconds of [`RUNS`] runs of `f`.
fn timed(mut f: impl FnMut()) -> f64 {
    let mut ms: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() {
    let n: i64 = std::env::var("HAVEN_KEYS_N").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(50_000);
    let temp = tempfile::tempdir().expect("temp dir");
    let root = std::env::var_os("HAVEN_KEYS_KEEP").map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let files = KeyFiles::new(&root.join("secrets/haven.key"));
    if !files.key_file.exists() {
        write_ring_key(&files.key_file);
    }
    let mut ring = Sealer::load(&files, None, &[]).expect("the ring");
    let have = std::fs::read_dir(files.pupil_dir()).map_or(0, |d| d.count()) as i64;
    if have < n {
        let started = Instant::now();
        for pupil in 1..=n.min(MADE) {
            ring = ring.with_pupil_key(pupil).expect("a pupil's key");
        }
        // The rest are copies of those files (each synced write costs milliseconds here).
        for pupil in MADE + 1..=n {
            let (from, to) =
                (files.pupil_dir().join(format!("{}.key", (pupil - 1) % MADE + 1)), files.pupil_dir().join(format!("{pupil}.key")));
            if !to.exists() {
                std::fs::copy(&from, &to).expect("copy a pupil's key file");
            }
        }
        println!("made {} pupils' keys in {:.1} s", n - have, started.elapsed().as_secs_f64());
    }
    let ring = ring.with_pupil_key(n / 2).expect("a pupil's key");
    let sealed = ring.seal_text_for(n / 2, FIELD, "a note about one pupil").expect("sealed for one pupil");
    drop(ring);

    println!("{n} pupils' key files in {}", files.pupil_dir().display());
    let load = timed(|| drop(Sealer::load(&files, None, &[]).expect("load")));
    println!("Sealer::load (every command, the daemon)           {load:>9.1} ms");
    let one = timed(|| drop(Sealer::from_key_file(&files.key_file).expect("load")));
    println!("Sealer::from_key_file                              {one:>9.1} ms");
    let open = timed(|| {
        let ring = Sealer::load(&files, None, &[]).expect("load");
        assert_eq!(ring.open_text(FIELD, &sealed).expect("open"), "a note about one pupil");
    });
    println!("Sealer::load, then one pupil's value opened         {open:>9.1} ms");
    let ring = Sealer::load(&files, None, &[]).expect("load");
    let check = timed(|| assert_eq!(files.check_pupil_keys(&ring).expect("every key opens"), n as usize));
    println!("check_pupil_keys (haven key retire: every key)     {check:>9.1} ms");
}
