//! `hog-types`: a TEST FIXTURE, not an example to copy.
//!
//! An activity module whose `activity-types()` never returns: it allocates memory, 1 MiB after 1 MiB, without end.
//! A host lists a module's activity types when it is uploaded, so this is
//! what an upload must survive: the listing runs under the uploading
//! namespace's quotas and a time limit, and the module is refused.

use wharf_guest::__private::{unknown_activity_type, Guest, WitActivityError, WitPayload};

struct Greedy;

impl Guest for Greedy {
    fn activity_types() -> Vec<String> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            kept.push(std::hint::black_box(vec![1u8; 1 << 20]));
            if kept.len() == usize::MAX {
                return Vec::new();
            }
        }
    }

    fn run(activity_type: String, _args: Vec<WitPayload>) -> Result<WitPayload, WitActivityError> {
        Err(unknown_activity_type(&activity_type, &[]))
    }
}

wharf_guest::__private::bindings::export!(Greedy with_types_in wharf_guest::__private::bindings);
