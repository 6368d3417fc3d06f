//! Where the dispatcher enforces the target policy of [`shared::targets`]
//! (one implementation with the gateway's registration check): IP literals
//! are checked before sending, hostnames by [`PolicyResolver`], the resolver
//! of the HTTP client itself, so a DNS answer cannot change between the
//! check and the connect (DNS rebinding). Redirects are not followed at all,
//! and no proxy is used, for the same reason.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
pub use shared::targets::{TargetPolicy, TargetRefused, non_public_kind};

/// The system resolver, failing a lookup when any answer is refused by the
/// policy (refusing outright rather than filtering, so a name that points
/// inside is reported instead of silently half-working).
#[derive(Debug, Clone, Default)]
pub struct PolicyResolver {
    pub policy: Arc<TargetPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Err(refused) = policy.check_addresses(&host, addrs.iter().map(SocketAddr::ip)) {
                // The operator's log says where the name led; the error
                // (the customer's delivery log) does not.
                tracing::warn!(host, ip = %refused.ip, kind = refused.kind, "webhook target refused by policy");
                return Err(Box::new(refused) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(policy: TargetPolicy, name: &str) -> Result<Vec<SocketAddr>, String> {
        let resolver = PolicyResolver {
            policy: Arc::new(policy),
        };
        match resolver.resolve(name.parse().unwrap()).await {
            Ok(addrs) => Ok(addrs.collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_inside() {
        let err = resolve(TargetPolicy::default(), "localhost")
            .await
            .unwrap_err();
        assert!(err.contains("not public"), "{err}");
        assert!(
            !err.contains("loopback") && !err.contains("127.0.0.1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resolver_lets_allowed_cidrs_through() {
        let policy = TargetPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let addrs = resolve(policy, "localhost").await.unwrap();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
