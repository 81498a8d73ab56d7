//! Payloads: values as Temporal carries them, and their conversion to and
//! from Rust types.
//!
//! A [`Payload`] is encoding metadata plus bytes. The `encoding` metadata key
//! says how to read the bytes: `json/plain` (UTF-8 JSON), `binary/plain` (raw
//! bytes) or `binary/null` (no value). [`FromPayload`] and [`IntoPayload`] are
//! how activity arguments are decoded and results encoded; both are
//! implemented for every serde type, for [`Payload`] itself (passed through
//! unchanged) and for [`Binary`] (raw bytes).

use std::borrow::Cow;
use std::fmt;

use serde::de::value::SeqDeserializer;
use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde::Serialize;

use crate::__private::WitPayload;

/// A value exactly as Temporal carries it: encoding metadata plus bytes.
///
/// ```
/// use wharf_guest::Payload;
///
/// let p = Payload::json(&vec![1, 2, 3]).unwrap();
/// assert_eq!(p.encoding(), Some("json/plain"));
/// assert_eq!(p.decode::<Vec<u8>>().unwrap(), vec![1, 2, 3]);
///
/// let raw = Payload::binary(b"hi".to_vec());
/// assert_eq!(raw.decode::<String>().unwrap(), "hi");
/// assert_eq!(Payload::null().decode::<Option<i32>>().unwrap(), None);
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// Metadata entries such as `("encoding", b"json/plain")`.
    pub metadata: Vec<(String, Vec<u8>)>,
    /// The encoded value.
    pub data: Vec<u8>,
}

/// Raw bytes, encoded as a `binary/plain` payload when returned from an
/// activity and taken from one when used as an argument.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Binary(pub Vec<u8>);

/// Why a payload could not be encoded or decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PayloadError {
    message: String,
}

impl Payload {
    /// The metadata key that names the encoding of `data`.
    pub const ENCODING_KEY: &'static str = "encoding";
    /// Encoding of UTF-8 JSON data.
    pub const JSON_PLAIN: &'static str = "json/plain";
    /// Encoding of raw bytes.
    pub const BINARY_PLAIN: &'static str = "binary/plain";
    /// Encoding of "no value" (empty data).
    pub const BINARY_NULL: &'static str = "binary/null";

    /// A payload with the given `encoding` metadata and data.
    pub fn new(encoding: &str, data: Vec<u8>) -> Payload {
        Payload {
            metadata: vec![(Self::ENCODING_KEY.to_owned(), encoding.as_bytes().to_vec())],
            data,
        }
    }

    /// Encodes `value` as a `json/plain` payload.
    ///
    /// Fails only where serde_json does, e.g. for a map with non-string keys.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Payload, PayloadError> {
        let data = serde_json::to_vec(value)
            .map_err(|e| PayloadError::new(format!("cannot encode value as JSON: {e}")))?;
        Ok(Payload::new(Self::JSON_PLAIN, data))
    }

    /// A `binary/plain` payload holding `data` unchanged.
    pub fn binary(data: impl Into<Vec<u8>>) -> Payload {
        Payload::new(Self::BINARY_PLAIN, data.into())
    }

    /// A `binary/null` payload: no value. Decodes as JSON `null`.
    pub fn null() -> Payload {
        Payload::new(Self::BINARY_NULL, Vec::new())
    }

    /// The value of the `encoding` metadata entry, if present and UTF-8.
    pub fn encoding(&self) -> Option<&str> {
        encoding_of(&self.metadata)
    }

    /// Decodes the payload into `T`.
    ///
    /// * `json/plain`: the data is parsed as JSON.
    /// * `binary/null`: `T` is decoded from JSON `null` (works for `()`,
    ///   `Option<_>`, `serde_json::Value`, ...).
    /// * `binary/plain`: the bytes are offered as a sequence of `u8` (for
    ///   `Vec<u8>`, arrays, `serde_json::Value`), as bytes to types that ask
    ///   for bytes, and as a string to types that ask for one (if UTF-8).
    ///
    /// Any other or missing encoding is an error.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        decode_data(self.encoding(), Cow::Borrowed(&self.data))
    }

    /// Like [`Payload::decode`], without copying `binary/plain` data.
    fn into_decoded<T: DeserializeOwned>(self) -> Result<T, PayloadError> {
        let Payload { metadata, data } = self;
        decode_data(encoding_of(&metadata), Cow::Owned(data))
    }
}

impl fmt::Debug for Payload {
    /// Shows the encoding and the data as text when it is UTF-8.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Payload");
        s.field("encoding", &self.encoding());
        match std::str::from_utf8(&self.data) {
            Ok(text) => s.field("data", &text),
            Err(_) => s.field("data", &format_args!("<{} bytes>", self.data.len())),
        };
        if self.metadata.len() > 1 {
            let keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
            s.field("metadata_keys", &keys);
        }
        s.finish()
    }
}

impl PayloadError {
    pub(crate) fn new(message: impl Into<String>) -> PayloadError {
        PayloadError {
            message: message.into(),
        }
    }

    /// The description of the problem.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PayloadError {}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Binary {
        Binary(bytes)
    }
}

/// Types an activity argument can be decoded into.
///
/// Implemented for every `serde::de::DeserializeOwned` type (through
/// [`Payload::decode`]), for [`Payload`] (the argument as scheduled) and for
/// [`Binary`] (the data of a `binary/plain` payload, or a JSON array of
/// bytes).
pub trait FromPayload: Sized {
    /// Decodes an argument.
    fn from_payload(payload: Payload) -> Result<Self, PayloadError>;

    /// The value of an argument the caller did not pass, if the type has one.
    /// For serde types this is whatever JSON `null` decodes to, so an
    /// `Option<T>` argument may be left out.
    fn from_missing() -> Option<Self> {
        None
    }
}

impl<T: DeserializeOwned> FromPayload for T {
    fn from_payload(payload: Payload) -> Result<Self, PayloadError> {
        payload.into_decoded()
    }

    fn from_missing() -> Option<Self> {
        T::deserialize(serde_json::Value::Null).ok()
    }
}

impl FromPayload for Payload {
    fn from_payload(payload: Payload) -> Result<Self, PayloadError> {
        Ok(payload)
    }
}

impl FromPayload for Binary {
    fn from_payload(payload: Payload) -> Result<Self, PayloadError> {
        if payload.encoding() == Some(Payload::BINARY_PLAIN) {
            Ok(Binary(payload.data))
        } else {
            payload.into_decoded().map(Binary)
        }
    }
}

/// Types an activity result can be encoded from.
///
/// Implemented for every `serde::Serialize` type (as `json/plain`; `()` is
/// JSON `null`), for [`Payload`] (returned unchanged) and for [`Binary`] (as
/// `binary/plain`).
pub trait IntoPayload {
    /// Encodes a result.
    fn into_payload(self) -> Result<Payload, PayloadError>;
}

impl<T: Serialize> IntoPayload for T {
    fn into_payload(self) -> Result<Payload, PayloadError> {
        Payload::json(&self)
    }
}

impl IntoPayload for Payload {
    fn into_payload(self) -> Result<Payload, PayloadError> {
        Ok(self)
    }
}

impl IntoPayload for Binary {
    fn into_payload(self) -> Result<Payload, PayloadError> {
        Ok(Payload::binary(self.0))
    }
}

impl From<WitPayload> for Payload {
    fn from(p: WitPayload) -> Payload {
        Payload {
            metadata: p.metadata,
            data: p.data,
        }
    }
}

impl From<Payload> for WitPayload {
    fn from(p: Payload) -> WitPayload {
        WitPayload {
            metadata: p.metadata,
            data: p.data,
        }
    }
}

fn encoding_of(metadata: &[(String, Vec<u8>)]) -> Option<&str> {
    metadata
        .iter()
        .find(|(key, _)| key == Payload::ENCODING_KEY)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

fn decode_data<T: DeserializeOwned>(
    encoding: Option<&str>,
    data: Cow<'_, [u8]>,
) -> Result<T, PayloadError> {
    let fail = |e: &dyn fmt::Display| {
        PayloadError::new(format!(
            "cannot decode {} payload: {e}",
            encoding.unwrap_or("?")
        ))
    };
    match encoding {
        Some(Payload::JSON_PLAIN) => serde_json::from_slice(&data).map_err(|e| fail(&e)),
        Some(Payload::BINARY_NULL) => T::deserialize(serde_json::Value::Null).map_err(|e| fail(&e)),
        Some(Payload::BINARY_PLAIN) => {
            T::deserialize(BytesDeserializer(data.into_owned())).map_err(|e| fail(&e))
        }
        Some(other) => Err(PayloadError::new(format!(
            "unsupported payload encoding {other:?} (expected json/plain, binary/plain or binary/null)"
        ))),
        None => Err(PayloadError::new(
            "payload has no `encoding` metadata (expected json/plain, binary/plain or binary/null)",
        )),
    }
}

/// Offers the bytes of a `binary/plain` payload to a serde type.
struct BytesDeserializer(Vec<u8>);

type ValueError = serde::de::value::Error;

impl<'de> Deserializer<'de> for BytesDeserializer {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_seq(SeqDeserializer::<_, ValueError>::new(self.0.into_iter()))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_byte_buf(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_byte_buf(self.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match String::from_utf8(self.0) {
            Ok(s) => visitor.visit_string(s),
            Err(e) => Err(serde::de::Error::custom(format!(
                "binary data is not UTF-8: {e}"
            ))),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char unit unit_struct
        tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
        items: Vec<String>,
    }

    #[test]
    fn json_round_trip() {
        let order = Order {
            id: 7,
            items: vec!["tea".into()],
        };
        let p = Payload::json(&order).unwrap();
        assert_eq!(p.encoding(), Some("json/plain"));
        assert_eq!(
            p.metadata,
            vec![("encoding".into(), b"json/plain".to_vec())]
        );
        assert_eq!(p.data, br#"{"id":7,"items":["tea"]}"#);
        assert_eq!(p.decode::<Order>().unwrap(), order);
        assert_eq!(Order::from_payload(p).unwrap(), order);
    }

    #[test]
    fn null_decodes_as_json_null() {
        let p = Payload::null();
        assert_eq!(p.encoding(), Some("binary/null"));
        assert!(p.data.is_empty());
        p.decode::<()>().unwrap();
        assert_eq!(p.decode::<Option<String>>().unwrap(), None);
        assert_eq!(
            p.decode::<serde_json::Value>().unwrap(),
            serde_json::Value::Null
        );
        assert!(p.decode::<String>().is_err());
    }

    #[test]
    fn binary_decodes_as_bytes_or_text() {
        let p = Payload::binary(b"caf\xc3\xa9".to_vec());
        assert_eq!(p.encoding(), Some("binary/plain"));
        assert_eq!(p.decode::<Vec<u8>>().unwrap(), b"caf\xc3\xa9");
        assert_eq!(p.decode::<String>().unwrap(), "café");
        assert_eq!(
            p.decode::<Option<String>>().unwrap().as_deref(),
            Some("café")
        );
        assert_eq!(
            p.decode::<serde_json::Value>().unwrap(),
            serde_json::json!([99, 97, 102, 195, 169])
        );
        assert_eq!(Binary::from_payload(p).unwrap().0, b"caf\xc3\xa9");
        assert!(Payload::binary(vec![0xff]).decode::<String>().is_err());
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let err = Payload::new("json/plain", b"{not json".to_vec())
            .decode::<serde_json::Value>()
            .unwrap_err();
        assert!(err
            .message()
            .starts_with("cannot decode json/plain payload"));
        let err = Payload::new("json/protobuf", vec![])
            .decode::<()>()
            .unwrap_err();
        assert!(err.message().contains("unsupported payload encoding"));
        let err = Payload::default().decode::<()>().unwrap_err();
        assert!(err.message().contains("no `encoding` metadata"));
    }

    #[test]
    fn results_encode_by_kind() {
        assert_eq!(().into_payload().unwrap().data, b"null");
        assert_eq!("hi".into_payload().unwrap().encoding(), Some("json/plain"));
        let bin = Binary(vec![1, 2]).into_payload().unwrap();
        assert_eq!(bin, Payload::binary(vec![1, 2]));
        assert_eq!(Payload::null().into_payload().unwrap(), Payload::null());
    }

    #[test]
    fn missing_arguments_decode_only_where_null_does() {
        assert_eq!(<Option<u32>>::from_missing(), Some(None));
        assert_eq!(<()>::from_missing(), Some(()));
        assert_eq!(String::from_missing(), None);
        assert_eq!(Payload::from_missing(), None);
    }
}
