//! Payloads: values as Temporal carries them, encoding metadata plus bytes.
//!
//! Every layer passes [`Payload`]s through unchanged; only the edges (the CLI,
//! the HTTP API) turn JSON values into `json/plain` payloads and back. The JSON
//! form of a payload is Temporal's own (`{"metadata": {"encoding": base64},
//! "data": base64}`), so payloads copied from a Temporal tool pass through.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Metadata key that names a payload's encoding.
pub const ENCODING: &str = "encoding";
/// UTF-8 JSON.
pub const JSON_PLAIN: &str = "json/plain";
/// Raw bytes.
pub const BINARY_PLAIN: &str = "binary/plain";
/// No value.
pub const BINARY_NULL: &str = "binary/null";

/// A value with its encoding metadata, as the WIT `payload` record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Metadata entries, e.g. `("encoding", b"json/plain")`.
    pub metadata: Vec<(String, Vec<u8>)>,
    /// The encoded value.
    pub data: Vec<u8>,
}

impl Payload {
    /// Encodes a JSON value as a `json/plain` payload.
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            metadata: vec![(ENCODING.to_owned(), JSON_PLAIN.as_bytes().to_vec())],
            // Serialising a `Value` cannot fail.
            data: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// The `binary/null` payload: no value.
    pub fn null() -> Self {
        Self {
            metadata: vec![(ENCODING.to_owned(), BINARY_NULL.as_bytes().to_vec())],
            data: Vec::new(),
        }
    }

    /// The value of the `encoding` metadata entry, if any and UTF-8.
    pub fn encoding(&self) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == ENCODING)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Size in bytes as counted against payload limits: data plus metadata.
    pub fn size(&self) -> usize {
        self.data.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Decodes the payload for display: JSON for `json/plain`, `null` for
    /// `binary/null`, and the Temporal JSON form for anything else.
    pub fn to_json(&self) -> serde_json::Value {
        match self.encoding() {
            Some(JSON_PLAIN) => serde_json::from_slice(&self.data)
                .unwrap_or_else(|_| serde_json::to_value(self).unwrap_or_default()),
            Some(BINARY_NULL) => serde_json::Value::Null,
            _ => serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// Reads a payload given by a user: either a raw payload in Temporal's
    /// JSON form (an object with exactly `metadata` and `data`) or any other
    /// JSON value, which becomes a `json/plain` payload.
    pub fn from_user_json(value: serde_json::Value) -> Self {
        if let Some(obj) = value.as_object() {
            let raw_shape =
                obj.contains_key("metadata") && obj.contains_key("data") && obj.len() == 2;
            if raw_shape {
                if let Ok(payload) = serde_json::from_value::<Payload>(value.clone()) {
                    return payload;
                }
            }
        }
        Self::json(&value)
    }
}

/// Sum of the sizes of a list of payloads.
pub fn total_size(payloads: &[Payload]) -> usize {
    payloads.iter().map(Payload::size).sum()
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    data: String,
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), BASE64.encode(v)))
                .collect(),
            data: BASE64.encode(&self.data),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        let metadata = wire
            .metadata
            .into_iter()
            .map(|(k, v)| {
                BASE64
                    .decode(v.as_bytes())
                    .map(|v| (k.clone(), v))
                    .map_err(|e| D::Error::custom(format!("metadata {k:?} is not base64: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let data = BASE64
            .decode(wire.data.as_bytes())
            .map_err(|e| D::Error::custom(format!("payload data is not base64: {e}")))?;
        Ok(Self { metadata, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip() {
        let p = Payload::json(&json!({"a": 1}));
        assert_eq!(p.encoding(), Some(JSON_PLAIN));
        assert_eq!(p.to_json(), json!({"a": 1}));
    }

    #[test]
    fn raw_payload_passes_through() {
        let raw = Payload {
            metadata: vec![(ENCODING.into(), b"binary/plain".to_vec())],
            data: vec![0, 1, 2, 255],
        };
        let wire = serde_json::to_value(&raw).unwrap();
        assert_eq!(Payload::from_user_json(wire), raw);
    }

    #[test]
    fn objects_that_look_raw_but_are_not_stay_json() {
        let v = json!({"metadata": 1, "data": "x"});
        assert_eq!(Payload::from_user_json(v.clone()).to_json(), v);
    }
}
