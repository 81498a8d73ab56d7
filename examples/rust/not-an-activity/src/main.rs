//! Test fixture: a component of the `wasi:cli/command` world. The registry
//! must refuse it with an error naming what it exports instead.

fn main() {
    println!("I am a command, not an activity module.");
}
