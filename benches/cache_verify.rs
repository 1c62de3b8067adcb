//! How fast `kubepki cache verify` checks a file:// binary cache: narinfo parsing,
//! ed25519 verification and streamed NAR hashing, in parallel.
//!
//! A host closure is ~1,500–3,000 paths; the target is a whole cache of that
//! size in well under a second on two cores. Prints figures; it only asserts that
//! every entry verified, so a broken verifier cannot look fast.

use std::path::Path;
use std::time::Instant;

use kubepki::cache::key::CacheSigningKey;
use kubepki::cache::nix32;
use kubepki::cache::verify::{trusted_keys, verify_path};
use sha2::{Digest as _, Sha256};

/// Writes `count` signed narinfos, each with a `nar_bytes`-byte NAR, like `nix copy` lays them out.
fn fill_cache(dir: &Path, key: &CacheSigningKey, count: usize, nar_bytes: usize) {
    std::fs::create_dir_all(dir.join("nar")).unwrap();
    std::fs::write(dir.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    for i in 0..count {
        let digest = Sha256::digest(format!("path {i}"));
        let hash = &nix32::encode(&digest[..20])[..32];
        let mut nar = vec![0u8; nar_bytes];
        nar[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let file_hash = nix32::encode(&Sha256::digest(&nar));
        std::fs::write(dir.join(format!("nar/{file_hash}.nar")), &nar).unwrap();
        let store_path = format!("/nix/store/{hash}-bench-{i}");
        let nar_hash = format!("sha256:{file_hash}");
        let fingerprint = format!("1;{store_path};{nar_hash};{nar_bytes};");
        let text = format!(
            "StorePath: {store_path}\nURL: nar/{file_hash}.nar\nCompression: none\nFileHash: {nar_hash}\nFileSize: {nar_bytes}\nNarHash: {nar_hash}\nNarSize: {nar_bytes}\nReferences: \nSig: {}\n",
            key.sign(&fingerprint)
        );
        std::fs::write(dir.join(format!("{hash}.narinfo")), text).unwrap();
    }
}

fn main() {
    let key = CacheSigningKey::generate("bench-cache-1").unwrap();
    let trusted = trusted_keys(&[key.public_key()]);
    for (count, nar_bytes) in [(2_000, 4 * 1024), (200, 4 * 1024 * 1024)] {
        let dir = tempfile::tempdir().unwrap();
        fill_cache(dir.path(), &key, count, nar_bytes);
        let start = Instant::now();
        let reports = verify_path(dir.path(), &trusted).unwrap();
        let elapsed = start.elapsed();
        assert!(reports.iter().all(|r| r.is_ok()));
        let megabytes = (count * nar_bytes) as f64 / (1024.0 * 1024.0);
        println!(
            "cache verify: {count} narinfos with {} KiB NARs ({megabytes:.0} MiB) in {:.3} s: {:.0} narinfos/s, {:.0} MiB/s",
            nar_bytes / 1024,
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            megabytes / elapsed.as_secs_f64(),
        );
    }
}
