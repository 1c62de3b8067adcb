//! The `kubepki activate` command line: flags, output, exit codes, systemd mode.

mod activate_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use activate_support::{Fixture, host_key};

fn kubepki(fixture: &Fixture, node: &str, identity: &Path, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubepki"));
    command
        .arg("activate")
        .arg("--bundle")
        .arg(&fixture.bundle)
        .args(["--node", node])
        .arg("--identity")
        .arg(identity)
        .arg("--target")
        .arg(&fixture.target);
    for (authority, fingerprints) in &fixture.pins {
        for fp in fingerprints {
            command.arg("--pin").arg(format!("{authority}=sha256:{fp}"));
        }
    }
    command.args(extra).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn installs_then_reports_unchanged_and_lists_restarts_once() {
    let fixture = Fixture::new();
    let list = fixture.root.path().join("activation-restart-list");
    let list_arg = list.to_str().unwrap();
    let key = host_key("laptop-firebat");

    let first = kubepki(
        &fixture,
        "laptop-firebat",
        &key,
        &["--restart-list", list_arg],
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(
        out.contains("node laptop-firebat: installed generation 1"),
        "{out}"
    );
    assert!(
        out.contains("kubelet-client.key (added) -> kubelet.service"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(&list).unwrap(),
        "kube-proxy.service\nkubelet.service\n"
    );

    let second = kubepki(
        &fixture,
        "laptop-firebat",
        &key,
        &["--restart-list", list_arg],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("node laptop-firebat: unchanged (generation 1 is current)"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(
        fs::read_to_string(&list).unwrap(),
        "kube-proxy.service\nkubelet.service\n"
    );
}

#[test]
fn dry_run_prints_what_would_change() {
    let fixture = Fixture::new();
    let out = kubepki(
        &fixture,
        "laptop-ultra",
        &host_key("laptop-ultra"),
        &["--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("dry run"), "{stdout}");
    assert!(stdout.contains("would restart"), "{stdout}");
    assert!(!fixture.target.exists(), "a dry run creates nothing");
}

#[test]
fn a_refusal_exits_non_zero_and_names_the_file() {
    let fixture = Fixture::new();
    let out = kubepki(&fixture, "laptop-firebat", &host_key("laptop-ultra"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("kubepki: no identity can decrypt nodes/laptop-firebat/"),
        "{stderr}"
    );
    assert!(stderr.contains("sealed to another node?"), "{stderr}");
    assert!(!fixture.target.join("current").exists());
}

#[test]
fn systemd_mode_marks_errors_and_warnings_for_the_journal() {
    let fixture = Fixture::new();
    let refused = kubepki(
        &fixture,
        "laptop-firebat",
        &host_key("laptop-ultra"),
        &["--systemd"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).starts_with("<3>kubepki: "),
        "{}",
        text(&refused.stderr)
    );

    // A dry run needs no systemctl; output lines carry the info priority.
    let ok = kubepki(
        &fixture,
        "laptop-firebat",
        &host_key("laptop-firebat"),
        &["--systemd", "--dry-run", "--renew-before-days", "400"],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).lines().all(|l| l.starts_with("<6>")),
        "{}",
        text(&ok.stdout)
    );
    let stderr = text(&ok.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("<4>kubepki: warning:") && l.contains("renewal window")),
        "{stderr}"
    );
}

#[test]
fn a_malformed_pin_is_a_usage_error() {
    let fixture = Fixture::new();
    let out = kubepki(
        &fixture,
        "laptop-firebat",
        &host_key("laptop-firebat"),
        &["--pin", "kubernetes=md5:abcd"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("must start with `sha256:`"),
        "{}",
        text(&out.stderr)
    );
}
