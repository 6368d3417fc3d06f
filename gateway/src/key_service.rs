//! The gateway's client of the key service: one connection pool, the base
//! URL and the internal token, for verification, key management and
//! last-used batches alike.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub struct KeyServiceClient {
    client: reqwest::Client,
    base: String,
    token: SecretString,
}

impl KeyServiceClient {
    pub fn new(base_url: &str, token: SecretString) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A request to `path` on the key service, authenticated.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose_secret())
    }
}
