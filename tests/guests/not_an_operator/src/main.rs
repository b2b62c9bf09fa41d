//! Test guest: an ordinary `wasi:cli/run` command component. It exports neither
//! `describe` nor `execute`, so registering it as an operator must be refused.

fn main() {
    println!("not an Aileron operator");
}
