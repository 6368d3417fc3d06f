//! The API key format of docs/api.md: `vp_` + 40 base62 characters, the last 6 a
//! checksum of the first 34, so a mistyped or made-up key is refused without
//! a database lookup and a secret scanner can tell a real key from noise.
//! Only the SHA-256 of a secret is ever stored or sent between services.

use rand::Rng;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "vp_";

/// Every scope of docs/api.md; a bootstrap key holds them all.
pub const SCOPES: [&str; 7] = [
    "generations:read",
    "generations:write",
    "voices:read",
    "voices:write",
    "webhooks:manage",
    "keys:manage",
    "usage:read",
];

/// Whether `s` is a scope of docs/api.md.
pub fn is_scope(s: &str) -> bool {
    SCOPES.contains(&s)
}
const BODY_LEN: usize = 34;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of the secret shown as its display prefix (`vp_` + 8).
const DISPLAY_LEN: usize = KEY_PREFIX.len() + 8;

/// A freshly generated secret: shown once, then only its hash is kept.
pub struct NewSecret {
    pub secret: String,
    pub sha256: [u8; 32],
    pub display_prefix: String,
}

/// A new random key (34 × log2(62) ≈ 202 bits of entropy).
pub fn generate() -> NewSecret {
    let mut rng = rand::rng();
    let body: String = (0..BODY_LEN)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect();
    let secret = format!("{KEY_PREFIX}{body}{}", checksum(&body));
    NewSecret {
        sha256: hash(&secret),
        display_prefix: display_prefix(&secret),
        secret,
    }
}

/// Whether `s` has the shape of a key and its checksum matches.
pub fn is_well_formed(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, sum) = rest.split_at(BODY_LEN);
    checksum(body) == sum
}

/// SHA-256 of the whole secret: what `api_keys.secret_sha256` holds.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The part of a key that may be shown again (`vp_` and 8 characters).
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_LEN).collect()
}

/// Six base62 digits of the first 32 bits of SHA-256 over the body
/// (62^6 > 2^32, so every value fits).
fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed() {
        for _ in 0..100 {
            let k = generate();
            assert_eq!(k.secret.len(), 43);
            assert!(is_well_formed(&k.secret), "{}", k.secret);
            assert_eq!(k.sha256, hash(&k.secret));
            assert!(k.secret.starts_with(&k.display_prefix));
        }
    }

    #[test]
    fn a_single_typo_breaks_the_checksum() {
        let k = generate().secret;
        let mut chars: Vec<char> = k.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(!is_well_formed(&typo));
    }

    #[test]
    fn other_shapes_are_refused() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("vp_"));
        assert!(!is_well_formed(
            "sk_0123456789012345678901234567890123456789"
        ));
        let k = generate().secret;
        assert!(!is_well_formed(&k[..42]));
        assert!(!is_well_formed(&format!("{k}x")));
        assert!(
            !is_well_formed(&k.replacen('A', "-", 1).replacen('b', "-", 1))
                || !k.contains(['A', 'b'])
        );
    }
}
