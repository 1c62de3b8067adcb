//! Activation installs a node's material as a generation, and re-runs change only what changed.

mod activate_support;

use std::fs;
use std::os::unix::fs::MetadataExt;

use activate_support::{Fixture, UID_ETCD, UID_KUBERNETES, root, snapshot};
use kubepki::activate::{self, Difference, Outcome, Restart};

#[test]
fn first_install_writes_every_file_with_its_mode_and_owner_and_flips_current() {
    let fixture = Fixture::new();
    let report = activate::activate(&fixture.request("ec2-controlplane")).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Installed {
            generation: 1,
            previous: None
        }
    );
    assert_eq!(
        fs::read_link(fixture.live()).unwrap(),
        std::path::Path::new("generations/1")
    );
    let node = fixture.plan.node("ec2-controlplane").unwrap();
    for file in &node.files {
        let installed = fixture.live().join(&file.install);
        let meta = fs::metadata(&installed).unwrap();
        assert_eq!(meta.mode() & 0o7777, file.mode, "{}", file.install);
        if root() {
            let uid = match file.owner.as_str() {
                "kubernetes" => UID_KUBERNETES,
                "etcd" => UID_ETCD,
                _ => 0,
            };
            assert_eq!(meta.uid(), uid, "{}", file.install);
            assert_eq!(meta.gid(), uid, "{}", file.install);
        }
    }
    // A private key is installed decrypted, and is the PEM that the certificate belongs to.
    let key = fs::read_to_string(fixture.live().join("apiserver.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert_eq!(
        fs::read(fixture.live().join("apiserver.crt")).unwrap(),
        fs::read(fixture.bundle.join("nodes/ec2-controlplane/apiserver.crt")).unwrap()
    );
    // Every unit that reads something is scheduled on a first install.
    assert!(report.units.contains(&"kube-apiserver.service".to_string()));
    assert!(report.units.contains(&"etcd.service".to_string()));
}

#[test]
fn kubeconfigs_point_at_the_live_installed_files_and_kubectl_reads_them() {
    let fixture = Fixture::new();
    activate::activate(&fixture.request("laptop-firebat")).unwrap();
    let path = fixture.live().join("kubelet.kubeconfig");
    let text = fs::read_to_string(&path).unwrap();
    for file in ["ca.crt", "kubelet-client.crt", "kubelet-client.key"] {
        let installed = fixture.live().join(file);
        assert!(text.contains(&installed.display().to_string()), "{text}");
        assert!(installed.exists());
    }
    assert!(text.contains("system:node:laptop-firebat"), "{text}");
    // The real consumer: kubectl resolves the paths and the identity.
    let out = std::process::Command::new("kubectl")
        .args(["config", "view", "--raw", "--kubeconfig"])
        .arg(&path)
        .args(["-o", "jsonpath={.users[0].user.client-key}"])
        .output()
        .expect("install kubectl (see .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        fixture
            .live()
            .join("kubelet-client.key")
            .display()
            .to_string()
    );
}

#[test]
fn the_same_bundle_again_writes_nothing_and_restarts_nothing() {
    let fixture = Fixture::new();
    let list = fixture.root.path().join("activation-restart-list");
    let mut request = fixture.request("ec2-controlplane");
    request.restart = Restart::List(list.clone());
    activate::activate(&request).unwrap();
    fs::remove_file(&list).unwrap();
    let before = snapshot(&fixture.target);

    let report = activate::activate(&request).unwrap();

    assert_eq!(report.outcome, Outcome::Unchanged { generation: 1 });
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert!(report.units.is_empty());
    assert!(!list.exists(), "no restart list entry on a no-op");
    assert_eq!(
        snapshot(&fixture.target),
        before,
        "no file, mode, owner or mtime changed"
    );
}

#[test]
fn a_renewed_worker_certificate_restarts_only_kubelet() {
    let mut fixture = Fixture::new();
    let list = fixture.root.path().join("activation-restart-list");
    let mut request = fixture.request("laptop-ultra");
    request.restart = Restart::List(list.clone());
    activate::activate(&request).unwrap();
    fs::write(&list, "").unwrap();

    fixture.issue("nodes/laptop-ultra/kubelet-serving", |p| {
        p.subject_alt_names
            .push(rcgen::SanType::DnsName("ultra.example".try_into().unwrap()))
    });
    fixture.save();
    let report = activate::activate(&request).unwrap();

    assert_eq!(
        report.outcome,
        Outcome::Installed {
            generation: 2,
            previous: Some(1)
        }
    );
    let names: Vec<&str> = report.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kubelet-serving.crt", "kubelet-serving.key"]);
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.differences == [Difference::Content])
    );
    assert_eq!(report.units, ["kubelet.service"]);
    assert_eq!(fs::read_to_string(&list).unwrap(), "kubelet.service\n");
}

#[test]
fn a_mode_changed_by_hand_is_repaired_and_its_units_restarted() {
    let fixture = Fixture::new();
    let request = fixture.request("ec2-controlplane");
    activate::activate(&request).unwrap();
    let key = fixture.live().join("etcd-server.key");
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let report = activate::activate(&request).unwrap();

    assert_eq!(report.changes.len(), 1, "{:?}", report.changes);
    assert_eq!(report.changes[0].differences, [Difference::Mode]);
    assert_eq!(report.units, ["etcd.service"]);
    assert_eq!(
        fs::metadata(fixture.live().join("etcd-server.key"))
            .unwrap()
            .mode()
            & 0o777,
        0o400
    );
}

#[test]
fn dry_run_reports_the_changes_and_writes_nothing() {
    let mut fixture = Fixture::new();
    let request = fixture.request("laptop-firebat");
    activate::activate(&request).unwrap();
    fixture.issue("nodes/laptop-firebat/kube-proxy", |_| {});
    fixture.save();
    let before = snapshot(&fixture.target);
    let mut dry = request.clone();
    dry.dry_run = true;
    dry.metrics_dir = Some(fixture.root.path().join("metrics"));

    let report = activate::activate(&dry).unwrap();

    assert_eq!(report.outcome, Outcome::DryRun { live: Some(1) });
    assert_eq!(report.units, ["kube-proxy.service"]);
    assert_eq!(snapshot(&fixture.target), before);
    assert!(!fixture.root.path().join("metrics").exists());
}

#[test]
fn old_generations_are_pruned_to_keep() {
    let mut fixture = Fixture::new();
    let mut request = fixture.request("laptop-firebat");
    request.keep = 2;
    for round in 0..5 {
        if round > 0 {
            fixture.issue("nodes/laptop-firebat/calico-cni", |_| {});
            fixture.save();
        }
        activate::activate(&request).unwrap();
    }
    let mut left: Vec<String> = fs::read_dir(fixture.target.join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["3", "4", "5"]);
    assert_eq!(
        fs::read_link(fixture.live()).unwrap(),
        std::path::Path::new("generations/5")
    );
}

#[test]
fn metrics_give_days_left_per_certificate() {
    let fixture = Fixture::new();
    let mut request = fixture.request("laptop-firebat");
    let dir = fixture.root.path().join("textfile");
    fs::create_dir_all(&dir).unwrap();
    request.metrics_dir = Some(dir.clone());
    activate::activate(&request).unwrap();
    let text = fs::read_to_string(dir.join("kubepki.prom")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("kubepki_certificate_expiry_days{certificate=\"kubelet-client\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("node=\"laptop-firebat\""), "{line}");
    let days: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((364.0..=365.1).contains(&days), "{line}");
    assert!(text.contains("kubepki_generation{node=\"laptop-firebat\"} 1"));
}

#[test]
fn the_rsa_host_key_node_activates() {
    let fixture = Fixture::new();
    let report = activate::activate(&fixture.request("laptop-old")).unwrap();
    assert!(matches!(report.outcome, Outcome::Installed { .. }));
    assert!(fixture.live().join("kubelet-client.key").exists());
}

#[test]
fn a_new_name_for_one_worker_restarts_only_its_kubelet_and_leaves_the_others_alone() {
    let mut fixture = Fixture::new();
    let mut ultra = fixture.request("laptop-ultra");
    let list = fixture.root.path().join("activation-restart-list");
    ultra.restart = Restart::List(list.clone());
    activate::activate(&ultra).unwrap();
    let mut firebat = fixture.request("laptop-firebat");
    firebat.target = fixture.root.path().join("firebat/run/kubepki");
    activate::activate(&firebat).unwrap();
    fs::remove_file(&list).unwrap();

    // The operator gives laptop-ultra another DNS name and runs the pipeline again.
    let toml = fs::read_to_string(&fixture.inventory_path).unwrap();
    let toml = toml.replace(
        "names = [\"laptop-ultra.tailnet-ducksnest.ts.net\"]",
        "names = [\"laptop-ultra.tailnet-ducksnest.ts.net\", \"ultra.home.arpa\"]",
    );
    fs::write(&fixture.inventory_path, toml).unwrap();
    fixture.recreate(Default::default());

    let report = activate::activate(&ultra).unwrap();
    let names: Vec<&str> = report.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kubelet-serving.crt", "kubelet-serving.key"]);
    assert_eq!(report.units, ["kubelet.service"]);
    assert_eq!(fs::read_to_string(&list).unwrap(), "kubelet.service\n");
    let firebat = activate::activate(&firebat).unwrap();
    assert_eq!(firebat.outcome, Outcome::Unchanged { generation: 1 });
}

#[test]
fn openssl_accepts_every_installed_certificate_and_key_pair() {
    let fixture = Fixture::new();
    activate::activate(&fixture.request("ec2-controlplane")).unwrap();
    let live = fixture.live();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&live)
            .output()
            .expect("install openssl (see .ci/run)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let node = fixture.plan.node("ec2-controlplane").unwrap();
    for file in node
        .files
        .iter()
        .filter(|f| f.part == kubepki::plan::Part::Certificate)
    {
        let issuer = fixture.manifest["files"][&file.source]["issuer"]
            .as_str()
            .unwrap();
        let ca = match issuer {
            "kubernetes" => "ca.crt".to_string(),
            other => format!("{other}-ca.crt"),
        };
        openssl(&["verify", "-CAfile", &ca, &file.install]);
        let key = file.install.replace(".crt", ".key");
        assert_eq!(
            openssl(&["x509", "-in", &file.install, "-noout", "-pubkey"]),
            openssl(&["pkey", "-in", &key, "-pubout"]),
            "{key} belongs to {}",
            file.install
        );
    }
}

#[test]
fn the_committed_example_bundle_activates_on_every_node_with_the_inventory_pins() {
    let repo = activate_support::repo();
    let inventory = kubepki::inventory::Inventory::load(&repo.join("hosts/cluster.toml")).unwrap();
    let pins: kubepki::activate::Pins = inventory
        .spec
        .pki
        .pins
        .iter()
        .map(|(a, fps)| {
            let hex = fps
                .iter()
                .map(|f| f.trim_start_matches("sha256:").to_string());
            (*a, hex.collect())
        })
        .collect();
    assert_eq!(pins.len(), 3, "hosts/cluster.toml pins every authority");
    let scratch = tempfile::tempdir().unwrap();
    for node in inventory.spec.nodes.iter().map(|n| n.name.as_str()) {
        let mut request = activate::Request::new(&inventory.bundle_dir(), node, pins.clone());
        request.identities = vec![activate_support::host_key(node)];
        request.target = scratch.path().join(node);
        request.accounts = activate_support::accounts();
        let report = activate::activate(&request).unwrap_or_else(|e| panic!("{node}: {e}"));
        assert!(matches!(
            report.outcome,
            Outcome::Installed { generation: 1, .. }
        ));
    }
}

#[test]
fn a_ca_rotation_with_both_cas_pinned_is_accepted() {
    let mut fixture = Fixture::new();
    let request = fixture.request("laptop-firebat");
    activate::activate(&request).unwrap();
    let old = fs::read(fixture.bundle.join("ca/kubernetes.crt")).unwrap();
    fixture.new_authority(kubepki::plan::Authority::Kubernetes);
    let new = fs::read(fixture.bundle.join("ca/kubernetes.crt")).unwrap();
    // The trust bundle carries the new signing CA first and the old one until it retires.
    fixture.write("ca/kubernetes.crt", &[new, old].concat());
    fixture.reissue_all_of(kubepki::plan::Authority::Kubernetes);
    fixture.save();
    fixture.pin_current(kubepki::plan::Authority::Kubernetes);
    let mut request = fixture.request("laptop-firebat");
    request.keep = 3;

    let report = activate::activate(&request).unwrap();

    assert_eq!(
        report.outcome,
        Outcome::Installed {
            generation: 2,
            previous: Some(1)
        }
    );
    assert!(report.changes.iter().any(|c| c.name == "ca.crt"));
    assert_eq!(report.units, ["kube-proxy.service", "kubelet.service"]);
}
