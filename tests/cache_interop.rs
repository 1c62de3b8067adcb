//! kubepki's cache keys and verifier against the real peer: Debian's Nix 2.8.
//!
//! Nix signs with the key kubepki generated and verifies with the public key
//! kubepki recorded; `nix copy` fills a `file://` cache that `kubepki cache
//! verify` must accept, and every kind of tampering must be rejected.

mod cache_support;

use std::path::Path;

use cache_support::{Cluster, Nix, assert_success, stdout};

#[test]
fn nix_signs_with_the_kubepki_key_and_verifies_with_its_public_half() {
    let cluster = Cluster::new();
    let public = cluster.create_key();
    let secret = cluster.decrypted_secret_file();
    let nix = Nix::new(&cluster.path("root"));
    let path = nix.add_pair("signed");
    let verify_with = |key: &str| {
        nix.run(&[
            "store",
            "verify",
            "--no-contents",
            "--store",
            &nix.store,
            "--trusted-public-keys",
            key,
            "--sigs-needed",
            "1",
            &path,
        ])
    };
    assert!(
        !verify_with(&public).status.success(),
        "nix trusted the path before it was signed: the check below would prove nothing"
    );

    nix.ok(&[
        "store",
        "sign",
        "--key-file",
        secret.to_str().unwrap(),
        &path,
    ]);
    assert_success(
        &verify_with(&public),
        "nix store verify with the kubepki public key",
    );
    let info = nix.ok(&["path-info", "--sigs", &path]);
    let name = public.split_once(':').unwrap().0;
    assert!(info.contains(&format!("{name}:")), "{info}");

    // The same check with another key must fail, or the check above proves nothing.
    let (_, other_public) = nix.generate_key("someone-else-1", cluster.dir.path());
    let out = verify_with(&other_public);
    assert!(
        !out.status.success(),
        "nix accepted a path signed by another key"
    );
}

#[test]
fn a_key_nix_generated_is_read_by_kubepki_as_nix_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let nix = Nix::new(&dir.path().join("root"));
    let (secret, public) = nix.generate_key("nix-made-1", dir.path());
    let text = std::fs::read_to_string(secret).unwrap();
    let key = kubepki::cache::key::CacheSigningKey::from_nix(&text).unwrap();
    assert_eq!(key.public_key().to_string(), public);
    assert_eq!(key.to_nix().expose(), text.trim());
}

/// A cache written by `nix copy`, signed with the cluster key, and a pristine copy to tamper with.
struct SignedCache {
    cluster: Cluster,
    nix: Nix,
    cache: std::path::PathBuf,
    public: String,
}

impl SignedCache {
    fn new() -> SignedCache {
        let cluster = Cluster::new();
        let public = cluster.create_key();
        let secret = cluster.decrypted_secret_file();
        let nix = Nix::new(&cluster.path("root"));
        let path = nix.add_pair("cached");
        let cache = cluster.path("cache");
        nix.copy_to_cache(&path, &cache, Some(&secret));
        SignedCache {
            cluster,
            nix,
            cache,
            public,
        }
    }

    fn narinfos(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "narinfo"))
            .collect();
        found.sort();
        found
    }

    /// The narinfo of the path that has a reference (the `-top` one).
    fn top_narinfo(dir: &Path) -> std::path::PathBuf {
        Self::narinfos(dir)
            .into_iter()
            .find(|p| std::fs::read_to_string(p).unwrap().contains("-top\n"))
            .unwrap()
    }

    fn verify(&self, dir: &Path) -> std::process::Output {
        self.cluster
            .kubepki(&["cache", "verify", dir.to_str().unwrap()])
    }

    /// A fresh copy of the cache with one narinfo line rewritten.
    fn tampered(&self, name: &str, from: &str, to: &str) -> std::path::PathBuf {
        let copy = self.cluster.path(name);
        copy_dir(&self.cache, &copy);
        let narinfo = Self::top_narinfo(&copy);
        let text = std::fs::read_to_string(&narinfo).unwrap();
        let line = text.lines().find(|l| l.starts_with(from)).unwrap();
        let changed = text.replace(line, &to.replace("{}", &line[from.len()..]));
        assert_ne!(changed, text);
        std::fs::write(&narinfo, changed).unwrap();
        copy
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn kubepki_accepts_every_narinfo_nix_copy_signed_with_the_cluster_key() {
    let signed = SignedCache::new();
    assert_eq!(SignedCache::narinfos(&signed.cache).len(), 2);
    let out = signed.verify(&signed.cache);
    assert_success(&out, "kubepki cache verify");
    let text = stdout(&out);
    assert!(text.contains("2 ok, 0 failed"), "{text}");
    assert!(
        text.contains(signed.public.split_once(':').unwrap().0),
        "{text}"
    );

    // A single narinfo file can be checked too.
    let one = SignedCache::top_narinfo(&signed.cache);
    let out = signed
        .cluster
        .kubepki(&["cache", "verify", one.to_str().unwrap()]);
    assert_success(&out, "kubepki cache verify FILE");
}

#[test]
fn kubepki_rejects_an_altered_nar_hash() {
    let signed = SignedCache::new();
    // Point at the other NAR's hash: a well-formed value, just not the signed one.
    let other = std::fs::read_to_string(
        SignedCache::narinfos(&signed.cache)
            .into_iter()
            .find(|p| !std::fs::read_to_string(p).unwrap().contains("-top\n"))
            .unwrap(),
    )
    .unwrap();
    let other_hash = other
        .lines()
        .find_map(|l| l.strip_prefix("NarHash: "))
        .unwrap()
        .to_string();
    let copy = signed.tampered("nar-hash", "NarHash: ", &format!("NarHash: {other_hash}"));
    let out = signed.verify(&copy);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("BAD signature"), "{}", stdout(&out));
    assert!(stdout(&out).contains("1 ok, 1 failed"), "{}", stdout(&out));
}

#[test]
fn kubepki_rejects_altered_references_and_size() {
    let signed = SignedCache::new();
    for (name, from, to) in [
        ("refs", "References: ", "References: "),
        ("size", "NarSize: ", "NarSize: 9{}"),
    ] {
        let copy = signed.tampered(name, from, to);
        let out = signed.verify(&copy);
        assert!(!out.status.success(), "{name}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("BAD signature"),
            "{name}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn kubepki_rejects_an_altered_signature() {
    let signed = SignedCache::new();
    let name = signed.public.split_once(':').unwrap().0.to_string();
    let narinfo = std::fs::read_to_string(SignedCache::top_narinfo(&signed.cache)).unwrap();
    let sig = narinfo
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Sig: {name}:")))
        .unwrap();
    // Flip one base64 digit in the middle of the signature.
    let mut bytes = sig.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(bytes).unwrap();
    let copy = signed.tampered("sig", "Sig: ", &format!("Sig: {name}:{forged}"));
    let out = signed.verify(&copy);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("BAD signature"), "{}", stdout(&out));
}

#[test]
fn kubepki_rejects_a_path_signed_by_another_key() {
    let signed = SignedCache::new();
    let (other_secret, other_public) = signed
        .nix
        .generate_key("attacker-1", signed.cluster.dir.path());
    let path = signed.nix.add_pair("foreign");
    let foreign = signed.cluster.path("foreign-cache");
    signed
        .nix
        .copy_to_cache(&path, &foreign, Some(&other_secret));
    let out = signed.verify(&foreign);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("untrusted key(s) attacker-1"),
        "{}",
        stdout(&out)
    );

    // Trusting that key explicitly is the only way kubepki accepts it.
    let out = signed.cluster.kubepki(&[
        "cache",
        "verify",
        foreign.to_str().unwrap(),
        "--trusted-key",
        &other_public,
    ]);
    assert_success(
        &out,
        "kubepki cache verify --trusted-key <nix-generated key>",
    );
}

#[test]
fn kubepki_rejects_unsigned_paths() {
    let signed = SignedCache::new();
    let path = signed.nix.add_pair("unsigned");
    let unsigned = signed.cluster.path("unsigned-cache");
    signed.nix.copy_to_cache(&path, &unsigned, None);
    let out = signed.verify(&unsigned);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("unsigned"), "{}", stdout(&out));
    assert!(stdout(&out).contains("0 ok, 2 failed"), "{}", stdout(&out));
}

#[test]
fn kubepki_rejects_a_missing_or_altered_nar_file() {
    let signed = SignedCache::new();
    let narinfo = std::fs::read_to_string(SignedCache::top_narinfo(&signed.cache)).unwrap();
    let url = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_string();

    let missing = signed.cluster.path("missing-nar");
    copy_dir(&signed.cache, &missing);
    std::fs::remove_file(missing.join(&url)).unwrap();
    let out = signed.verify(&missing);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("is missing from the cache"),
        "{}",
        stdout(&out)
    );

    let altered = signed.cluster.path("altered-nar");
    copy_dir(&signed.cache, &altered);
    let mut bytes = std::fs::read(altered.join(&url)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(altered.join(&url), bytes).unwrap();
    let out = signed.verify(&altered);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("FileHash says"), "{}", stdout(&out));
}

#[test]
fn a_cache_signed_by_a_nix_generated_key_verifies_with_kubepki() {
    let dir = tempfile::tempdir().unwrap();
    let nix = Nix::new(&dir.path().join("root"));
    let (secret, public) = nix.generate_key("nix-made-1", dir.path());
    let path = nix.add_pair("nixkey");
    let cache = dir.path().join("cache");
    nix.copy_to_cache(&path, &cache, Some(&secret));
    let out = cache_support::kubepki(&[
        "cache",
        "verify",
        cache.to_str().unwrap(),
        "--trusted-key",
        &public,
    ]);
    assert_success(&out, "kubepki cache verify with a nix-generated key");
    assert!(stdout(&out).contains("2 ok, 0 failed"), "{}", stdout(&out));
}

#[test]
fn kubepki_rejects_a_signed_narinfo_moved_into_another_paths_slot() {
    let signed = SignedCache::new();
    let copy = signed.cluster.path("swapped");
    copy_dir(&signed.cache, &copy);
    let narinfos = SignedCache::narinfos(&copy);
    let top = SignedCache::top_narinfo(&copy);
    let other = narinfos.iter().find(|p| **p != top).unwrap();
    // Serve the top path's (validly signed) narinfo when the dependency is asked for.
    std::fs::copy(&top, other).unwrap();
    let out = signed.verify(&copy);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("named for another path"),
        "{}",
        stdout(&out)
    );
}
