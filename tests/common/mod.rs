//! Test helpers: a seeded generator, a shared GPU context, and element-wise comparison with a stated
//! tolerance that prints the first mismatches.
#![allow(dead_code)]

use std::sync::OnceLock;

use corrflow::Context;

#[allow(unused_imports)]
pub use corrflow::data::Rng;

/// One context for the whole test binary; `None` (with a message) when the machine has no adapter.
pub fn gpu() -> Option<&'static Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    CTX.get_or_init(|| match Context::new_blocking() {
        Ok(c) => {
            eprintln!("GPU tests run on: {}", c.adapter());
            Some(c)
        }
        Err(e) => {
            eprintln!("skipping GPU tests: {e}");
            None
        }
    })
    .as_ref()
}

/// Asserts |actual - expected| <= abs + rel * |expected| element-wise (NaN fails), printing the first
/// mismatches with their index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], abs: f32, rel: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    let mut bad = Vec::new();
    let mut worst = 0.0f32;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs();
        let tol = abs + rel * e.abs();
        if !(err <= tol) {
            bad.push((i, e, a));
        }
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> = bad.iter().take(8).map(|(i, e, a)| format!("[{i}] expected {e} got {a}")).collect();
        panic!(
            "{what}: {} of {} elements outside abs {abs} + rel {rel} (worst finite error {worst}); first: {}",
            bad.len(),
            actual.len(),
            first.join(", ")
        );
    }
}
