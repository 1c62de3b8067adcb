//! Checking a binary cache the way a host will: every narinfo signed by a trusted key.
//!
//! For each `.narinfo` the fingerprint `1;<store path>;<NarHash>;<NarSize>;<references>`
//! (computed by `nix-narinfo`, NarHash in `sha256:<nix32>` as Nix signs it) must
//! carry a `Sig:` from a trusted key that verifies (ed25519). In a `file://`
//! cache the compressed NAR the narinfo points to must also exist and match its
//! `FileHash`/`FileSize` (and, when uncompressed, its `NarHash`/`NarSize`).
//! This module reads files and reports; it does not fetch from S3 or HTTP,
//! decompress NARs, or decide what the caller does with a failure.

use std::fmt;
use std::path::{Path, PathBuf};

use nix_narinfo::{Compression, NarInfo, TrustedPublicKey};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::key::CachePublicKey;
use super::nix32;

/// Why a path could not be checked at all (as opposed to an entry failing its check).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "cannot read {path}: {reason}. Fix: pass a .narinfo file or the folder of a file:// binary cache."
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{path} holds no .narinfo files. Fix: pass the folder `nix copy --to file://…` wrote, or a .narinfo file."
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: `StoreDir: {store_dir}` is not a store folder nix-narinfo accepts ({reason}). Fix: correct nix-cache-info."
    )]
    StoreDir {
        path: PathBuf,
        store_dir: String,
        reason: String,
    },
    #[error(
        "there is no trusted key to verify against. Fix: pass --trusted-key NAME:BASE64, or run `kubepki cache-key` to record `cache.public_key`."
    )]
    NoTrustedKey,
}

/// One thing wrong with one narinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The file is not a narinfo nix-narinfo can read.
    Unparseable {
        reason: String,
    },
    /// No `Sig:` line at all.
    Unsigned,
    /// Signed, but only by keys the caller does not trust.
    UntrustedSigners {
        names: Vec<String>,
    },
    /// A trusted key's signature does not match the content: tampered fields or a tampered `Sig:`.
    BadSignature {
        names: Vec<String>,
    },
    /// The file is named for another store path: a signed narinfo moved into another path's slot.
    Misplaced {
        expected: String,
    },
    /// The NAR file the `URL:` names is not in the cache folder.
    NarMissing {
        url: String,
    },
    NarUnreadable {
        url: String,
        reason: String,
    },
    FileSize {
        url: String,
        recorded: u64,
        actual: u64,
    },
    FileHash {
        url: String,
        recorded: String,
        actual: String,
    },
    /// An uncompressed NAR whose bytes disagree with the signed `NarSize`/`NarHash`.
    NarSize {
        url: String,
        recorded: u64,
        actual: u64,
    },
    NarHash {
        url: String,
        recorded: String,
        actual: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Unparseable { reason } => write!(f, "not a valid narinfo: {reason}"),
            Finding::Unsigned => write!(
                f,
                "unsigned. Fix: push with `secret-key=` or re-sign with `nix store sign --store URL -k KEY -r PATH`"
            ),
            Finding::UntrustedSigners { names } => write!(
                f,
                "signed only by untrusted key(s) {}. Fix: re-sign with the cluster key, or pass --trusted-key if that key is legitimate",
                names.join(", ")
            ),
            Finding::BadSignature { names } => write!(
                f,
                "BAD signature by {}: the narinfo (NarHash, NarSize, References or Sig) was altered after signing. Fix: treat the cache as compromised; delete the entry and push it again",
                names.join(", ")
            ),
            Finding::Misplaced { expected } => write!(
                f,
                "the file is named for another path (its StorePath hash is {expected}); Nix rejects it. Fix: delete it and push again"
            ),
            Finding::NarMissing { url } => write!(f, "its NAR {url} is missing from the cache"),
            Finding::NarUnreadable { url, reason } => {
                write!(f, "cannot read its NAR {url}: {reason}")
            }
            Finding::FileSize {
                url,
                recorded,
                actual,
            } => write!(
                f,
                "its NAR {url} is {actual} bytes, FileSize says {recorded}"
            ),
            Finding::FileHash {
                url,
                recorded,
                actual,
            } => write!(
                f,
                "its NAR {url} hashes to {actual}, FileHash says {recorded}"
            ),
            Finding::NarSize {
                url,
                recorded,
                actual,
            } => write!(
                f,
                "its uncompressed NAR {url} is {actual} bytes, the signed NarSize says {recorded}"
            ),
            Finding::NarHash {
                url,
                recorded,
                actual,
            } => write!(
                f,
                "its uncompressed NAR {url} hashes to {actual}, the signed NarHash says {recorded}"
            ),
        }
    }
}

/// The verdict on one narinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReport {
    pub narinfo: PathBuf,
    /// The `StorePath:`, when the file parsed.
    pub store_path: Option<String>,
    /// The trusted key whose signature verified.
    pub signed_by: Option<String>,
    pub findings: Vec<Finding>,
}

impl EntryReport {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty() && self.signed_by.is_some()
    }
}

/// Converts the cluster's public keys into the form nix-narinfo verifies with.
pub fn trusted_keys(keys: &[CachePublicKey]) -> Vec<TrustedPublicKey> {
    keys.iter()
        .map(|k| TrustedPublicKey {
            name: k.name.clone(),
            key: k.key,
        })
        .collect()
}

/// Checks the signatures of a parsed narinfo; returns the trusted signer's name.
///
/// Like Nix, one valid signature by a trusted key is enough; otherwise a failed
/// signature by a trusted name (tampering) outranks untrusted signers, which
/// outrank no signature at all.
pub fn check_signatures(info: &NarInfo, trusted: &[TrustedPublicKey]) -> Result<String, Finding> {
    let fingerprint = info.fingerprint(info.store_dir());
    let mut untrusted = Vec::new();
    let mut bad = Vec::new();
    for signature in info.signatures() {
        if !trusted.iter().any(|k| k.name == signature.key_name) {
            untrusted.push(signature.key_name.clone());
            continue;
        }
        match signature.verify(fingerprint.as_bytes(), trusted) {
            Ok(true) => return Ok(signature.key_name.clone()),
            Ok(false) | Err(_) => bad.push(signature.key_name.clone()),
        }
    }
    if !bad.is_empty() {
        Err(Finding::BadSignature { names: bad })
    } else if !untrusted.is_empty() {
        Err(Finding::UntrustedSigners { names: untrusted })
    } else {
        Err(Finding::Unsigned)
    }
}

/// Checks the NAR a narinfo points to, inside the cache folder `cache_dir`.
pub fn check_nar_file(info: &NarInfo, cache_dir: &Path) -> Vec<Finding> {
    let url = info.url().to_string();
    if url.contains("://") || url.starts_with('/') || url.split('/').any(|part| part == "..") {
        // Not a file inside this cache: nothing local to compare.
        return Vec::new();
    }
    let path = cache_dir.join(&url);
    // Streamed: a NAR can be hundreds of megabytes.
    let hashed = std::fs::File::open(&path).and_then(|mut file| {
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)?;
        Ok((size, hasher.finalize()))
    });
    let (actual_size, digest) = match hashed {
        Ok(hashed) => hashed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![Finding::NarMissing { url }];
        }
        Err(e) => {
            return vec![Finding::NarUnreadable {
                url,
                reason: e.to_string(),
            }];
        }
    };
    let mut findings = Vec::new();
    let actual_hash = format!("sha256:{}", nix32::encode(&digest));
    if let Some(recorded) = info.file_size()
        && recorded != actual_size
    {
        findings.push(Finding::FileSize {
            url: url.clone(),
            recorded,
            actual: actual_size,
        });
    }
    if let Some(recorded) = info.file_hash() {
        let recorded = recorded.to_nix_nixbase32_string();
        if recorded.starts_with("sha256:") && recorded != actual_hash {
            findings.push(Finding::FileHash {
                url: url.clone(),
                recorded,
                actual: actual_hash.clone(),
            });
        }
    }
    if *info.compression() == Compression::None {
        if info.nar_size() != actual_size {
            findings.push(Finding::NarSize {
                url: url.clone(),
                recorded: info.nar_size(),
                actual: actual_size,
            });
        }
        let recorded = info.nar_hash().to_nix_nixbase32_string();
        if recorded.starts_with("sha256:") && recorded != actual_hash {
            findings.push(Finding::NarHash {
                url,
                recorded,
                actual: actual_hash,
            });
        }
    }
    findings
}

/// Checks one narinfo's bytes; `cache_dir` is the `file://` cache folder holding its NAR, if any.
pub fn check_narinfo(
    narinfo: &Path,
    bytes: &[u8],
    store_dir: Option<&str>,
    trusted: &[TrustedPublicKey],
    cache_dir: Option<&Path>,
) -> EntryReport {
    let mut report = EntryReport {
        narinfo: narinfo.to_path_buf(),
        store_path: None,
        signed_by: None,
        findings: Vec::new(),
    };
    let info = match parse(bytes, store_dir) {
        Ok(info) => info,
        Err(reason) => {
            report.findings.push(Finding::Unparseable { reason });
            return report;
        }
    };
    report.store_path = Some(format!(
        "{}/{}",
        info.store_dir(),
        info.store_path().to_basename()
    ));
    match check_signatures(&info, trusted) {
        Ok(signer) => report.signed_by = Some(signer),
        Err(finding) => report.findings.push(finding),
    }
    if let Some(dir) = cache_dir {
        // In a cache, `<hash>.narinfo` must describe the path with that hash, as Nix checks.
        let basename = info.store_path().to_basename();
        let hash = basename.split('-').next().unwrap_or_default();
        let stem = narinfo
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".narinfo"));
        if stem != Some(hash) {
            report.findings.push(Finding::Misplaced {
                expected: hash.to_string(),
            });
        }
        report.findings.extend(check_nar_file(&info, dir));
    }
    report
}

fn parse(bytes: &[u8], store_dir: Option<&str>) -> Result<NarInfo, String> {
    match store_dir {
        None => NarInfo::parse_in(&Default::default(), bytes).map_err(|e| e.to_string()),
        Some(dir) => {
            let dir = dir.parse().map_err(|_| format!("bad StoreDir `{dir}`"))?;
            NarInfo::parse_in(&dir, bytes).map_err(|e| e.to_string())
        }
    }
}

/// Verifies a `.narinfo` file, or every `*.narinfo` in a `file://` cache folder (sorted by name).
///
/// A NAR is checked when the narinfo sits in a cache folder (one with `nix-cache-info`).
pub fn verify_path(
    path: &Path,
    trusted: &[TrustedPublicKey],
) -> Result<Vec<EntryReport>, VerifyError> {
    if trusted.is_empty() {
        return Err(VerifyError::NoTrustedKey);
    }
    let unreadable = |path: &Path, e: std::io::Error| VerifyError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    let (cache_dir, narinfos) = if metadata.is_dir() {
        let mut narinfos = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| unreadable(path, e))? {
            let entry = entry.map_err(|e| unreadable(path, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".narinfo") {
                narinfos.push(entry.path());
            }
        }
        narinfos.sort();
        if narinfos.is_empty() {
            return Err(VerifyError::Empty {
                path: path.to_path_buf(),
            });
        }
        (path.to_path_buf(), narinfos)
    } else {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, vec![path.to_path_buf()])
    };
    let cache_info = cache_dir.join("nix-cache-info");
    let (is_cache, store_dir) = match std::fs::read_to_string(&cache_info) {
        Ok(text) => (true, store_dir_of(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, None),
        Err(e) => return Err(unreadable(&cache_info, e)),
    };
    if let Some(dir) = &store_dir
        && let Err(reason) = parse_store_dir_probe(dir)
    {
        return Err(VerifyError::StoreDir {
            path: cache_info,
            store_dir: dir.clone(),
            reason,
        });
    }
    // Entries are independent; hashing NARs dominates, so check them in parallel (order kept).
    narinfos
        .par_iter()
        .map(|narinfo| {
            let bytes = std::fs::read(narinfo).map_err(|e| unreadable(narinfo, e))?;
            Ok(check_narinfo(
                narinfo,
                &bytes,
                store_dir.as_deref(),
                trusted,
                is_cache.then_some(cache_dir.as_path()),
            ))
        })
        .collect()
}

/// The `StoreDir:` a `nix-cache-info` declares.
fn store_dir_of(cache_info: &str) -> Option<String> {
    cache_info.lines().find_map(|line| {
        line.strip_prefix("StoreDir:")
            .map(|dir| dir.trim().to_string())
    })
}

fn parse_store_dir_probe(dir: &str) -> Result<(), String> {
    // nix-narinfo validates store folders when a narinfo is parsed against them;
    // probing here turns a bad nix-cache-info into one error instead of one per entry.
    let probe = format!(
        "StorePath: {dir}/00000000000000000000000000000000-probe\nURL: nar/x\nNarHash: sha256:{}\nNarSize: 1\n",
        nix32::encode(&[0u8; 32])
    );
    parse(probe.as_bytes(), Some(dir)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::CacheSigningKey;

    // Written by `nix copy --to 'file://…?secret-key=…&compression=zstd'` (Nix 2.8) with the
    // key below; the path has one reference, so the fingerprint's reference list is exercised.
    const NIX_NARINFO: &str = "StorePath: /nix/store/b6jwqpym9zb1i5k9ivdisgjr997x2n1d-b
URL: nar/1axij6cjis7w7759sjx8fwh696fg3j2qd3xmwarxq7zgahpirr92.nar.zst
Compression: zstd
FileHash: sha256:1axij6cjis7w7759sjx8fwh696fg3j2qd3xmwarxq7zgahpirr92
FileSize: 131
NarHash: sha256:03szda4lqmvwcszflc6msi6y0i3bs4m3vlvzl5ykzg90r18q6lf3
NarSize: 168
References: 12wigjpizrn8axaqxj288q1b751qmwya-a
Sig: test-1:0KqvfC5WDP8E6WViWFhQl6YkObaPjLJKKsGYjTkyDRi1k3aMI6iKIvSCizvUPzbRMHGXkFKs3nV6oP/MV/70CQ==
CA: text:sha256:01k3yidbgg246qbb5b4xna42s6z13zbb6nmlavzkbnqcpjgpd6aa
";
    const NIX_PUBLIC: &str = "test-1:9nsp1GMhTagjDBfgjwIg5FeC131MiABqnzTEI8W7/Qw=";

    fn nix_key() -> Vec<TrustedPublicKey> {
        trusted_keys(&[CachePublicKey::parse(NIX_PUBLIC).unwrap()])
    }

    fn check(text: &str, trusted: &[TrustedPublicKey]) -> EntryReport {
        check_narinfo(Path::new("x.narinfo"), text.as_bytes(), None, trusted, None)
    }

    #[test]
    fn the_fingerprint_is_the_one_nix_signs() {
        let info: NarInfo = NIX_NARINFO.parse().unwrap();
        assert_eq!(
            info.fingerprint(info.store_dir()),
            "1;/nix/store/b6jwqpym9zb1i5k9ivdisgjr997x2n1d-b;sha256:03szda4lqmvwcszflc6msi6y0i3bs4m3vlvzl5ykzg90r18q6lf3;168;/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a"
        );
    }

    #[test]
    fn accepts_what_nix_signed() {
        let report = check(NIX_NARINFO, &nix_key());
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.signed_by.as_deref(), Some("test-1"));
    }

    #[test]
    fn a_base16_narhash_means_the_same_fingerprint() {
        let hex_hash = hex::encode(
            nix32::decode("03szda4lqmvwcszflc6msi6y0i3bs4m3vlvzl5ykzg90r18q6lf3", 32).unwrap(),
        );
        let text = NIX_NARINFO.replace(
            "sha256:03szda4lqmvwcszflc6msi6y0i3bs4m3vlvzl5ykzg90r18q6lf3",
            &format!("sha256:{hex_hash}"),
        );
        assert!(check(&text, &nix_key()).is_ok());
    }

    #[test]
    fn tampering_with_any_signed_field_breaks_the_signature() {
        for (from, to) in [
            ("NarSize: 168", "NarSize: 169"),
            ("NarHash: sha256:03szda4l", "NarHash: sha256:13szda4l"),
            (
                "References: 12wigjpizrn8axaqxj288q1b751qmwya-a",
                "References: ",
            ),
            ("Sig: test-1:0Kqv", "Sig: test-1:1Kqv"),
            ("StorePath: /nix/store/b6jw", "StorePath: /nix/store/c6jw"),
        ] {
            let text = NIX_NARINFO.replace(from, to);
            assert_ne!(text, NIX_NARINFO);
            let report = check(&text, &nix_key());
            assert_eq!(
                report.findings,
                vec![Finding::BadSignature {
                    names: vec!["test-1".into()]
                }],
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn unsigned_and_foreign_signatures_are_reported_as_such() {
        let unsigned: String = NIX_NARINFO
            .lines()
            .filter(|l| !l.starts_with("Sig:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            check(&unsigned, &nix_key()).findings,
            vec![Finding::Unsigned]
        );

        let other = CacheSigningKey::generate("other-1").unwrap();
        let trusted = trusted_keys(&[other.public_key()]);
        assert_eq!(
            check(NIX_NARINFO, &trusted).findings,
            vec![Finding::UntrustedSigners {
                names: vec!["test-1".into()]
            }]
        );
    }

    #[test]
    fn a_same_named_impostor_key_is_a_bad_signature() {
        let impostor = CacheSigningKey::generate("test-1").unwrap();
        let report = check(NIX_NARINFO, &trusted_keys(&[impostor.public_key()]));
        assert!(matches!(
            report.findings[..],
            [Finding::BadSignature { .. }]
        ));
    }

    #[test]
    fn one_good_signature_among_others_is_enough_like_nix() {
        let other = CacheSigningKey::generate("other-1").unwrap();
        let info: NarInfo = NIX_NARINFO.parse().unwrap();
        let extra = other.sign(&info.fingerprint(info.store_dir()));
        let text = format!("{NIX_NARINFO}Sig: {extra}\n");
        let both = trusted_keys(&[
            other.public_key(),
            CachePublicKey::parse(NIX_PUBLIC).unwrap(),
        ]);
        assert!(check(&text, &both).is_ok());
        assert!(check(&text, &trusted_keys(&[other.public_key()])).is_ok());
    }

    #[test]
    fn kubepki_signatures_verify() {
        let key = CacheSigningKey::generate("ducksnest-cache-1").unwrap();
        let unsigned: String = NIX_NARINFO
            .lines()
            .filter(|l| !l.starts_with("Sig:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let info: NarInfo = unsigned.parse().unwrap();
        let text = format!(
            "{unsigned}Sig: {}\n",
            key.sign(&info.fingerprint(info.store_dir()))
        );
        let report = check(&text, &trusted_keys(&[key.public_key()]));
        assert_eq!(report.signed_by.as_deref(), Some("ducksnest-cache-1"));
    }

    #[test]
    fn garbage_is_unparseable_not_ok() {
        let report = check("hello\n", &nix_key());
        assert!(!report.is_ok());
        assert!(matches!(report.findings[..], [Finding::Unparseable { .. }]));
    }

    #[test]
    fn nar_files_are_checked_against_file_hash_and_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nar")).unwrap();
        let nar = b"pretend compressed nar";
        let hash = nix32::encode(&Sha256::digest(nar));
        let text = format!(
            "StorePath: /nix/store/b6jwqpym9zb1i5k9ivdisgjr997x2n1d-b\nURL: nar/{hash}.nar.zst\nCompression: zstd\nFileHash: sha256:{hash}\nFileSize: {}\nNarHash: sha256:03szda4lqmvwcszflc6msi6y0i3bs4m3vlvzl5ykzg90r18q6lf3\nNarSize: 168\nReferences: \n",
            nar.len()
        );
        let info: NarInfo = text.parse().unwrap();
        assert_eq!(
            check_nar_file(&info, dir.path()),
            vec![Finding::NarMissing {
                url: format!("nar/{hash}.nar.zst")
            }]
        );
        let nar_path = dir.path().join(format!("nar/{hash}.nar.zst"));
        std::fs::write(&nar_path, nar).unwrap();
        assert_eq!(check_nar_file(&info, dir.path()), vec![]);
        std::fs::write(&nar_path, b"pretend compressed naR").unwrap();
        assert!(matches!(
            check_nar_file(&info, dir.path())[..],
            [Finding::FileHash { .. }]
        ));
        std::fs::write(&nar_path, b"short").unwrap();
        assert!(matches!(
            check_nar_file(&info, dir.path())[..],
            [Finding::FileSize { .. }, Finding::FileHash { .. }]
        ));
    }

    #[test]
    fn reads_the_store_dir_from_nix_cache_info() {
        assert_eq!(
            store_dir_of("StoreDir: /nix/store\nWantMassQuery: 1\n").as_deref(),
            Some("/nix/store")
        );
        assert!(parse_store_dir_probe("/nix/store").is_ok());
        assert!(parse_store_dir_probe("relative").is_err());
    }
}
