//! `spin-types`: a TEST FIXTURE, not an example to copy.
//!
//! An activity module whose `activity-types()` never returns: it spins forever.
//! A host lists a module's activity types when it is uploaded, so this is
//! what an upload must survive: the listing runs under the uploading
//! namespace's quotas and a time limit, and the module is refused.

use wharf_guest::__private::{unknown_activity_type, Guest, WitActivityError, WitPayload};

struct Greedy;

impl Guest for Greedy {
    fn activity_types() -> Vec<String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
            if n == 0 {
                return Vec::new();
            }
        }
    }

    fn run(activity_type: String, _args: Vec<WitPayload>) -> Result<WitPayload, WitActivityError> {
        Err(unknown_activity_type(&activity_type, &[]))
    }
}

wharf_guest::__private::bindings::export!(Greedy with_types_in wharf_guest::__private::bindings);
