//! Unsubscribe tokens: `TOKEN` in `{site_url}unsubscribe/TOKEN` names a
//! digest and a reader and is signed with HMAC-SHA256, so it cannot be
//! guessed or forged for another address. The key comes from
//! `GAZETTE_SECRET` in the environment, else one generated on first use and
//! kept in the store (every instance on one database shares it). Pure:
//! the store is only asked for the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{Store, StoreError};

/// The environment variable holding the key unsubscribe links are signed with.
pub const SECRET_ENV: &str = "GAZETTE_SECRET";

/// The shortest `GAZETTE_SECRET` accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Why no signer could be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `GAZETTE_SECRET` is set but too short to be a key.
    #[error(
        "{SECRET_ENV} must be at least {MIN_SECRET_LEN} characters long (it signs unsubscribe links); unset it to use a key kept in the store"
    )]
    TooShort,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signs and checks unsubscribe tokens.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The digest's name.
    pub digest: String,
    /// The reader's address, lower-case.
    pub recipient: String,
}

impl Signer {
    /// A signer with this key.
    pub fn new(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// The signer of this installation: `GAZETTE_SECRET`, else the store's
    /// key (made now when there is none).
    pub async fn for_store(store: &Store) -> Result<Signer, KeyError> {
        if let Ok(secret) = std::env::var(SECRET_ENV) {
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyError::TooShort);
            }
            return Ok(Signer::new(secret.as_bytes()));
        }
        let fresh: [u8; 32] = rand::random();
        let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        let key = store.unsubscribe_key(&fresh).await?;
        Ok(Signer::new(key.as_bytes()))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"gazette unsubscribe v1\0");
        mac.update(payload);
        mac
    }

    /// The token of `recipient` (compared case-insensitively) in `digest`:
    /// the two, base64url, a dot, and their HMAC-SHA256, base64url.
    pub fn token(&self, digest: &str, recipient: &str) -> String {
        let payload = format!("{digest}\n{}", recipient.to_lowercase());
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// What `token` says, when it was signed with this key (checked in
    /// constant time); `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claim> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&payload).verify_slice(&tag).ok()?;
        let text = String::from_utf8(payload).ok()?;
        let (digest, recipient) = text.split_once('\n')?;
        Some(Claim {
            digest: digest.to_string(),
            recipient: recipient.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_cannot_be_forged_or_moved() {
        let s = Signer::new(b"0123456789abcdef-key");
        let t = s.token("china", "Alice@Example.org");
        assert_eq!(
            s.verify(&t),
            Some(Claim {
                digest: "china".into(),
                recipient: "alice@example.org".into()
            })
        );
        // Another key, another address with the same signature, a flipped
        // signature byte, garbage: nothing.
        assert_eq!(Signer::new(b"another key of length").verify(&t), None);
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode("china\nbob@example.org"));
        assert_eq!(s.verify(&forged), None);
        let other_digest = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode("board\nalice@example.org")
        );
        assert_eq!(s.verify(&other_digest), None);
        let mut bytes = t.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.verify(&String::from_utf8(bytes).unwrap()), None);
        for junk in ["", ".", "x", "a.b", "..", "%2e"] {
            assert_eq!(s.verify(junk), None, "{junk}");
        }
        // URL-safe: no character a path segment would need escaped.
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{t}"
        );
    }
}
