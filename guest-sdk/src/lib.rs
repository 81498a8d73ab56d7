//! Write Wharf activities in Rust.
//!
//! An activity is a plain Rust function whose arguments are deserialized from
//! the payloads the workflow scheduled it with and whose result is serialized
//! back. One macro line turns a set of such functions into the exports of the
//! `wharf:activity` component world:
//!
//! ```no_run
//! use wharf_guest::{activity, ActivityError};
//!
//! fn greet(name: String) -> Result<String, ActivityError> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! fn add(a: i64, b: i64) -> Result<i64, ActivityError> {
//!     Ok(a + b)
//! }
//!
//! fn wordcount(text: String) -> Result<usize, ActivityError> {
//!     // Progress survives a retry: the next attempt sees these details.
//!     if activity::heartbeat(&"counting") {
//!         return Err(ActivityError::cancelled());
//!     }
//!     wharf_guest::info!("attempt {}", activity::info().attempt);
//!     Ok(text.split_whitespace().count())
//! }
//!
//! wharf_guest::export_activities!(greet, add, "word-count" => wordcount);
//! # fn main() {}
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-wasip2`; the resulting `.wasm`
//! file is a component that `wharf run` and `wharf module upload` accept.
//!
//! # How values travel
//!
//! * Arguments are decoded positionally from the scheduled payloads with
//!   [`FromPayload`] (any `serde::de::DeserializeOwned` type, [`Payload`] for
//!   the raw value, or [`Binary`] for raw bytes). A function that takes a
//!   single `Vec<Payload>` receives all arguments undecoded. Extra arguments
//!   are ignored. A missing argument is decoded as if it were JSON `null`
//!   (so an `Option<T>` parameter becomes `None`); if the type does not accept
//!   `null`, or a payload does not decode, the attempt fails with a
//!   non-retryable `InvalidArgument` error naming the activity and the
//!   argument index.
//! * The result is encoded with [`IntoPayload`]: any `serde::Serialize` value
//!   as `json/plain` (so `()` becomes JSON `null`), a [`Payload`] as is, a
//!   [`Binary`] as `binary/plain`.
//! * Failures are [`ActivityError`]s; `?` works on common error types, which
//!   become retryable errors of the generic type.
//!
//! # Context of an attempt
//!
//! [`info()`], [`heartbeat`], [`heartbeat_details`], [`is_cancelled`] and the
//! logging macros ([`info!`], [`warn!`], [`error!`], [`debug!`], [`trace!`])
//! talk to the host. They are also available as `wharf_guest::activity::*`.
//! Called outside a Wharf host (for example in a native unit test) they
//! panic, because there is no host to answer.
//!
//! [`cache`] keeps bytes for later attempts on the same process, the one
//! thing that outlives an attempt's instance.
//!
//! # Configuration and secrets
//!
//! [`config::get`] reads a variable of the namespace that was granted to
//! this module; one not granted is a [`config::ConfigError::Denied`].

#![warn(missing_docs)]

pub mod cache;
pub mod config;
mod context;
mod error;
mod export;
mod payload;

pub use context::{
    heartbeat, heartbeat_details, heartbeat_payloads, info, is_cancelled, log, ActivityInfo, Level,
};
pub use error::{ActivityError, ApplicationError};
pub use export::ActivityFn;
pub use payload::{Binary, FromPayload, IntoPayload, Payload, PayloadError};

/// The attempt's context functions under one name, so that activity code can
/// read `activity::heartbeat(..)`, `activity::info()`.
pub mod activity {
    pub use crate::context::{
        heartbeat, heartbeat_details, heartbeat_payloads, info, is_cancelled, log, ActivityInfo,
        Level,
    };
}

/// Names used by [`export_activities!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    /// Bindings generated from `wit/activity.wit`.
    #[allow(missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "wharf:activity/activity",
            pub_export_macro: true,
            default_bindings_module: "wharf_guest::__private::bindings",
        });
    }

    pub use crate::export::{activity_types, dispatch, unknown_activity_type};
    pub use bindings::exports::wharf::activity::activities::Guest;
    pub use bindings::wharf::activity::types::{
        ActivityError as WitActivityError, Payload as WitPayload,
    };
}
