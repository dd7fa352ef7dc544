//! The API key format `weir_<env>_<key id>_<secret><checksum>` and its parsing.
//!
//! The key id (12 base62 characters) is looked up through a unique index; the secret
//! (32 base62 characters, about 190 bits) is verified against an Argon2id hash. A CRC-32
//! checksum (6 base62 characters) lets typos and random strings be rejected before any
//! database access.

use rand::{distributions::Uniform, Rng};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX: &str = "weir";
const KEY_ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

/// The environment a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Env {
    Dev,
    Staging,
    Prod,
}

impl Env {
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Prod => "prod",
        }
    }
}

impl std::str::FromStr for Env {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Env, KeyError> {
        match s {
            "dev" => Ok(Env::Dev),
            "staging" => Ok(Env::Staging),
            "prod" => Ok(Env::Prod),
            _ => Err(KeyError::BadEnv),
        }
    }
}

impl std::fmt::Display for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("malformed API key")]
    Malformed,
    #[error("environment must be dev, staging or prod")]
    BadEnv,
}

/// A freshly generated key: the full text is shown once, only the parts are stored.
pub struct NewKey {
    pub full: String,
    pub key_id: String,
    pub env: Env,
    pub secret: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// A key split into its parts, with the checksum already verified.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    pub env: Env,
    pub key_id: &'a str,
    pub secret: &'a str,
}

fn random_base62(n: usize) -> String {
    let dist = Uniform::from(0..ALPHABET.len());
    rand::rngs::OsRng
        .sample_iter(dist)
        .take(n)
        .map(|i| char::from(ALPHABET[i]))
        .collect()
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut v = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out
}

impl NewKey {
    pub fn generate(env: Env) -> NewKey {
        let key_id = random_base62(KEY_ID_LEN);
        let secret = random_base62(SECRET_LEN);
        let body = format!("{PREFIX}_{env}_{key_id}_{secret}");
        let sum = checksum(&body);
        let mut full = body;
        full.extend(sum.iter().map(|&b| char::from(b)));
        NewKey {
            full,
            key_id,
            env,
            secret,
        }
    }
}

impl<'a> ParsedKey<'a> {
    /// Splits and checks a presented key without touching the database.
    pub fn parse(full: &'a str) -> Result<ParsedKey<'a>, KeyError> {
        if full.len() > 80 || !full.is_ascii() {
            return Err(KeyError::Malformed);
        }
        let mut parts = full.splitn(4, '_');
        let (Some(prefix), Some(env), Some(key_id), Some(tail)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Malformed);
        };
        if prefix != PREFIX
            || key_id.len() != KEY_ID_LEN
            || tail.len() != SECRET_LEN + CHECKSUM_LEN
            || !key_id
                .bytes()
                .chain(tail.bytes())
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(KeyError::Malformed);
        }
        let env: Env = env.parse().map_err(|_| KeyError::Malformed)?;
        let (secret, sum) = tail.split_at(SECRET_LEN);
        let body = &full[..full.len() - CHECKSUM_LEN];
        if checksum(body) != sum.as_bytes() {
            return Err(KeyError::Malformed);
        }
        Ok(ParsedKey {
            env,
            key_id,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        for env in [Env::Dev, Env::Staging, Env::Prod] {
            let k = NewKey::generate(env);
            assert!(k.full.starts_with(&format!("weir_{env}_")));
            let p = ParsedKey::parse(&k.full).unwrap();
            assert_eq!(p.env, env);
            assert_eq!(p.key_id, k.key_id);
            assert_eq!(p.secret, k.secret);
            assert!(!format!("{k:?}").contains(&k.secret));
        }
    }

    #[test]
    fn typos_and_junk_are_rejected() {
        let k = NewKey::generate(Env::Dev);
        let mut typo = k.full.clone().into_bytes();
        let i = typo.len() - 10;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(ParsedKey::parse(&typo).err(), Some(KeyError::Malformed));
        for junk in [
            "",
            "weir",
            "sk-abc",
            "weir_dev_x_y",
            "weir_test_aaaaaaaaaaaa_",
            "é",
        ] {
            assert!(ParsedKey::parse(junk).is_err(), "{junk}");
        }
        let wrong_env = k.full.replacen("_dev_", "_prod_", 1);
        assert!(ParsedKey::parse(&wrong_env).is_err());
    }
}
