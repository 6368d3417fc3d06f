//! HMAC signatures: Standard Webhooks message signing
//! (<https://www.standardwebhooks.com/>, docs/api.md "Webhooks") and the signed,
//! expiring audio URLs that the gateway serves and the dispatcher mints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("webhook secret is not whsec_ followed by base64")]
    MalformedSecret,
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_webhook_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{WEBHOOK_SECRET_PREFIX}{}", B64.encode(key))
}

fn webhook_key(secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret.strip_prefix(WEBHOOK_SECRET_PREFIX).unwrap_or(secret);
    B64.decode(encoded)
        .map_err(|_| SigningError::MalformedSecret)
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign_webhook(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let key = webhook_key(secret)?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| SigningError::MalformedSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header value: one signature per live secret,
/// space-separated (the old secret too, during a rotation's overlap).
pub fn webhook_signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let signatures: Result<Vec<String>, SigningError> = secrets
        .into_iter()
        .map(|s| sign_webhook(s, msg_id, timestamp, body))
        .collect();
    Ok(signatures?.join(" "))
}

/// The MAC of an audio URL: hex HMAC-SHA256 over "{generation id}.{expires}".
fn audio_mac(key: &[u8], generation_id: &str, expires: i64) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(generation_id.as_bytes());
    mac.update(b".");
    mac.update(expires.to_string().as_bytes());
    mac
}

/// `{base}/v1/audio/{generation id}?expires={unix}&signature={hex}`.
pub fn audio_url(base_url: &str, key: &[u8], generation_id: &str, expires: i64) -> String {
    let signature = hex::encode(
        audio_mac(key, generation_id, expires)
            .finalize()
            .into_bytes(),
    );
    format!(
        "{}/v1/audio/{generation_id}?expires={expires}&signature={signature}",
        base_url.trim_end_matches('/')
    )
}

/// What a presented audio URL amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioUrlCheck {
    Valid,
    /// Signed by us, but `expires` is past.
    Expired,
    /// Not signed by us (tampered, truncated, or for something else).
    Invalid,
}

/// Checks the signature (in constant time), then the expiry.
pub fn verify_audio_url(
    key: &[u8],
    generation_id: &str,
    expires: i64,
    signature_hex: &str,
    now: i64,
) -> AudioUrlCheck {
    let Ok(signature) = hex::decode(signature_hex) else {
        return AudioUrlCheck::Invalid;
    };
    if audio_mac(key, generation_id, expires)
        .verify_slice(&signature)
        .is_err()
    {
        AudioUrlCheck::Invalid
    } else if now > expires {
        AudioUrlCheck::Expired
    } else {
        AudioUrlCheck::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn several_secrets_give_space_separated_signatures() {
        let (a, b) = (generate_webhook_secret(), generate_webhook_secret());
        let header = webhook_signature_header([a.as_str(), b.as_str()], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign_webhook(&a, "msg_1", 1, b"{}").unwrap());
    }

    #[test]
    fn malformed_secret_is_an_error() {
        assert_eq!(
            sign_webhook("whsec_***", "m", 1, b""),
            Err(SigningError::MalformedSecret)
        );
    }

    #[test]
    fn audio_urls_verify_until_they_expire_and_not_when_tampered() {
        use AudioUrlCheck::*;
        let key = b"0123456789abcdef0123";
        let url = audio_url("http://h/", key, "gen_1", 1000);
        let sig = url.rsplit("signature=").next().unwrap();
        assert_eq!(verify_audio_url(key, "gen_1", 1000, sig, 999), Valid);
        assert_eq!(verify_audio_url(key, "gen_1", 1000, sig, 1000), Valid);
        assert_eq!(verify_audio_url(key, "gen_1", 1000, sig, 1001), Expired);
        assert_eq!(verify_audio_url(key, "gen_2", 1000, sig, 999), Invalid);
        assert_eq!(verify_audio_url(key, "gen_1", 1001, sig, 999), Invalid);
        assert_eq!(
            verify_audio_url(b"another key......", "gen_1", 1000, sig, 999),
            Invalid
        );
        assert_eq!(verify_audio_url(key, "gen_1", 1000, "zz", 999), Invalid);
    }
}
