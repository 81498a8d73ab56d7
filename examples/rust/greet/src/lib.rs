//! `greet`: the smallest useful activity module.
//!
//! Activity type `greet` takes one string argument, a name, and returns
//! `"Hello, {name}!"`.

use wharf_guest::ActivityError;

/// Greets `name`.
fn greet(name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello, {name}!"))
}

wharf_guest::export_activities!(greet);
