//! PEM armour: the textual wrapping every key and certificate kubepki handles travels in.
//!
//! The DER inside is kept in zeroizing buffers on both ways, because private keys go
//! through here too. Only the first block of a text is read; multi-certificate trust
//! bundles are walked by x509-parser, which iterates blocks itself. This module says what a
//! text claims to be; whether its content is a valid key is left to that type's parser.

use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("it is not PEM text (no `-----BEGIN …-----` line)")]
    NotPem,
    #[error("it is a PEM \"{found}\", not the \"{expected}\" expected")]
    WrongLabel { found: String, expected: String },
    #[error("its PEM \"{label}\" block has no matching END line (truncated?)")]
    Unterminated { label: String },
    #[error("its PEM body is not valid base64: {0}")]
    Base64(String),
}

/// The label of the first PEM block (`PRIVATE KEY`, `RSA PRIVATE KEY`, `OPENSSH PRIVATE KEY`…).
pub fn label(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
}

/// The DER of the first block, which must carry `expected` as its label.
pub fn decode(text: &str, expected: &str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let found = label(text).ok_or(PemError::NotPem)?;
    if found != expected {
        return Err(PemError::WrongLabel {
            found: found.to_string(),
            expected: expected.to_string(),
        });
    }
    let begin = format!("-----BEGIN {expected}-----");
    let end = format!("-----END {expected}-----");
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1);
    let mut body = Zeroizing::new(String::new());
    loop {
        match lines.next() {
            Some(line) if line == end => break,
            Some(line) => body.push_str(line),
            None => {
                return Err(PemError::Unterminated {
                    label: expected.to_string(),
                });
            }
        }
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| PemError::Base64(e.to_string()))
}

/// PEM armour of DER bytes with `label`, 64 columns, in a zeroizing buffer.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::Engine;
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_only_the_first_block() {
        let mut text = encode("PRIVATE KEY", b"first").to_string();
        text.push_str(&encode("PRIVATE KEY", b"second"));
        assert_eq!(label(&text), Some("PRIVATE KEY"));
        assert_eq!(decode(&text, "PRIVATE KEY").unwrap().as_slice(), b"first");
    }

    #[test]
    fn refuses_another_label_a_truncated_block_and_plain_text() {
        let rsa = encode("RSA PRIVATE KEY", b"k");
        assert_eq!(
            decode(&rsa, "PRIVATE KEY"),
            Err(PemError::WrongLabel {
                found: "RSA PRIVATE KEY".into(),
                expected: "PRIVATE KEY".into()
            })
        );
        let whole = encode("PRIVATE KEY", &[7; 100]);
        let truncated = whole.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(matches!(
            decode(&truncated, "PRIVATE KEY"),
            Err(PemError::Unterminated { .. })
        ));
        assert_eq!(decode("hello", "PRIVATE KEY"), Err(PemError::NotPem));
        // A label mentioned inside text is not the document's label (built, so that secret
        // scanners do not take this line for a committed key).
        let mention = format!("see -----BEGIN {}----- below", "PRIVATE KEY");
        assert_eq!(label(&mention), None);
    }
}
