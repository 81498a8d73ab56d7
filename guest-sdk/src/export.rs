//! Exporting activities: [`export_activities!`](crate::export_activities)
//! and the dispatch it expands to.
//!
//! The macro implements the WIT `activities` interface for a hidden type:
//! `activity-types` lists the names given to the macro, `run` finds the
//! function by name and calls it through [`ActivityFn`], which decodes the
//! arguments positionally and encodes the result. Implementations of
//! [`ActivityFn`] exist for functions of 0 to 6 arguments and for functions
//! that take all arguments undecoded as one `Vec<Payload>`.

use crate::__private::{WitActivityError, WitPayload};
use crate::error::ActivityError;
use crate::payload::{FromPayload, IntoPayload, Payload};

/// A function that can be exported as an activity.
///
/// `Args` only tells the implementations apart (it is the tuple of argument
/// types); it is inferred. Implemented for every
/// `Fn(A1, .., An) -> Result<R, ActivityError>` with `n <= 6`, `Ai:`
/// [`FromPayload`] and `R:` [`IntoPayload`], and for
/// `Fn(Vec<Payload>) -> Result<R, ActivityError>`, which receives all
/// arguments as scheduled.
pub trait ActivityFn<Args> {
    /// Decodes `args`, calls the function and encodes its result.
    /// `activity` (the activity type) is used in error messages.
    fn call(&self, activity: &str, args: Vec<Payload>) -> Result<Payload, ActivityError>;
}

/// Marker for the `Fn(Vec<Payload>)` form of [`ActivityFn`].
#[doc(hidden)]
pub enum AllPayloads {}

impl<F, R> ActivityFn<AllPayloads> for F
where
    F: Fn(Vec<Payload>) -> Result<R, ActivityError>,
    R: IntoPayload,
{
    fn call(&self, activity: &str, args: Vec<Payload>) -> Result<Payload, ActivityError> {
        encode_result(activity, self(args)?)
    }
}

macro_rules! impl_activity_fn {
    ($count:literal $(, $arg:ident $index:literal)*) => {
        impl<F, R, $($arg,)*> ActivityFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Result<R, ActivityError>,
            R: IntoPayload,
            $($arg: FromPayload,)*
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn call(&self, activity: &str, args: Vec<Payload>) -> Result<Payload, ActivityError> {
                let mut args = args.into_iter();
                $(let $arg = decode_arg::<$arg>(activity, $index, $count, args.next())?;)*
                encode_result(activity, self($($arg),*)?)
            }
        }
    };
}

impl_activity_fn!(0);
impl_activity_fn!(1, A0 0);
impl_activity_fn!(2, A0 0, A1 1);
impl_activity_fn!(3, A0 0, A1 1, A2 2);
impl_activity_fn!(4, A0 0, A1 1, A2 2, A3 3);
impl_activity_fn!(5, A0 0, A1 1, A2 2, A3 3, A4 4);
impl_activity_fn!(6, A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);

fn decode_arg<T: FromPayload>(
    activity: &str,
    index: usize,
    count: usize,
    payload: Option<Payload>,
) -> Result<T, ActivityError> {
    let decoded = match payload {
        Some(payload) => T::from_payload(payload).map_err(|e| e.to_string()),
        None => T::from_missing().ok_or_else(|| {
            format!(
                "missing (the activity takes {count} argument{})",
                if count == 1 { "" } else { "s" }
            )
        }),
    };
    decoded.map_err(|problem| {
        ActivityError::non_retryable(format!(
            "activity {activity:?}: argument {index}: {problem}"
        ))
        .with_type("InvalidArgument")
    })
}

fn encode_result<R: IntoPayload>(activity: &str, result: R) -> Result<Payload, ActivityError> {
    result.into_payload().map_err(|e| {
        ActivityError::non_retryable(format!("activity {activity:?}: result: {e}"))
            .with_type("InvalidResult")
    })
}

/// Used by the macro: the `activity-types` export.
#[doc(hidden)]
pub fn activity_types(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Used by the macro: runs `f` as activity `activity` and converts the outcome
/// to the WIT types.
#[doc(hidden)]
pub fn dispatch<Args, F: ActivityFn<Args>>(
    activity: &str,
    f: &F,
    args: Vec<WitPayload>,
) -> Result<WitPayload, WitActivityError> {
    let args = args.into_iter().map(Payload::from).collect();
    f.call(activity, args)
        .map(Into::into)
        .map_err(ActivityError::into_wit)
}

/// Used by the macro: the failure for an activity type nobody exported.
#[doc(hidden)]
pub fn unknown_activity_type(activity: &str, known: &[&str]) -> WitActivityError {
    ActivityError::non_retryable(format!(
        "unknown activity type {activity:?}; this module provides: {}",
        known.join(", ")
    ))
    .with_type("UnknownActivityType")
    .into_wit()
}

/// Exports functions as the activities of this component.
///
/// Each entry is either a function name, exported under that name as
/// written (`greet`), or `"activity-type" => expression` to choose the name
/// (the expression may be a path or a closure with typed arguments). Use the
/// macro once per component, at module level.
///
/// ```no_run
/// use wharf_guest::{ActivityError, Binary, Payload};
///
/// fn greet(name: String) -> Result<String, ActivityError> {
///     Ok(format!("Hello, {name}!"))
/// }
/// fn thumbnail(image: Binary, width: Option<u32>) -> Result<Binary, ActivityError> {
///     let _ = width.unwrap_or(128);
///     Ok(image)
/// }
/// fn echo(args: Vec<Payload>) -> Result<usize, ActivityError> {
///     Ok(args.len())
/// }
///
/// wharf_guest::export_activities!(
///     greet,
///     echo,
///     "make-thumbnail" => thumbnail,
///     "add" => |a: i64, b: i64| -> Result<i64, ActivityError> { Ok(a + b) },
/// );
/// # fn main() {}
/// ```
///
/// `run` with a name that is not listed fails with a non-retryable error of
/// type `UnknownActivityType` that names the known ones.
#[macro_export]
macro_rules! export_activities {
    ($($entries:tt)*) => {
        $crate::__export_activities_munch!([] $($entries)*);
    };
}

/// Turns the entries of `export_activities!` into `(name, function)` pairs.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_activities_munch {
    ([$($done:tt)*]) => {
        $crate::__export_activities_emit!($($done)*);
    };
    ([$($done:tt)*] $f:ident $(, $($rest:tt)*)?) => {
        $crate::__export_activities_munch!(
            [$($done)* (::core::stringify!($f), $f)] $($($rest)*)?
        );
    };
    ([$($done:tt)*] $name:literal => $f:expr $(, $($rest:tt)*)?) => {
        $crate::__export_activities_munch!([$($done)* ($name, $f)] $($($rest)*)?);
    };
}

/// Implements the `activities` interface for the collected pairs.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_activities_emit {
    ($(($name:expr, $f:expr))*) => {
        const _: () = {
            struct WharfActivities;

            impl $crate::__private::Guest for WharfActivities {
                fn activity_types() -> ::std::vec::Vec<::std::string::String> {
                    $crate::__private::activity_types(&[$($name),*])
                }

                fn run(
                    activity_type: ::std::string::String,
                    args: ::std::vec::Vec<$crate::__private::WitPayload>,
                ) -> ::core::result::Result<
                    $crate::__private::WitPayload,
                    $crate::__private::WitActivityError,
                > {
                    $(
                        if activity_type == $name {
                            return $crate::__private::dispatch($name, &$f, args);
                        }
                    )*
                    ::core::result::Result::Err($crate::__private::unknown_activity_type(
                        &activity_type,
                        &[$($name),*],
                    ))
                }
            }

            $crate::__private::bindings::export!(
                WharfActivities with_types_in $crate::__private::bindings
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApplicationError;

    fn greet(name: String) -> Result<String, ActivityError> {
        Ok(format!("Hello, {name}!"))
    }

    fn add(a: i64, b: Option<i64>) -> Result<i64, ActivityError> {
        Ok(a + b.unwrap_or(0))
    }

    fn count(args: Vec<Payload>) -> Result<usize, ActivityError> {
        Ok(args.len())
    }

    fn call<Args>(f: impl ActivityFn<Args>, args: Vec<Payload>) -> Result<Payload, ActivityError> {
        f.call("test", args)
    }

    fn json(value: serde_json::Value) -> Payload {
        Payload::json(&value).unwrap()
    }

    fn invalid_argument(err: ActivityError) -> String {
        match err {
            ActivityError::Failed(ApplicationError {
                message,
                error_type,
                non_retryable: true,
                ..
            }) if error_type == "InvalidArgument" => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn decodes_arguments_and_encodes_result() {
        let out = call(greet, vec![json("Ada".into())]).unwrap();
        assert_eq!(out, json("Hello, Ada!".into()));
        let out = call(add, vec![json(2.into()), json(3.into())]).unwrap();
        assert_eq!(out.decode::<i64>().unwrap(), 5);
        // A missing optional argument is None; extra arguments are ignored.
        let out = call(add, vec![json(2.into())]).unwrap();
        assert_eq!(out.decode::<i64>().unwrap(), 2);
        let out = call(greet, vec![json("Ada".into()), json(1.into())]).unwrap();
        assert_eq!(out.decode::<String>().unwrap(), "Hello, Ada!");
        let out = call(count, vec![json(1.into()), Payload::null()]).unwrap();
        assert_eq!(out.decode::<usize>().unwrap(), 2);
    }

    #[test]
    fn bad_arguments_are_non_retryable_invalid_argument() {
        let msg = invalid_argument(call(greet, vec![]).unwrap_err());
        assert_eq!(
            msg,
            "activity \"test\": argument 0: missing (the activity takes 1 argument)"
        );
        let msg = invalid_argument(call(add, vec![json(1.into()), json("x".into())]).unwrap_err());
        assert!(
            msg.starts_with("activity \"test\": argument 1: cannot decode json/plain payload"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_type_names_the_known_ones() {
        match unknown_activity_type("nope", &["greet", "add"]) {
            WitActivityError::Failed(e) => {
                assert_eq!(e.error_type, "UnknownActivityType");
                assert!(e.non_retryable);
                assert_eq!(
                    e.message,
                    "unknown activity type \"nope\"; this module provides: greet, add"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
