//! The `Stripe-Signature` header: verification of a webhook's raw body (every `v1` value
//! against every configured secret, constant time, 300 s tolerance) and signing, for the fake
//! Stripe and the tests. Mirrors stripe-python's `WebhookSignature.verify_header`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How old a signature's timestamp may be (and how far in the future), in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. Details are for logs; the caller only ever sees a 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature has no integer timestamp")]
    NoTimestamp,
    #[error("Stripe-Signature has no v1 signature")]
    NoV1,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches any webhook secret")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Lower-case hex HMAC-SHA256 of `"{t}.{body}"` under `secret` (the whole `whsec_…` string).
pub fn expected(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC never matches.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The header Stripe would send for `body` signed at `t` with each of `secrets`.
pub fn sign(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for s in secrets {
        header.push_str(",v1=");
        header.push_str(&expected(s, t, body));
    }
    header
}

/// Checks `header` for `body` at Unix time `now` against every secret in `secrets`: accepts
/// when any `v1` value equals the expected signature of any secret and the timestamp is
/// within [`TOLERANCE_SECS`] of `now` (either way). `v0` and unknown schemes are ignored.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut t = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = v.parse::<i64>().ok(),
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::NoTimestamp)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    let mut ok = subtle::Choice::from(0);
    for secret in secrets {
        let want = expected(secret, t, body);
        for sig in &v1 {
            ok |= sig.as_bytes().ct_eq(want.as_bytes());
        }
    }
    if !bool::from(ok) {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"id":"evt_test_1","object":"event","type":"checkout.session.completed"}"#;

    #[test]
    fn reference_vector() {
        assert_eq!(BODY.len(), 72);
        assert_eq!(
            expected("whsec_test_secret", 1_700_000_000, BODY),
            "ca796b857b81e24d595a4c37abf88d2fafb533a32ede6ce4cfc9b0e892a35b08"
        );
    }

    #[test]
    fn accepts_and_refuses() {
        let secrets = vec!["whsec_new".to_owned(), "whsec_test_secret".to_owned()];
        let t = 1_700_000_000;
        let good = sign(&["whsec_test_secret"], t, BODY);
        assert_eq!(verify(Some(&good), BODY, &secrets, t + 10), Ok(()));
        // The second of two v1 values, with v0 and an unknown scheme around.
        let two = format!(
            "t={t},v0=abc,v1={},v1={},x=1",
            expected("whsec_wrong", t, BODY),
            expected("whsec_new", t, BODY)
        );
        assert_eq!(verify(Some(&two), BODY, &secrets, t), Ok(()));
        let wrong = sign(&["whsec_wrong"], t, BODY);
        assert_eq!(
            verify(Some(&wrong), BODY, &secrets, t),
            Err(SignatureError::Mismatch)
        );
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify(Some(&good), &changed, &secrets, t),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, &secrets, t + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&good), BODY, &secrets, t - 301),
            Err(SignatureError::Stale)
        );
        let no_t = format!("v1={}", expected("whsec_test_secret", t, BODY));
        assert_eq!(
            verify(Some(&no_t), BODY, &secrets, t),
            Err(SignatureError::NoTimestamp)
        );
        let v0 = format!("t={t},v0={}", expected("whsec_test_secret", t, BODY));
        assert_eq!(
            verify(Some(&v0), BODY, &secrets, t),
            Err(SignatureError::NoV1)
        );
        assert_eq!(
            verify(Some("garbage"), BODY, &secrets, t),
            Err(SignatureError::NoTimestamp)
        );
        assert_eq!(
            verify(None, BODY, &secrets, t),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some(&good), BODY, &[], t),
            Err(SignatureError::NoSecret)
        );
    }
}
