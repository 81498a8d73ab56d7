//! Generates the 10 000 exported core functions of the fixture: writing
//! them out by hand (or by a proc macro) would be 10 000 lines in the tree.

use std::fmt::Write as _;

fn main() {
    let mut code = String::new();
    for i in 0..10_000u32 {
        // Distinct bodies, so the linker cannot fold them into one.
        writeln!(
            code,
            "#[no_mangle] pub extern \"C\" fn sprawl_export_{i}() -> u32 {{ {i} }}"
        )
        .expect("writing to a String cannot fail");
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{out}/exports.rs"), code).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=build.rs");
}
