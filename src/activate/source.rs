//! This node's part of the bundle, read from disk and checked against the manifest's hashes.
//!
//! Reads `manifest.json`, picks `nodes.<node>` (the node's install plan), and
//! reads every bundle file that plan needs, plus the trust bundle of every
//! authority that issued one of them. Each file's SHA-256 must equal the
//! manifest's. The manifest is the bundle stage's [`Manifest`]; nothing in it
//! is trusted beyond file integrity (the CA pins decide trust, in
//! [`super::verify`]). It decrypts nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ActivateError;
use crate::bundle::manifest::FORMAT;
use crate::bundle::{FileEntry, MANIFEST_FILE, Manifest};
use crate::plan::{Authority, InstallFile, KubeconfigPlan, Part};

/// Everything activation knows about this node before decrypting.
#[derive(Debug)]
pub struct NodeBundle {
    pub cluster: String,
    pub node: String,
    /// The SHA-256 of manifest.json, recorded in the generation.
    pub manifest_sha256: String,
    pub files: Vec<InstallFile>,
    pub kubeconfigs: Vec<KubeconfigPlan>,
    /// Bundle path to bytes, hash-checked: every source plus the issuers' trust bundles.
    pub contents: BTreeMap<String, Vec<u8>>,
    /// Bundle path of a certificate to the authority the manifest says issued it.
    pub issuers: BTreeMap<String, Authority>,
}

impl NodeBundle {
    pub fn bytes(&self, source: &str) -> &[u8] {
        self.contents.get(source).map_or(&[], Vec::as_slice)
    }
}

/// Reads the node's files from `dir` and checks each one's hash.
pub fn read(dir: &Path, node: &str) -> Result<NodeBundle, ActivateError> {
    let path = dir.join(MANIFEST_FILE);
    let raw = fs::read(&path).map_err(|source| ActivateError::ManifestUnreadable {
        path: path.clone(),
        source,
    })?;
    // Check the format first, so a newer bundle gets the version message, not a parse error.
    let format = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
    if let Some(found) = format.filter(|f| *f != u64::from(FORMAT)) {
        return Err(ActivateError::ManifestFormat {
            path,
            found,
            supported: u64::from(FORMAT),
        });
    }
    let manifest = Manifest::from_json(&raw).map_err(|e| ActivateError::ManifestInvalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(ActivateError::ManifestFormat {
            path,
            found: u64::from(manifest.format),
            supported: u64::from(FORMAT),
        });
    }
    let Manifest {
        cluster,
        files: entries,
        mut nodes,
        ..
    } = manifest;
    let Some(node_plan) = nodes.remove(node) else {
        let known = nodes.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(ActivateError::NodeNotInBundle {
            node: node.to_string(),
            path,
            known,
        });
    };
    check_install_names(&path, &node_plan.files, &node_plan.kubeconfigs)?;

    let mut issuers = BTreeMap::new();
    let mut wanted: Vec<String> = node_plan.files.iter().map(|f| f.source.clone()).collect();
    for file in node_plan
        .files
        .iter()
        .filter(|f| f.part == Part::Certificate)
    {
        let Some(FileEntry::Certificate(entry)) = entries.get(&file.source) else {
            continue;
        };
        let authority = entry.issuer;
        issuers.insert(file.source.clone(), authority);
        wanted.push(trust_bundle_file(authority));
    }
    wanted.sort();
    wanted.dedup();

    let mut contents = BTreeMap::new();
    for source in wanted {
        let bytes = read_checked(dir, &source, &entries)?;
        contents.insert(source, bytes);
    }
    Ok(NodeBundle {
        cluster,
        node: node.to_string(),
        manifest_sha256: hex::encode(Sha256::digest(&raw)),
        files: node_plan.files,
        kubeconfigs: node_plan.kubeconfigs,
        contents,
        issuers,
    })
}

fn read_checked(
    dir: &Path,
    source: &str,
    entries: &BTreeMap<String, FileEntry>,
) -> Result<Vec<u8>, ActivateError> {
    let expected = entries
        .get(source)
        .map(|e| {
            e.sha256()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase()
        })
        .ok_or_else(|| ActivateError::NotInManifest {
            file: source.to_string(),
        })?;
    let bytes = fs::read(dir.join(source)).map_err(|e| ActivateError::BundleFileUnreadable {
        file: source.to_string(),
        source: e,
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(ActivateError::HashMismatch {
            file: source.to_string(),
            expected,
            actual,
            size: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Install names become file names in the generation: plain names only, each once.
fn check_install_names(
    path: &Path,
    files: &[InstallFile],
    kubeconfigs: &[KubeconfigPlan],
) -> Result<(), ActivateError> {
    let names = files
        .iter()
        .map(|f| f.install.as_str())
        .chain(kubeconfigs.iter().map(|k| k.install.as_str()));
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains('/')
            && !name.contains('\0')
            && name != "..";
        if !plain || !seen.insert(name) {
            return Err(ActivateError::ManifestInvalid {
                path: PathBuf::from(path),
                reason: format!("install name `{name}` is not a plain, unique file name"),
            });
        }
    }
    Ok(())
}

/// Bundle path of an authority's trust bundle (the manifest contract: `ca/<authority>.crt`).
pub fn trust_bundle_file(authority: Authority) -> String {
    format!("ca/{}.crt", authority.name())
}
