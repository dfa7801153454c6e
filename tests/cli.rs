//! The command line as a technician meets it: `--help` that describes every argument, gives an
//! example and the exit codes; listed choices; completions and a manual page; every config
//! error at once, with line and column for TOML syntax and "did you mean" for slips; and
//! `haven init` (a folder to try Haven, or the system layout the packaged unit expects).

mod support;

use std::path::Path;
use support::haven::{HavenEnv, Run};

fn haven(args: &[&str]) -> Run {
    std::process::Command::new(env!("CARGO_BIN_EXE_haven")).args(args).output().expect("run haven").into()
}

/// The subcommands `haven [SUB…] --help` lists under "Commands:" (without `help`).
fn subcommands(path: &[&str]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help");
    let r = haven(&args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every line under "Arguments:" and "Options:" of short help (`-h`) that names an argument
/// but says nothing about it.
fn undescribed(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_list = false;
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if *line == "Arguments:" || *line == "Options:" {
            in_list = true;
            continue;
        }
        if !line.starts_with("  ") {
            in_list = false;
            continue;
        }
        let item = line.trim_start();
        let indent = line.len() - item.len();
        if in_list && (item.starts_with('-') || item.starts_with('<') || item.starts_with('[')) {
            // The name column ends at the first run of two spaces; the description follows it,
            // or (when the names are long) sits on the next line, indented further.
            let beside = item.split_once("  ").is_some_and(|(_, rest)| !rest.trim().is_empty());
            let below = lines.get(i + 1).is_some_and(|next| {
                let text = next.trim_start();
                !text.is_empty() && next.len() - text.len() > indent && !text.starts_with('-')
            });
            if !beside && !below {
                out.push(line.to_string());
            }
        }
    }
    out
}

#[test]
fn every_command_describes_every_argument_and_shows_an_example_and_its_exit_codes() {
    let mut commands: Vec<Vec<String>> = Vec::new();
    for top in subcommands(&[]) {
        let nested = subcommands(&[&top]);
        commands.push(vec![top.clone()]);
        for sub in nested {
            commands.push(vec![top.clone(), sub]);
        }
    }
    assert!(commands.len() > 25, "too few commands found: {commands:?}");
    let mut problems = Vec::new();
    for path in &commands {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        let r = haven(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        for line in undescribed(&r.stdout) {
            problems.push(format!("haven {}: {line}", path.join(" ")));
        }
        if !r.stdout.contains("Example") {
            problems.push(format!("haven {}: no example", path.join(" ")));
        }
        if !r.stdout.contains("Exit codes: 0") {
            problems.push(format!("haven {}: no exit codes", path.join(" ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn choices_are_listed_and_a_wrong_one_is_refused_with_them() {
    let r = haven(&["messages", "--help"]);
    assert!(r.stdout.contains("awaiting_triage") && r.stdout.contains("quarantined"), "{}", r.stdout);
    let r = haven(&["messages", "--state", "quarantine", "--config", "/nonexistent/haven.toml"]);
    assert_eq!(r.code, 2, "a usage error: {}", r.stderr);
    assert!(r.stderr.contains("invalid value 'quarantine' for '--state <STATE>'"), "{}", r.stderr);
    assert!(r.stderr.contains("quarantined"), "the nearest choice is offered: {}", r.stderr);
    let r = haven(&["export", "E1", "--as", "a@b", "--format", "docx"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("[possible values: html, json, pdf]"), "{}", r.stderr);
}

#[test]
fn completions_and_the_manual_page_are_generated() {
    let r = haven(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for word in ["_haven", "ingest", "chronology", "--state", "awaiting_triage"] {
        assert!(r.stdout.contains(word), "bash completion lacks {word}");
    }
    let r = haven(&["completions", "zsh"]);
    assert!(r.code == 0 && r.stdout.starts_with("#compdef haven"), "{}", r.stderr);
    let r = haven(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "an unknown shell is a usage error");
    let r = haven(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(".ie"), "roff: {}", &r.stdout[..80.min(r.stdout.len())]);
    assert!(r.stdout.contains(".TH haven 1"), "haven(1)");
    assert!(r.stdout.contains("Exit codes: 0 done"), "the exit codes are in the manual");
}

/// A configured installation whose config has `from` replaced by `to`.
fn with_config(from: &str, to: &str) -> HavenEnv {
    let env = HavenEnv::new("sqlite://var/haven.db", "");
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(config.contains(from), "the test config changed shape: no {from:?}");
    std::fs::write(&env.config, config.replacen(from, to, 1)).unwrap();
    env
}

/// `haven status` with the config broken: exit 78, and the error lines without the file name.
fn config_errors(env: &HavenEnv) -> Vec<String> {
    let r = env.haven(&["status"]);
    assert_eq!(r.code, 78, "a config error exits 78: {}{}", r.stdout, r.stderr);
    let prefix = format!("haven: {}: ", env.config.display());
    r.stderr
        .lines()
        .map(|l| l.strip_prefix(&prefix).or_else(|| l.strip_prefix(&format!("{}: ", env.config.display()))).unwrap_or(l).to_string())
        .collect()
}

#[test]
fn an_unknown_key_does_not_hide_the_other_errors_of_its_section() {
    let env = with_config("[smtp]\n", "[smtp]\nhots = \"smtp.school.example\"\nport = \"twenty-five\"\nsecurity = \"startls\"\n");
    let errors = config_errors(&env);
    assert!(errors.contains(&"smtp.hots: unknown key (did you mean \"host\"?)".to_string()), "{errors:#?}");
    assert!(errors.iter().any(|e| e.starts_with("smtp.port: invalid type: string \"twenty-five\"")), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with("smtp.security: unknown variant `startls`") && e.ends_with("(did you mean `starttls`?)")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn errors_in_several_sections_and_subsections_come_together() {
    let env = with_config("[school]\n", "[school]\ncolour = \"blue\"\n");
    let config = std::fs::read_to_string(&env.config).unwrap()
        + "\n[console]\nlisten = \"127.0.0.1:8080\"\nlink_lifetime = \"10 minutes\"\n[scool]\nname = \"x\"\n";
    let config = config
        .replace("path = \"mail/intake\"", "path = \"mail/intake\"\nmaildir_path = \"x\"")
        .replace("max_message_size = \"10MB\"", "max_message_size = \"10M\"");
    std::fs::write(&env.config, config).unwrap();
    let errors = config_errors(&env);
    let expect = [
        "[scool]: unknown section (did you mean [school]?)",
        "school.colour: unknown key; this section knows name, timezone, intake_address, terms_file",
        "intake.maildir.maildir_path: unknown key; this section knows path",
        "intake.max_message_size: expected a size such as \"50MB\" (50,000,000 bytes) or \"50MiB\" (50 × 1,048,576 bytes), found \"10M\"",
        "console.link_lifetime: expected a duration, a whole number and s, m, h, d or w, like \"90s\", \"15m\", \"4h\" or \"2d\"; found \"10 minutes\"",
    ];
    for e in expect {
        assert!(errors.contains(&e.to_string()), "missing {e:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
}

#[test]
fn a_toml_syntax_error_names_its_line_and_column() {
    let env = with_config("name = \"Test School\"", "name = \"Test School");
    let errors = config_errors(&env);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("line 2, column ") && errors[0].contains(": not valid TOML: "), "{errors:#?}");
}

#[test]
fn a_secret_written_inline_is_refused_with_the_way_to_give_it() {
    let env = with_config("[smtp]\n", "[smtp]\npassword = \"hunter2\"\n");
    let r = env.haven(&["status"]);
    assert_eq!(r.code, 78);
    assert!(
        r.stderr.contains("smtp.password: unknown key: secrets are never written in haven.toml; name a file with password_file"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "the secret is not repeated");
}

#[test]
fn durations_are_one_grammar_in_either_case_and_sizes_say_their_unit() {
    let env = with_config("max_message_size = \"10MB\"", "max_message_size = \"10MiB\"");
    let config = std::fs::read_to_string(&env.config).unwrap() + "\n[console]\nlisten = \"127.0.0.1:8080\"\nlink_lifetime = \"15M\"\n";
    std::fs::write(&env.config, config).unwrap();
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 0, "10MiB and 15M are read: {}", r.stderr);
}

#[test]
fn a_misspelt_role_or_category_in_the_rules_is_named_with_the_nearest() {
    let env = with_config("[smtp]\n", "[smtp]\n");
    let routing = env.path("rules/20-routing.toml");
    let text = std::fs::read_to_string(&routing).unwrap();
    let (role, category) = ("alert = [\"dsl\", \"ddsl\"]", "when.category = [\"E-safety\"]");
    assert!(text.contains(role) && text.contains(category), "the shipped routing rules changed shape");
    std::fs::write(&routing, text.replacen(role, "alert = [\"dls\", \"ddsl\"]", 1).replacen(category, "when.category = [\"E-saftey\"]", 1))
        .unwrap();
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("did you mean \"dsl\"?"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean \"E-safety\"?"), "{}", r.stderr);
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn init_system_lays_out_etc_and_var_lib_as_the_unit_expects() {
    let root = tempfile::tempdir().unwrap();
    let r = haven(&["init", "--system", "--root", root.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let at = |p: &str| root.path().join(p);
    for file in ["etc/haven/haven.toml", "etc/haven/rules/README.md", "etc/haven/rules/20-routing.toml"] {
        assert!(at(file).is_file(), "{file} missing:\n{}", r.stdout);
    }
    for key in ["haven.key", "reply.key", "audit.key"] {
        assert_eq!(mode(&at(&format!("var/lib/haven/secrets/{key}"))), 0o600, "{key}");
    }
    assert_eq!(mode(&at("var/lib/haven/secrets")), 0o700);
    assert_eq!(mode(&at("var/lib/haven")), 0o700);
    assert_eq!(mode(&at("etc/haven/haven.toml")), 0o640);
    assert!(r.stdout.contains("systemctl enable --now haven"), "{}", r.stdout);

    // The unit runs `haven run --config /etc/haven/haven.toml` in /var/lib/haven with the
    // passwords as credentials: the config names exactly those paths.
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd/haven.service")).unwrap();
    assert!(unit.contains("--config /etc/haven/haven.toml") && unit.contains("ReadWritePaths=/var/lib/haven"));
    let config = std::fs::read_to_string(at("etc/haven/haven.toml")).unwrap();
    for cred in ["imap-password", "smtp-password"] {
        assert!(unit.contains(&format!("LoadCredential={cred}:")), "the unit loads {cred}");
        assert!(config.contains(&format!("/run/credentials/haven.service/{cred}")), "the config reads {cred}");
    }

    // Moved under the temp root, the config loads and the rules it names are valid.
    let creds = root.path().join("run/credentials/haven.service");
    std::fs::create_dir_all(&creds).unwrap();
    for cred in ["imap-password", "smtp-password"] {
        std::fs::write(creds.join(cred), "secret\n").unwrap();
    }
    let moved = config
        .replace("/var/lib/haven", at("var/lib/haven").to_str().unwrap())
        .replace("/run/credentials", root.path().join("run/credentials").to_str().unwrap());
    std::fs::write(at("etc/haven/haven.toml"), moved).unwrap();
    let r = haven(&["rules", "check", "--config", at("etc/haven/haven.toml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = haven(&["status", "--config", at("etc/haven/haven.toml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "the database opens in /var/lib/haven: {}", r.stderr);
    assert!(at("var/lib/haven/haven.db").is_file());

    let r = haven(&["init", "--system", "--root", root.path().to_str().unwrap()]);
    assert_eq!(r.code, 2, "a second init changes nothing");
    assert!(r.stderr.contains("haven.toml already exists; nothing was changed"), "{}", r.stderr);
}

#[test]
fn init_in_a_folder_writes_a_config_that_loads_without_storage_dir() {
    let dir = tempfile::tempdir().unwrap();
    let r = haven(&["init", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let config = std::fs::read_to_string(dir.path().join("haven.toml")).unwrap();
    assert!(!config.contains("dir = \"data\""), "storage.dir is no longer written");
    assert!(dir.path().join("rules/README.md").is_file());
    let r = haven(&["status", "--config", dir.path().join("haven.toml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = haven(&["init"]);
    assert_eq!(r.code, 2, "DIR or --system is required");
    let r = haven(&["init", "x", "--system"]);
    assert_eq!(r.code, 2, "not both");
}
