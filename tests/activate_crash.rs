//! A process killed in the middle of writing a generation leaves the old one serving,
//! and the next activation completes.

mod activate_support;

use std::fs;
use std::process::Command;

use activate_support::{Fixture, accounts, host_key, snapshot};
use kubepki::activate::{self, CrashAfter, Outcome, Pins, Request};

const CHILD: &str = "KUBEPKI_TEST_CRASH_CHILD";

/// In the child process: activate with the crash hook; it aborts after three files.
fn crash_child(spec: &str) -> ! {
    let args: serde_json::Value = serde_json::from_str(spec).unwrap();
    let pins: Pins = serde_json::from_value(args["pins"].clone()).unwrap();
    let node = args["node"].as_str().unwrap();
    let mut request = Request::new(args["bundle"].as_str().unwrap().as_ref(), node, pins);
    request.identities = vec![host_key(node)];
    request.target = args["target"].as_str().unwrap().into();
    request.accounts = accounts();
    request.crash_after = Some(CrashAfter(3));
    let outcome = activate::activate(&request);
    panic!("the crash hook did not fire: {outcome:?}");
}

#[test]
fn a_process_killed_mid_install_leaves_the_old_generation_serving() {
    if let Ok(spec) = std::env::var(CHILD) {
        crash_child(&spec);
    }
    let mut fixture = Fixture::new();
    let request = fixture.request("ec2-controlplane");
    activate::activate(&request).unwrap();
    fixture.issue("nodes/ec2-controlplane/apiserver", |_| {});
    fixture.save();
    let before = snapshot(&fixture.live().join("."));

    let spec = serde_json::json!({
        "bundle": fixture.bundle,
        "target": fixture.target,
        "node": "ec2-controlplane",
        "pins": fixture.pins,
    });
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_process_killed_mid_install_leaves_the_old_generation_serving",
            "--test-threads=1",
        ])
        .env(CHILD, spec.to_string())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die mid-install");

    // Generation 1 still serves, byte for byte; the half-written one is not live.
    assert_eq!(
        fs::read_link(fixture.live()).unwrap(),
        std::path::Path::new("generations/1")
    );
    assert_eq!(snapshot(&fixture.live().join(".")), before);
    let leftovers: Vec<String> = fs::read_dir(fixture.target.join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.iter().any(|n| n.starts_with(".partial-")),
        "{leftovers:?}"
    );

    // The next run cleans up and installs.
    let report = activate::activate(&request).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Installed {
            generation: 2,
            previous: Some(1)
        }
    );
    assert_eq!(report.units, ["kube-apiserver.service"]);
    let mut names: Vec<String> = fs::read_dir(fixture.target.join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["1", "2"]);
}
