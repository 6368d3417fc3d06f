//! Times on the wire: RFC 3339 in UTC to the second with `Z`
//! (`2026-05-29T12:00:00Z`), as docs/api.md shows them, everywhere — in API
//! answers and in webhook payloads alike.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `#[serde(serialize_with = "shared::time::serialize")]`
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

/// `#[serde(serialize_with = "shared::time::serialize_opt")]`
pub fn serialize_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format(*t)),
        None => s.serialize_none(),
    }
}

/// `#[serde(with = "shared::time::rfc3339")]`: to the second, and back.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        super::serialize(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// `#[serde(with = "shared::time::rfc3339_opt")]`: the same for an `Option`.
pub mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_opt(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn formats_like_the_api_examples() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 5, 29, 12, 0, 3).unwrap()
            + chrono::Duration::milliseconds(450);
        assert_eq!(super::format(t), "2026-05-29T12:00:03Z");
    }
}
