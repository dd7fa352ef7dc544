//! Upstream API keys at rest: sealed with XChaCha20-Poly1305 under a key derived (HKDF-SHA256)
//! from the instance secret, so the database file alone never yields a usable key. The
//! instance secret lives outside the database (`WEIR_SECRET`, else `WEIR_DATA_DIR/secret`)
//! and is shared by replicas; rotating it makes stored keys unreadable (re-enter them).

use base64::Engine;
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::RngCore;

/// The version tag in front of every sealed key, so that a later scheme can coexist.
const PREFIX: &str = "v1:";
/// Binds ciphertexts to their purpose: a value sealed for another use does not open here.
const AAD: &[u8] = b"weir channel api key";
const NONCE_LEN: usize = 24;

/// Seals and opens upstream keys. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct KeyCipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCipher(…)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The stored value is damaged, or was sealed under another instance secret.
    #[error("the stored upstream key cannot be decrypted (was the instance secret changed?)")]
    Undecryptable,
    #[error("the upstream key could not be encrypted")]
    Seal,
}

impl KeyCipher {
    /// Derives the channel-key cipher from the instance secret.
    pub fn from_secret(secret: &[u8]) -> KeyCipher {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"weir/channel-api-key/v1"), secret);
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit (255 × 32), so expand cannot fail.
        if hk.expand(b"xchacha20poly1305 key", &mut okm).is_err() {
            okm = [0u8; 32];
        }
        KeyCipher {
            aead: XChaCha20Poly1305::new(&okm.into()),
        }
    }

    /// Encrypts `key` with a fresh random nonce: `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, key: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key.as_bytes(),
                    aad: AAD,
                },
            )
            .map_err(|_| KeyError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        ))
    }

    /// Decrypts a value written by [`seal`](Self::seal).
    pub fn open(&self, stored: &str) -> Result<String, KeyError> {
        let raw = stored
            .strip_prefix(PREFIX)
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b)
                    .ok()
            })
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or(KeyError::Undecryptable)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let pt = self
            .aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
            .map_err(|_| KeyError::Undecryptable)?;
        String::from_utf8(pt).map_err(|_| KeyError::Undecryptable)
    }
}

/// The last four characters of a key, the only part ever shown.
pub fn last4(key: &str) -> String {
    let n = key.chars().count();
    key.chars().skip(n.saturating_sub(4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let c = KeyCipher::from_secret(b"0123456789abcdef0123456789abcdef");
        let sealed = c.seal("sk-live-very-secret-1234").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("very-secret"));
        assert_ne!(
            sealed,
            c.seal("sk-live-very-secret-1234").unwrap(),
            "fresh nonce"
        );
        assert_eq!(c.open(&sealed).unwrap(), "sk-live-very-secret-1234");
        let other = KeyCipher::from_secret(b"another instance secret, 32 bytes!");
        assert_eq!(other.open(&sealed), Err(KeyError::Undecryptable));
        let mut bad = sealed.clone();
        bad.pop();
        bad.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(c.open(&bad), Err(KeyError::Undecryptable));
        assert_eq!(c.open("plain"), Err(KeyError::Undecryptable));
        assert_eq!(format!("{c:?}"), "KeyCipher(…)");
        assert_eq!(last4("sk-abcd1234"), "1234");
        assert_eq!(last4("ab"), "ab");
    }
}
