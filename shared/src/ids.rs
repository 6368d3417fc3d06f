//! Prefixed public ids (`gen_…`, `ws_…`, `key_…`, `wh_…`, `msg_…`, `dlv_…`):
//! a UUID underneath, its 32 hex digits after the prefix on the wire. Parsed
//! once at the edge; a string that is not one is simply "not found".

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses `prefix_` + 32 lowercase hex digits, nothing else.
            pub fn parse(s: &str) -> Option<Self> {
                let hex = s.strip_prefix($prefix)?.strip_prefix('_')?;
                if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                Uuid::try_parse(hex).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .examples([concat!($prefix, "_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("not a {} id: {s:?}", $prefix))
                })
            }
        }
    };
}

prefixed_id!(
    /// A generation (`gen_…`).
    GenerationId, "gen");
prefixed_id!(
    /// A workspace (`ws_…`).
    WorkspaceId, "ws");
prefixed_id!(
    /// An API key (`key_…`).
    KeyId, "key");
prefixed_id!(
    /// A webhook endpoint (`wh_…`).
    WebhookId, "wh");
prefixed_id!(
    /// An event, and so a webhook message (`msg_…`): the `webhook-id` header.
    MessageId, "msg");
prefixed_id!(
    /// One delivery of one event to one endpoint (`dlv_…`).
    DeliveryId, "dlv");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_lookalikes() {
        let id = GenerationId::new();
        let s = id.to_string();
        assert!(s.starts_with("gen_") && s.len() == 36);
        assert_eq!(GenerationId::parse(&s), Some(id));
        assert_eq!(WorkspaceId::parse(&s), None);
        assert_eq!(GenerationId::parse(&s.to_uppercase()), None);
        assert_eq!(GenerationId::parse("gen_../../etc/passwd"), None);
        assert_eq!(GenerationId::parse(&format!("{s}0")), None);
        let hyphenated = format!("gen_{}", id.0.hyphenated());
        assert_eq!(GenerationId::parse(&hyphenated), None);
    }
}
