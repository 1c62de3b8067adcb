//! The non-x509 secrets: the service-account signing key pair and the encryption-at-rest config.

use zeroize::Zeroizing;

use super::{IssueError, PrivateKey};
use crate::inventory::KeyAlgorithm;
use crate::plan::{SecretKind, SecretPlan};

/// The key pair the API server signs service-account tokens with.
#[derive(Debug)]
pub struct ServiceAccountKey {
    pub key: PrivateKey,
    /// PEM "PUBLIC KEY" (SubjectPublicKeyInfo), for `--service-account-key-file`.
    pub public_pem: String,
}

/// A new service-account key pair of `algorithm` (kube-apiserver accepts RSA and ECDSA).
pub fn service_account_key(algorithm: KeyAlgorithm) -> Result<ServiceAccountKey, IssueError> {
    let key = PrivateKey::generate(algorithm)?;
    let spki = key
        .public_key_der()
        .map_err(|e| IssueError::KeyGeneration {
            algorithm: algorithm.name().to_string(),
            reason: e.to_string(),
        })?;
    Ok(ServiceAccountKey {
        public_pem: crate::pem::encode("PUBLIC KEY", &spki).to_string(),
        key,
    })
}

/// An EncryptionConfiguration with a fresh 32-byte secretbox key, then `identity` to read old data.
pub fn encryption_config() -> Zeroizing<Vec<u8>> {
    use base64::Engine;
    use rand::RngCore;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&key[..]));
    let mut out = Zeroizing::new(Vec::with_capacity(512));
    for line in [
        "apiVersion: apiserver.config.k8s.io/v1",
        "kind: EncryptionConfiguration",
        "resources:",
        "  - resources:",
        "      - secrets",
        "    providers:",
        "      - secretbox:",
        "          keys:",
        "            - name: key1",
    ] {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"              secret: ");
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(b"\n      - identity: {}\n");
    out
}

/// A secret's plaintext (sealed into `key_file`) and, for key pairs, its public half.
pub struct IssuedSecret {
    pub id: String,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub public_pem: Option<String>,
}

/// Makes the secret `plan` describes.
pub fn issue_secret(
    plan: &SecretPlan,
    algorithm: KeyAlgorithm,
) -> Result<IssuedSecret, IssueError> {
    Ok(match plan.kind {
        SecretKind::ServiceAccount => {
            let pair = service_account_key(algorithm)?;
            IssuedSecret {
                id: plan.id.clone(),
                plaintext: Zeroizing::new(pair.key.to_pem().as_bytes().to_vec()),
                public_pem: Some(pair.public_pem),
            }
        }
        SecretKind::EncryptionConfig => IssuedSecret {
            id: plan.id.clone(),
            plaintext: encryption_config(),
            public_pem: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_config_is_valid_yaml_with_a_32_byte_key_then_identity() {
        let config = encryption_config();
        let doc: serde_yaml::Value = serde_yaml::from_slice(&config).unwrap();
        assert_eq!(doc["apiVersion"], "apiserver.config.k8s.io/v1");
        assert_eq!(doc["kind"], "EncryptionConfiguration");
        let resource = &doc["resources"][0];
        assert_eq!(resource["resources"][0], "secrets");
        let secret = resource["providers"][0]["secretbox"]["keys"][0]["secret"]
            .as_str()
            .unwrap();
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap();
        assert_eq!(key.len(), 32);
        assert!(resource["providers"][1]["identity"].is_mapping());
    }
}
