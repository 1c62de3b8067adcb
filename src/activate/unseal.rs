//! Decrypting the node's sealed files with its host identities, all of them before anything is written.
//!
//! Each sealed bundle file (binary age) becomes plaintext held in
//! [`Zeroizing`] memory, through the sealing stage's [`seal::unseal_named`].
//! Failures are told apart: a file sealed to other recipients (another
//! node's key) versus a truncated or corrupted file.
//! Files are decrypted in parallel (each costs a few X25519 operations, or an
//! RSA-OAEP decryption for RSA host keys); the first failure in path order is
//! the one reported, so messages do not depend on scheduling. Nothing here
//! verifies what the plaintext means; that is [`super::verify`].

use rayon::prelude::*;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

use super::ActivateError;
use super::source::NodeBundle;
use crate::plan::Part;
use crate::seal::{self, Identities, SealError};

/// Plaintext of each sealed source, by bundle path.
pub type Plaintexts = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Decrypts every sealed file the node installs.
pub fn unseal_all(
    bundle: &NodeBundle,
    identities: &Identities,
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
    identities: &Identities,
) -> Result<Zeroizing<Vec<u8>>, ActivateError> {
    seal::unseal_named(sealed, identities, name).map_err(|error| match error {
        SealError::NoMatchingIdentity { identities, .. } => ActivateError::NotSealedToThisHost {
            file: name.to_string(),
            identities: format!("tried {identities}"),
        },
        SealError::Corrupt { reason, .. } => ActivateError::SealedFileCorrupt {
            file: name.to_string(),
            reason: format!("age cannot decrypt it ({reason})"),
        },
        other => ActivateError::SealedFileCorrupt {
            file: name.to_string(),
            reason: other.to_string(),
        },
    })
}
