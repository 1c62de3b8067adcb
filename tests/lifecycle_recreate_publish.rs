//! `kubepki recreate` publishes through git: the commit holds exactly what changed, an unchanged
//! inventory makes no commit, unrelated staged work stops the run before it writes, --no-commit
//! and --push; and on a 1000-node inventory adding a worker touches only that worker's files.

mod lifecycle_support;

use std::fs;

use lifecycle_support::{Workspace, git, synthetic_inventory, synthetic_worker};

#[test]
fn the_first_run_commits_the_bundle_and_the_pins_then_an_unchanged_run_commits_nothing() {
    let ws = Workspace::new();
    let out = ws.ok(&["recreate"]);
    assert!(out.contains("git: committed"), "{out}");
    let subject = git(ws.root(), &["log", "-1", "--format=%s"]);
    assert_eq!(
        subject.trim(),
        "kubepki: create the ducksnest PKI (27 certs)"
    );
    let names = git(ws.root(), &["show", "--name-status", "--format=", "HEAD"]);
    assert!(
        names.contains("M\thosts/cluster.toml\n"),
        "pins are committed: {names}"
    );
    assert!(names.contains("A\thosts/pki/manifest.json\n"));
    assert_eq!(
        names.lines().count(),
        1 + 1 + 6 + 27 * 2 + 3,
        "inventory, manifest, 3 CAs (cert+key), 27 leaves (cert+key), 3 secret files: {names}"
    );
    assert_eq!(
        git(ws.root(), &["status", "--porcelain"]),
        "",
        "nothing left behind"
    );

    let head = ws.head();
    let out = ws.ok(&["recreate"]);
    assert!(
        out.contains("nothing to do") && out.contains("git: nothing to commit"),
        "{out}"
    );
    assert_eq!(ws.head(), head);
}

#[test]
fn adding_a_node_commits_only_its_files_with_what_and_why() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    ws.edit_inventory(|t| format!("{t}\n{}", synthetic_worker(7)));
    let plan = ws.ok(&["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["diff"]["summary"]["add"], 4);
    assert_eq!(plan["diff"]["summary"]["reissue"], 0);

    ws.ok(&["recreate"]);
    let shown = git(
        ws.root(),
        &["show", "--name-status", "--format=%s%n%n%b", "HEAD"],
    );
    assert!(
        shown.starts_with("kubepki: add node worker-0007 (4 certs)\n"),
        "{shown}"
    );
    assert!(
        shown.contains("A hosts/pki/nodes/worker-0007/kubelet-client.crt: new node worker-0007\n")
    );
    let names: Vec<&str> = shown.lines().filter(|l| l.contains('\t')).collect();
    let mut expected = vec!["M\thosts/pki/manifest.json".to_string()];
    for material in [
        "calico-cni",
        "kube-proxy",
        "kubelet-client",
        "kubelet-serving",
    ] {
        expected.push(format!("A\thosts/pki/nodes/worker-0007/{material}.crt"));
        expected.push(format!("A\thosts/pki/nodes/worker-0007/{material}.key.age"));
    }
    assert_eq!(names, expected);
    // The inventory edit is the operator's to commit; kubepki did not stage it.
    assert_eq!(
        git(ws.root(), &["status", "--porcelain"]),
        " M hosts/cluster.toml\n"
    );
}

#[test]
fn unrelated_staged_work_stops_the_run_before_it_writes() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    fs::write(ws.root().join("README.md"), "staged\n").unwrap();
    git(ws.root(), &["add", "README.md"]);
    ws.edit_inventory(|t| format!("{t}\n{}", synthetic_worker(7)));
    let head = ws.head();
    let out = ws.kubepki(&["recreate"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("README.md") && error.contains("--no-commit"),
        "{error}"
    );
    assert!(
        !ws.bundle().join("nodes/worker-0007").exists(),
        "nothing written"
    );
    assert_eq!(ws.head(), head);

    // --no-commit writes and leaves git alone.
    let out = ws.ok(&["recreate", "--no-commit"]);
    assert!(out.contains("--no-commit"), "{out}");
    assert!(
        ws.bundle()
            .join("nodes/worker-0007/kubelet-client.crt")
            .exists()
    );
    assert_eq!(ws.head(), head);
    assert_eq!(
        git(ws.root(), &["diff", "--cached", "--name-only"]),
        "README.md\n"
    );
}

#[test]
fn push_sends_the_run_to_the_upstream() {
    let ws = Workspace::new();
    let remote = ws.root().join("../remote.git");
    let remote = remote.to_str().unwrap().to_string();
    git(ws.root(), &["init", "-q", "--bare", &remote]);
    git(ws.root(), &["remote", "add", "origin", &remote]);
    git(ws.root(), &["push", "-q", "-u", "origin", "main"]);
    let out = ws.ok(&["recreate", "--push"]);
    assert!(out.contains("git: pushed to origin"), "{out}");
    let remote_head = git(ws.root(), &["--git-dir", &remote, "rev-parse", "main"]);
    assert_eq!(remote_head.trim(), ws.head());
    let _ = fs::remove_dir_all(&remote);
}

#[test]
fn on_a_thousand_nodes_adding_a_worker_changes_only_that_workers_files() {
    let ws = Workspace::new();
    let example = fs::read_to_string(ws.inventory()).unwrap();
    fs::write(ws.inventory(), synthetic_inventory(&example, 1000)).unwrap();
    git(ws.root(), &["commit", "-q", "-am", "1000 workers"]);
    ws.ok(&["recreate"]);
    let apiserver = fs::read(ws.bundle().join("nodes/ec2-controlplane/apiserver.crt")).unwrap();

    ws.edit_inventory(|t| format!("{t}{}", synthetic_worker(1001)));
    git(ws.root(), &["commit", "-q", "-am", "add worker-1001"]);
    ws.ok(&["recreate"]);
    let names = git(ws.root(), &["show", "--name-only", "--format=%s", "HEAD"]);
    let mut lines = names.lines().filter(|l| !l.is_empty());
    assert_eq!(
        lines.next(),
        Some("kubepki: add node worker-1001 (4 certs)")
    );
    let files: Vec<&str> = lines.collect();
    assert_eq!(files.len(), 9, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("hosts/pki/nodes/worker-1001/")
                || *f == "hosts/pki/manifest.json"),
        "{files:?}"
    );
    assert_eq!(
        fs::read(ws.bundle().join("nodes/ec2-controlplane/apiserver.crt")).unwrap(),
        apiserver,
        "a worker adds no API server SAN"
    );
}
