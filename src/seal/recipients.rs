//! Who a key is sealed to: node host keys and operator recipients, parsed once per run.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::SealError;
use crate::inventory::{Inventory, Recipient, RecipientKind};

/// A parsed age recipient.
enum AgeRecipient {
    Ssh(age::ssh::Recipient),
    X25519(age::x25519::Recipient),
}

impl AgeRecipient {
    fn parse(recipient: &Recipient, owner: &str) -> Result<AgeRecipient, SealError> {
        let bad = |reason: String| SealError::BadRecipient {
            owner: owner.to_string(),
            reason,
        };
        match recipient.kind {
            RecipientKind::Age => age::x25519::Recipient::from_str(&recipient.text)
                .map(AgeRecipient::X25519)
                .map_err(|e| bad(e.to_string())),
            RecipientKind::SshEd25519 | RecipientKind::SshRsa { .. } => {
                age::ssh::Recipient::from_str(&recipient.text)
                    .map(AgeRecipient::Ssh)
                    .map_err(|e| bad(format!("{e:?}")))
            }
        }
    }

    fn as_dyn(&self) -> &dyn age::Recipient {
        match self {
            AgeRecipient::Ssh(r) => r,
            AgeRecipient::X25519(r) => r,
        }
    }
}

/// One recipient: its text (all the manifest needs) and, once something is sealed to it, its parsed key.
struct Entry {
    owner: String,
    recipient: Recipient,
    parsed: OnceLock<AgeRecipient>,
}

impl Entry {
    fn new(owner: String, recipient: &Recipient) -> Entry {
        Entry {
            owner,
            recipient: recipient.clone(),
            parsed: OnceLock::new(),
        }
    }

    fn text(&self) -> &str {
        &self.recipient.text
    }

    /// The age recipient, parsed on first use (a no-op run never pays for it).
    fn parsed(&self) -> Result<&AgeRecipient, SealError> {
        if let Some(parsed) = self.parsed.get() {
            return Ok(parsed);
        }
        let parsed = AgeRecipient::parse(&self.recipient, &self.owner)?;
        let _ = self.parsed.set(parsed);
        self.parsed.get().ok_or_else(|| SealError::BadRecipient {
            owner: self.owner.clone(),
            reason: "it could not be cached".into(),
        })
    }
}

/// Every recipient of the inventory, parsed once: node host keys by node, operator keys by operator.
pub struct Keyring {
    nodes: BTreeMap<String, Entry>,
    operators: Vec<(String, Entry)>,
}

/// What the manifest records about a sealed file's recipients (pure data, no keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientSummary {
    /// `node:<name>` and `operator:<name>` labels, sorted, one per holder.
    pub labels: Vec<String>,
    /// hex SHA-256 of the sorted recipient key texts, joined by newlines.
    pub sha256: String,
}

/// The recipients of one sealed file.
pub struct RecipientSet<'k> {
    pub summary: RecipientSummary,
    recipients: Vec<&'k AgeRecipient>,
}

impl Keyring {
    /// Every host key and operator recipient of `inventory` (already checked by
    /// [`Inventory::load`]); each is parsed for age once, when first sealed to.
    pub fn from_inventory(inventory: &Inventory) -> Result<Keyring, SealError> {
        let nodes = inventory
            .host_keys
            .iter()
            .map(|(node, host_key)| {
                (
                    node.clone(),
                    Entry::new(format!("node `{node}`"), &host_key.recipient),
                )
            })
            .collect();
        let operators = inventory
            .operator_recipients
            .iter()
            .flat_map(|(operator, recipients)| {
                recipients.iter().map(move |r| {
                    (
                        operator.clone(),
                        Entry::new(format!("operator `{operator}`"), r),
                    )
                })
            })
            .collect();
        Ok(Keyring { nodes, operators })
    }

    /// The labels and digest a key held by `holders` (plus every operator) is sealed to.
    pub fn summary(&self, holders: &[String]) -> RecipientSummary {
        let mut labels: Vec<String> = holders.iter().map(|n| format!("node:{n}")).collect();
        let mut texts: Vec<&str> = holders
            .iter()
            .filter_map(|n| self.nodes.get(n).map(Entry::text))
            .collect();
        for (operator, entry) in &self.operators {
            labels.push(format!("operator:{operator}"));
            texts.push(entry.text());
        }
        labels.sort();
        labels.dedup();
        texts.sort_unstable();
        texts.dedup();
        RecipientSummary {
            labels,
            sha256: hex::encode(Sha256::digest(texts.join("\n").as_bytes())),
        }
    }

    /// The recipient set of a key held by `holders` and every operator; `what` names the key in errors.
    pub fn recipients_for(
        &self,
        holders: &[String],
        what: &str,
    ) -> Result<RecipientSet<'_>, SealError> {
        let mut recipients = Vec::with_capacity(holders.len() + self.operators.len());
        for node in holders {
            let entry = self
                .nodes
                .get(node)
                .ok_or_else(|| SealError::UnknownNode { node: node.clone() })?;
            recipients.push(entry.parsed()?);
        }
        for (_, entry) in &self.operators {
            recipients.push(entry.parsed()?);
        }
        if recipients.is_empty() {
            return Err(SealError::NoRecipients {
                what: what.to_string(),
            });
        }
        Ok(RecipientSet {
            summary: self.summary(holders),
            recipients,
        })
    }
}

impl RecipientSet<'_> {
    /// Encrypts `plaintext` to every recipient of the set, as binary age.
    pub fn seal(&self, plaintext: &[u8], what: &str) -> Result<Vec<u8>, SealError> {
        super::encrypt(plaintext, self.recipients.iter().map(|r| r.as_dyn()), what)
    }
}
