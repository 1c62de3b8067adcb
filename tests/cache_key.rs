//! `kubepki cache-key` and `kubepki cache secret` as an operator uses them.
//!
//! The key is sealed to the operators and CI recipients (opened here by the Go
//! `age` CLI, the real consumer), recorded in cluster.toml without disturbing
//! the rest of the file, never replaced by accident, and printed only on request.

mod cache_support;

use std::process::Command;

use cache_support::{Cluster, assert_success, operator_key, require_tool, stderr, stdout};

fn age_decrypt(identity: &std::path::Path, file: &std::path::Path) -> String {
    require_tool("age");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap();
    assert_success(&out, "age -d");
    stdout(&out)
}

#[test]
fn the_key_is_sealed_to_the_operator_and_recorded_in_the_inventory() {
    let cluster = Cluster::new();
    let before = std::fs::read_to_string(cluster.inventory()).unwrap();
    let out = cluster.kubepki(&[
        "cache-key",
        "--url",
        "s3://ducksnest-cache?region=ap-northeast-2",
    ]);
    assert_success(&out, "kubepki cache-key");
    let printed = stdout(&out);

    // The secret is not printed without --print-secret.
    let sealed = cluster.path("hosts/cache/signing-key.age");
    let secret = age_decrypt(&operator_key(), &sealed);
    assert!(secret.starts_with("ducksnest-cache-1:"), "{secret}");
    let secret_b64 = secret.split_once(':').unwrap().1;
    assert!(!printed.contains(secret_b64), "{printed}");
    assert!(!stderr(&out).contains(secret_b64));

    // The sealed file is binary age, not the key.
    let raw = std::fs::read(&sealed).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&raw).contains(secret_b64));

    // What was recorded matches the sealed secret, and nothing else in the file moved.
    let key = kubepki::cache::key::CacheSigningKey::from_nix(&secret).unwrap();
    let public = key.public_key().to_string();
    assert_eq!(cluster.recorded_public_key(), public);
    assert!(printed.contains(&public), "{printed}");
    let after = std::fs::read_to_string(cluster.inventory()).unwrap();
    assert!(
        after.starts_with(&before),
        "the existing text was rewritten"
    );
    let added = &after[before.len()..];
    assert!(added.contains("[cache]"), "{added}");
    assert!(
        added.contains("url = \"s3://ducksnest-cache?region=ap-northeast-2\""),
        "{added}"
    );
    assert!(
        added.contains("key_name = \"ducksnest-cache-1\""),
        "{added}"
    );

    // The inventory still loads, and says the same.
    let inventory = kubepki::inventory::Inventory::load(&cluster.inventory()).unwrap();
    let cache = inventory.spec.cache.unwrap();
    assert_eq!(cache.public_key.as_deref(), Some(public.as_str()));
    assert_eq!(cache.key_name.as_deref(), Some("ducksnest-cache-1"));
}

#[test]
fn an_existing_key_is_never_replaced_without_rotate() {
    let cluster = Cluster::new();
    let first = cluster.create_key();
    let sealed = cluster.path("hosts/cache/signing-key.age");
    let sealed_before = std::fs::read(&sealed).unwrap();

    let out = cluster.kubepki(&["cache-key"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("--rotate"), "{message}");
    assert!(message.contains("ducksnest-cache-2"), "{message}");
    assert_eq!(cluster.recorded_public_key(), first);
    assert_eq!(std::fs::read(&sealed).unwrap(), sealed_before);

    let out = cluster.kubepki(&["cache-key", "--rotate", "--name", "ducksnest-cache-1"]);
    assert!(!out.status.success(), "rotation kept the old name");

    let out = cluster.kubepki(&["cache-key", "--rotate"]);
    assert_success(&out, "kubepki cache-key --rotate");
    let second = cluster.recorded_public_key();
    assert!(second.starts_with("ducksnest-cache-2:"), "{second}");
    assert_ne!(second, first);
    assert!(stdout(&out).contains("replaces `ducksnest-cache-1`"));
    let secret = age_decrypt(&operator_key(), &sealed);
    assert!(secret.starts_with("ducksnest-cache-2:"));
    // The URL recorded the first time is kept.
    let text = std::fs::read_to_string(cluster.inventory()).unwrap();
    assert_eq!(
        text.matches("url = \"s3://ducksnest-cache").count(),
        1,
        "{text}"
    );
}

#[test]
fn a_sealed_file_without_a_recorded_key_also_counts_as_existing() {
    let cluster = Cluster::new();
    std::fs::create_dir_all(cluster.path("hosts/cache")).unwrap();
    std::fs::write(cluster.path("hosts/cache/signing-key.age"), b"left over").unwrap();
    let out = cluster.kubepki(&["cache-key"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("signing-key.age"), "{}", stderr(&out));
}

#[test]
fn ci_recipients_can_open_the_key_with_age_and_with_kubepki() {
    require_tool("age-keygen");
    let cluster = Cluster::new();
    let identity = cluster.path("ci.agekey");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert_success(&out, "age-keygen");
    let ci_public = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap();
    let mut text = std::fs::read_to_string(cluster.inventory()).unwrap();
    text.push_str(&format!(
        "\n[cache]\nurl = \"s3://ducksnest-cache?region=ap-northeast-2\"\nci_recipients = [\"{ci_public}\"]\n"
    ));
    std::fs::write(cluster.inventory(), &text).unwrap();

    let out = cluster.kubepki(&["cache-key", "--print-secret"]);
    assert_success(&out, "kubepki cache-key --print-secret");
    // stdout is the secret alone, ready for `gh secret set`; the notes went to stderr.
    let printed = stdout(&out);
    let key = kubepki::cache::key::CacheSigningKey::from_nix(&printed).unwrap();
    assert_eq!(printed, key.to_nix().expose());
    assert!(stderr(&out).contains("public key:"), "{}", stderr(&out));
    assert_eq!(cluster.recorded_public_key(), key.public_key().to_string());

    let sealed = cluster.path("hosts/cache/signing-key.age");
    assert_eq!(age_decrypt(&identity, &sealed), printed);
    assert_eq!(age_decrypt(&operator_key(), &sealed), printed);

    let out = cluster.kubepki(&["cache", "secret", "-i", identity.to_str().unwrap()]);
    assert_success(&out, "kubepki cache secret -i <age identity>");
    assert_eq!(stdout(&out), printed);
}

#[test]
fn a_bad_ci_recipient_is_named_in_the_error() {
    let cluster = Cluster::new();
    let mut text = std::fs::read_to_string(cluster.inventory()).unwrap();
    text.push_str("\n[cache]\nci_recipients = [\"ecdsa-sha2-nistp256 AAAA\"]\n");
    std::fs::write(cluster.inventory(), &text).unwrap();
    let out = cluster.kubepki(&["cache-key"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cache.ci_recipients[0]"),
        "{}",
        stderr(&out)
    );
    assert!(!cluster.path("hosts/cache/signing-key.age").exists());
}

#[test]
fn a_host_key_cannot_open_the_signing_key() {
    let cluster = Cluster::new();
    cluster.create_key();
    let host_key = cache_support::repo().join("tests/keys/ec2-controlplane/ssh_host_ed25519_key");
    let out = cluster.kubepki(&["cache", "secret", "-i", host_key.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("none of the identities"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_sealed_key_that_disagrees_with_the_inventory_is_refused() {
    let cluster = Cluster::new();
    cluster.create_key();
    let text = std::fs::read_to_string(cluster.inventory()).unwrap();
    let other = kubepki::cache::key::CacheSigningKey::generate("ducksnest-cache-1").unwrap();
    let changed = text.replace(
        &cluster.recorded_public_key(),
        &other.public_key().to_string(),
    );
    std::fs::write(cluster.inventory(), changed).unwrap();
    let out = cluster.kubepki(&["cache", "secret", "-i", operator_key().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("trusts"), "{}", stderr(&out));
}

#[test]
fn a_url_nix_cannot_use_is_refused() {
    let cluster = Cluster::new();
    let out = cluster.kubepki(&["cache-key", "--url", "ducksnest-cache"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("s3://BUCKET?region=REGION"),
        "{}",
        stderr(&out)
    );
    assert!(!cluster.path("hosts/cache/signing-key.age").exists());
}
