//! Decrypting the node's sealed files with its host identities, all of them before anything is written.
//!
//! Each sealed bundle file (binary age) becomes plaintext held in
//! [`Zeroizing`] memory. Failures are told apart: a file sealed to other
//! recipients (another node's key) versus a truncated or corrupted file.
//! Files are decrypted in parallel (each costs a few X25519 operations, or an
//! RSA-OAEP decryption for RSA host keys); the first failure in path order is
//! the one reported, so messages do not depend on scheduling. Nothing here
//! verifies what the plaintext means; that is [`super::verify`].

use std::collections::BTreeMap;
use std::io::Read;

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::ActivateError;
use super::identity::{self, HostIdentity};
use super::source::NodeBundle;
use crate::plan::Part;

/// Plaintext of each sealed source, by bundle path.
pub type Plaintexts = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Decrypts every sealed file the node installs.
pub fn unseal_all(
    bundle: &NodeBundle,
    identities: &[HostIdentity],
) -> Result<Plaintexts, ActivateError> {
    let mut sources: Vec<&str> = bundle
        .files
        .iter()
        .filter(|f| f.part == Part::Secret)
        .map(|f| f.source.as_str())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let results: Vec<Result<Zeroizing<Vec<u8>>, ActivateError>> = sources
        .par_iter()
        .map(|source| unseal(source, bundle.bytes(source), identities))
        .collect();
    let mut out = Plaintexts::new();
    for (source, result) in sources.into_iter().zip(results) {
        out.insert(source.to_string(), result?);
    }
    Ok(out)
}

/// Decrypts one age file; `name` is its bundle path, for messages.
pub fn unseal(
    name: &str,
    sealed: &[u8],
    identities: &[HostIdentity],
) -> Result<Zeroizing<Vec<u8>>, ActivateError> {
    let corrupt = |reason: String| ActivateError::SealedFileCorrupt {
        file: name.to_string(),
        reason,
    };
    let decryptor = age::Decryptor::new_buffered(sealed).map_err(|e| match e {
        age::DecryptError::UnknownFormat => corrupt("it is not an age file".into()),
        other => corrupt(format!("the age header cannot be read ({other})")),
    })?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| &i.key as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => ActivateError::NotSealedToThisHost {
                file: name.to_string(),
                identities: identity::describe(identities),
            },
            age::DecryptError::InvalidMac => {
                corrupt("the age header MAC does not match (header altered)".into())
            }
            other => corrupt(format!("age refuses it ({other})")),
        })?;
    let mut plain = Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut plain)
        .map_err(|e| corrupt(format!("the encrypted payload does not authenticate ({e})")))?;
    Ok(plain)
}
