//! Private keys: generation for every supported algorithm, PKCS#8 in zeroizing memory.
//!
//! ring generates the ECDSA keys; ring cannot generate RSA, so RSA keys come
//! from the `rsa` crate, exported as PKCS#8 and loaded into rcgen like any other.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use rcgen::{PublicKeyData, SignatureAlgorithm};
use zeroize::Zeroizing;

use super::IssueError;
use crate::inventory::KeyAlgorithm;

/// A private key as PKCS#8 DER; the bytes are wiped when it (and every clone) is dropped.
#[derive(Clone)]
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn signature_algorithm(algorithm: KeyAlgorithm) -> &'static SignatureAlgorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => &PKCS_RSA_SHA256,
    }
}

fn rsa_bits(algorithm: KeyAlgorithm) -> Option<usize> {
    match algorithm {
        KeyAlgorithm::Rsa2048 => Some(2048),
        KeyAlgorithm::Rsa3072 => Some(3072),
        KeyAlgorithm::Rsa4096 => Some(4096),
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => None,
    }
}

impl PrivateKey {
    /// A fresh random key of `algorithm`.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, IssueError> {
        Self::generate_with_pair(algorithm).map(|(key, _)| key)
    }

    /// A fresh key and its rcgen key pair, without parsing the key a second time.
    pub(crate) fn generate_with_pair(
        algorithm: KeyAlgorithm,
    ) -> Result<(PrivateKey, KeyPair), IssueError> {
        let failed = |reason: String| IssueError::KeyGeneration {
            algorithm: algorithm.name().to_string(),
            reason,
        };
        match rsa_bits(algorithm) {
            Some(bits) => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
                    .map_err(|e| failed(e.to_string()))?;
                let document = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
                let key = PrivateKey {
                    algorithm,
                    pkcs8: Zeroizing::new(document.as_bytes().to_vec()),
                };
                let pair = key.key_pair().map_err(|e| failed(e.to_string()))?;
                Ok((key, pair))
            }
            None => {
                let pair = KeyPair::generate_for(signature_algorithm(algorithm))
                    .map_err(|e| failed(e.to_string()))?;
                let key = PrivateKey {
                    algorithm,
                    pkcs8: Zeroizing::new(pair.serialize_der()),
                };
                Ok((key, pair))
            }
        }
    }

    /// Reads a PEM "PRIVATE KEY" (PKCS#8), as this module writes them; `owner` names it in errors.
    pub fn from_pem(pem: &[u8], owner: &str) -> Result<PrivateKey, IssueError> {
        let bad = |reason: String| IssueError::BadAuthorityKey {
            authority: owner.to_string(),
            reason,
        };
        let text = std::str::from_utf8(pem).map_err(|_| bad("it is not PEM text".into()))?;
        let der = crate::pem::decode(text, "PRIVATE KEY")
            .map_err(|e| bad(format!("{e} (kubepki keys are PKCS#8)")))?;
        let pair = KeyPair::try_from(der.as_slice()).map_err(|e| bad(e.to_string()))?;
        let algorithm = if pair.algorithm() == &PKCS_ECDSA_P256_SHA256 {
            KeyAlgorithm::EcdsaP256
        } else if pair.algorithm() == &PKCS_ECDSA_P384_SHA384 {
            KeyAlgorithm::EcdsaP384
        } else if pair.algorithm() == &PKCS_RSA_SHA256 {
            use rsa::pkcs8::DecodePrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| bad(e.to_string()))?;
            match key.size() * 8 {
                2048 => KeyAlgorithm::Rsa2048,
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                bits => return Err(bad(format!("RSA keys of {bits} bits are not supported"))),
            }
        } else {
            return Err(bad(
                "only ECDSA P-256/P-384 and RSA keys are supported".into()
            ));
        };
        Ok(PrivateKey {
            algorithm,
            pkcs8: der,
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key as PEM "PRIVATE KEY" (PKCS#8): what kubernetes, etcd and openssl read.
    pub fn to_pem(&self) -> Zeroizing<String> {
        crate::pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The PKCS#8 DER bytes.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The rcgen key pair, to sign with or to take the public key from.
    pub fn key_pair(&self) -> Result<KeyPair, rcgen::Error> {
        KeyPair::from_pkcs8_der_and_sign_algo(
            &self.pkcs8.as_slice().into(),
            signature_algorithm(self.algorithm),
        )
    }

    /// The SubjectPublicKeyInfo DER of the public half.
    pub fn public_key_der(&self) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key_pair()?.subject_public_key_info())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_algorithm_and_the_key() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let again = PrivateKey::from_pem(key.to_pem().as_bytes(), "test").unwrap();
            assert_eq!(again.algorithm(), algorithm);
            assert_eq!(again.pkcs8_der(), key.pkcs8_der());
        }
    }
}
