//! Activation refuses bad material with a message naming the file and the reason, and the
//! live generation keeps serving untouched.

mod activate_support;

use std::fs;

use activate_support::{Fixture, accounts, host_key, root, snapshot};
use kubepki::activate::{self, Accounts, ActivateError, Request};
use kubepki::plan::Authority;
use time::{Duration, OffsetDateTime};

/// A fixture with a first generation installed for `node`, and its tree.
fn installed(node: &str) -> (Fixture, Request) {
    let fixture = Fixture::new();
    let request = fixture.request(node);
    activate::activate(&request).unwrap();
    (fixture, request)
}

/// Runs `request`, expects a refusal, and checks that the target did not change.
fn refused(fixture: &Fixture, request: &Request) -> ActivateError {
    let before = snapshot(&fixture.target);
    let error = activate::activate(request).expect_err("activation must be refused");
    assert_eq!(
        snapshot(&fixture.target),
        before,
        "the live generation must stay untouched after: {error}"
    );
    error
}

fn assert_says(error: &ActivateError, parts: &[&str]) {
    let text = error.to_string();
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert!(text.contains("Fix:"), "no fix in: {text}");
}

#[test]
fn a_corrupted_age_file_is_refused() {
    let (mut fixture, request) = installed("ec2-controlplane");
    let path = "nodes/ec2-controlplane/apiserver.key.age";
    let mut sealed = fs::read(fixture.bundle.join(path)).unwrap();
    let last = sealed.len() - 5;
    sealed[last] ^= 0x40;
    // The manifest agrees with the corrupted file: only age's authentication catches it.
    fixture.write(path, &sealed);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::SealedFileCorrupt { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[path, "truncated or corrupted", "age cannot decrypt it"],
    );
}

#[test]
fn a_truncated_file_is_refused_by_its_hash() {
    let (fixture, request) = installed("laptop-firebat");
    let path = "nodes/laptop-firebat/kubelet-client.key.age";
    let sealed = fs::read(fixture.bundle.join(path)).unwrap();
    fs::write(fixture.bundle.join(path), &sealed[..sealed.len() / 2]).unwrap();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::HashMismatch { .. }),
        "{error:?}"
    );
    assert_says(&error, &[path, "truncated or altered", "git checkout"]);
}

#[test]
fn a_truncated_age_file_matching_the_manifest_is_refused_as_truncated() {
    let (mut fixture, request) = installed("laptop-firebat");
    let path = "nodes/laptop-firebat/kube-proxy.key.age";
    let sealed = fs::read(fixture.bundle.join(path)).unwrap();
    fixture.write(path, &sealed[..sealed.len() - 40]);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::SealedFileCorrupt { .. }),
        "{error:?}"
    );
    assert_says(&error, &[path, "truncated or corrupted"]);
}

#[test]
fn a_key_sealed_to_another_node_is_refused() {
    let (fixture, mut request) = installed("laptop-firebat");
    request.identities = vec![host_key("laptop-ultra")];
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::NotSealedToThisHost { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            "nodes/laptop-firebat/",
            ".key.age",
            "sealed to another node?",
            "laptop-ultra",
        ],
    );
}

#[test]
fn a_missing_identity_file_is_refused() {
    let (fixture, mut request) = installed("laptop-firebat");
    let missing = fixture.root.path().join("etc/ssh/ssh_host_ed25519_key");
    request.identities = vec![missing.clone()];
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::IdentityMissing { .. }),
        "{error:?}"
    );
    assert_says(&error, &[&missing.display().to_string(), "does not exist"]);
}

#[test]
fn a_rogue_ca_with_a_consistent_manifest_is_refused_by_the_pin() {
    let (mut fixture, request) = installed("laptop-ultra");
    // The attacker replaces the CA, re-signs every leaf and rewrites the manifest to match.
    fixture.new_authority(Authority::Kubernetes);
    fixture.reissue_all_of(Authority::Kubernetes);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::RogueAuthority { .. }),
        "{error:?}"
    );
    assert_says(&error, &["ca/kubernetes.crt", "is not pinned", "tampered"]);
}

#[test]
fn a_rogue_ca_appended_to_the_trust_bundle_is_refused() {
    let (mut fixture, request) = installed("laptop-ultra");
    let genuine = fs::read(fixture.bundle.join("ca/kubernetes.crt")).unwrap();
    fixture.new_authority(Authority::Kubernetes);
    let rogue = fs::read(fixture.bundle.join("ca/kubernetes.crt")).unwrap();
    let both = [genuine, rogue].concat();
    fixture.write("ca/kubernetes.crt", &both);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::RogueAuthority { .. }),
        "{error:?}"
    );
}

#[test]
fn a_leaf_signed_by_an_unpinned_ca_is_refused() {
    let (mut fixture, request) = installed("laptop-ultra");
    let genuine = fs::read(fixture.bundle.join("ca/kubernetes.crt")).unwrap();
    fixture.new_authority(Authority::Kubernetes);
    fixture.issue("nodes/laptop-ultra/kube-proxy", |_| {});
    // The trust bundle stays the genuine, pinned one.
    fixture.write("ca/kubernetes.crt", &genuine);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::NotSignedByPinnedAuthority { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            "nodes/laptop-ultra/kube-proxy.crt",
            "not signed by any pinned",
        ],
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let (mut fixture, request) = installed("ec2-controlplane");
    fixture.issue("nodes/ec2-controlplane/etcd-peer", |p| {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(400);
        p.not_after = now - Duration::days(35);
    });
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(matches!(error, ActivateError::Expired { .. }), "{error:?}");
    assert_says(
        &error,
        &[
            "nodes/ec2-controlplane/etcd-peer.crt",
            "expired",
            "kubepki renew",
        ],
    );
}

#[test]
fn a_not_yet_valid_certificate_is_refused() {
    let (mut fixture, request) = installed("laptop-firebat");
    fixture.issue("nodes/laptop-firebat/kubelet-client", |p| {
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(2);
    });
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::NotYetValid { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            "nodes/laptop-firebat/kubelet-client.crt",
            "not valid before",
        ],
    );
}

#[test]
fn a_certificate_inside_the_renewal_window_installs_with_a_warning() {
    let mut fixture = Fixture::new();
    fixture.issue("nodes/laptop-firebat/kubelet-serving", |p| {
        p.not_after = OffsetDateTime::now_utc() + Duration::days(10);
    });
    fixture.save();
    let report = activate::activate(&fixture.request("laptop-firebat")).unwrap();
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("nodes/laptop-firebat/kubelet-serving.crt"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("renewal window"), "{warning}");
}

#[test]
fn a_kubelet_certificate_for_another_node_is_refused() {
    let (mut fixture, request) = installed("laptop-firebat");
    fixture.issue("nodes/laptop-firebat/kubelet-client", |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:laptop-ultra");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
    });
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::WrongNode { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            "kubelet-client.crt",
            "system:node:laptop-ultra",
            "`laptop-firebat`",
        ],
    );
}

#[test]
fn a_serving_certificate_without_the_node_name_is_refused() {
    let (mut fixture, request) = installed("ec2-controlplane");
    fixture.issue("nodes/ec2-controlplane/apiserver", |p| {
        p.subject_alt_names.retain(
            |s| !matches!(s, rcgen::SanType::DnsName(d) if d.as_str() == "ec2-controlplane"),
        );
    });
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::WrongNode { .. }),
        "{error:?}"
    );
    assert_says(&error, &["nodes/ec2-controlplane/apiserver.crt", "DNS SAN"]);
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let (mut fixture, request) = installed("laptop-firebat");
    let key = "nodes/laptop-firebat/kube-proxy.key.age";
    let old_key = fs::read(fixture.bundle.join(key)).unwrap();
    fixture.issue("nodes/laptop-firebat/kube-proxy", |_| {});
    fixture.write(key, &old_key);
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::KeyMismatch { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            key,
            "nodes/laptop-firebat/kube-proxy.crt",
            "public keys differ",
        ],
    );
}

#[test]
fn a_missing_pin_is_refused() {
    let (fixture, mut request) = installed("ec2-controlplane");
    request.pins.remove(&Authority::FrontProxy);
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::MissingPin { .. }),
        "{error:?}"
    );
    assert_says(&error, &["ca/front-proxy.crt", "--pin front-proxy=sha256:"]);
}

#[test]
fn a_missing_owner_is_refused_when_running_as_root() {
    let (fixture, mut request) = installed("ec2-controlplane");
    let Accounts::Fixed { mut users, groups } = accounts() else {
        unreachable!()
    };
    users.remove("etcd");
    request.accounts = Accounts::Fixed { users, groups };
    if root() {
        let error = refused(&fixture, &request);
        assert!(
            matches!(error, ActivateError::OwnerUserMissing { .. }),
            "{error:?}"
        );
        assert_says(&error, &["owner user `etcd` does not exist"]);
    } else {
        // Without root nothing is chowned, so owners are not resolved; it says so once.
        let report = activate::activate(&request).unwrap();
        assert_eq!(
            report
                .warnings
                .iter()
                .filter(|w| w.contains("not running as root"))
                .count(),
            1
        );
    }
}

#[test]
fn a_node_missing_from_the_bundle_is_refused() {
    let (fixture, mut request) = installed("laptop-firebat");
    request.node = "laptop-new".into();
    let error = refused(&fixture, &request);
    assert_says(
        &error,
        &[
            "`laptop-new` is not in the bundle manifest",
            "laptop-firebat",
        ],
    );
}

#[test]
fn an_identity_that_is_not_a_private_key_is_refused() {
    let (fixture, mut request) = installed("laptop-firebat");
    let public =
        activate_support::repo().join("tests/keys/laptop-firebat/ssh_host_ed25519_key.pub");
    request.identities = vec![public.clone()];
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::IdentityUnreadable { .. }),
        "{error:?}"
    );
    assert_says(&error, &[&public.display().to_string(), "cannot be read"]);
}

#[test]
fn an_install_name_that_leaves_the_generation_is_refused() {
    let (mut fixture, request) = installed("laptop-firebat");
    fixture.manifest["nodes"]["laptop-firebat"]["files"][0]["install"] = "../../escape".into();
    fixture.save();
    let error = refused(&fixture, &request);
    assert!(
        matches!(error, ActivateError::ManifestInvalid { .. }),
        "{error:?}"
    );
    assert_says(
        &error,
        &[
            "manifest.json",
            "`../../escape` is not a plain, unique file name",
        ],
    );
    assert!(!fixture.root.path().join("escape").exists());
}
