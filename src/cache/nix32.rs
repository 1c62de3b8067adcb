//! Nix's base-32 ("nix32"): the encoding of `NarHash:`, `FileHash:` and store-path hashes.
//!
//! It is not RFC 4648 base32: the alphabet omits `e`, `o`, `u` and `t`, and the
//! digest is written from its last bit to its first, so `sha256sum` output and
//! a narinfo hash cannot be compared as text. This module only converts bytes;
//! it does not know hash algorithms or the `sha256:` prefix.

/// The 32 characters Nix uses, in digit order.
const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Why a nix32 string does not decode to the expected number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nix32Error {
    #[error(
        "a nix32 hash of {bytes} bytes has {expected} characters, this one has {got}. Fix: copy the whole hash."
    )]
    Length {
        bytes: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "`{character}` is not a nix32 digit (they are 0-9 and a-z without e, o, u, t). Fix: copy the hash exactly."
    )]
    Character { character: char },
    #[error(
        "the hash encodes more bits than {bytes} bytes hold. Fix: the first character is wrong; copy the hash exactly."
    )]
    Overflow { bytes: usize },
}

/// How many nix32 characters encode `bytes` bytes (52 for SHA-256).
pub fn encoded_len(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes * 8 - 1) / 5 + 1
    }
}

/// Encodes `bytes` as Nix writes hashes.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let low = bytes[i] >> j;
        let high = match bytes.get(i + 1) {
            Some(next) if j > 3 => next << (8 - j),
            _ => 0,
        };
        out.push(ALPHABET[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// Decodes a nix32 string that must stand for exactly `bytes` bytes.
pub fn decode(text: &str, bytes: usize) -> Result<Vec<u8>, Nix32Error> {
    let expected = encoded_len(bytes);
    if text.len() != expected {
        return Err(Nix32Error::Length {
            bytes,
            expected,
            got: text.chars().count(),
        });
    }
    let mut out = vec![0u8; bytes];
    for (n, character) in text.chars().rev().enumerate() {
        let digit = ALPHABET
            .iter()
            .position(|c| char::from(*c) == character)
            .ok_or(Nix32Error::Character { character })? as u16;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let shifted = digit << j;
        out[i] |= (shifted & 0xff) as u8;
        let carry = (shifted >> 8) as u8;
        match out.get_mut(i + 1) {
            Some(next) => *next |= carry,
            None if carry != 0 => return Err(Nix32Error::Overflow { bytes }),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from Nix itself: `nix-hash --type sha256 --to-base32 $(printf … | sha256sum)`.
    const SHA256_EMPTY_HEX: &str =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SHA256_EMPTY_NIX32: &str = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
    const SHA256_ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const SHA256_ABC_NIX32: &str = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
    const SHA1_ABC_HEX: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const SHA1_ABC_NIX32: &str = "kpcd173cq987hw957sx6m0868wv3x6d9";

    #[test]
    fn encodes_like_nix() {
        for (hex_digest, nix32) in [
            (SHA256_EMPTY_HEX, SHA256_EMPTY_NIX32),
            (SHA256_ABC_HEX, SHA256_ABC_NIX32),
            (SHA1_ABC_HEX, SHA1_ABC_NIX32),
        ] {
            assert_eq!(encode(&hex::decode(hex_digest).unwrap()), nix32);
        }
    }

    #[test]
    fn decodes_like_nix() {
        assert_eq!(
            hex::encode(decode(SHA256_ABC_NIX32, 32).unwrap()),
            SHA256_ABC_HEX
        );
        assert_eq!(
            hex::encode(decode(SHA1_ABC_NIX32, 20).unwrap()),
            SHA1_ABC_HEX
        );
    }

    #[test]
    fn round_trips_every_length() {
        for len in 1..=64usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), encoded_len(len));
            assert_eq!(decode(&text, len).unwrap(), bytes);
        }
    }

    #[test]
    fn refuses_letters_nix_leaves_out() {
        let bad = SHA256_ABC_NIX32.replacen('1', "e", 1);
        assert_eq!(
            decode(&bad, 32),
            Err(Nix32Error::Character { character: 'e' })
        );
    }

    #[test]
    fn refuses_wrong_length_and_overflow() {
        assert!(matches!(
            decode(&SHA256_ABC_NIX32[1..], 32),
            Err(Nix32Error::Length { .. })
        ));
        // 52 digits hold 260 bits; a leading `z` sets bits beyond the 256 of SHA-256.
        let overflow = format!("z{}", &SHA256_ABC_NIX32[1..]);
        assert_eq!(
            decode(&overflow, 32),
            Err(Nix32Error::Overflow { bytes: 32 })
        );
    }
}
