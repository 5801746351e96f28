//! Bounded fuzzing of the admin socket's JSON bodies. axum's `Json` extractor hands them to
//! serde_json as they came, so this feeds `serde_json::from_slice` arbitrary bytes and arbitrary
//! JSON (objects with the real field names most often) for `PopulateRequest`, `FreeRequest` and
//! `GcRequest`, and proves that it never panics and that what it accepts survives the way back
//! (`kuryr pool` and `kuryr gc` serialize these same types). No daemon is started.
//!
//! Each property runs a fixed number of cases and writes no regression files, so it fits
//! `cargo test`; `PROPTEST_RNG_SEED` replays a failure.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kuryr::admin::{FreeRequest, PopulateRequest};
use kuryr::reconciler::GcRequest;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // No `proptest-regressions/` in the repository; a failure prints its minimal input.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

const FIELDS: &[&str] = &[
    "network",
    "subnet",
    "count",
    "dry_run",
    "min_age",
    "confirm_after",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // JSON has no NaN or infinity; those become null.
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object whose keys are mostly the admin API's, with any values.
fn body() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop::collection::vec((key, json_value()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// An object with each field of the three requests present or not, with a value of its type
/// most of the time, so that accepted bodies are common too.
fn typed_body() -> impl Strategy<Value = Value> {
    let field = |typed: BoxedStrategy<Value>| {
        prop::option::weighted(0.8, prop_oneof![3 => typed, 1 => json_value()])
    };
    (
        field(any::<String>().prop_map(Value::from).boxed()),
        field(any::<String>().prop_map(Value::from).boxed()),
        field(any::<u64>().prop_map(Value::from).boxed()),
        field(any::<bool>().prop_map(Value::from).boxed()),
        field(any::<f64>().prop_map(Value::from).boxed()),
        field(any::<f64>().prop_map(Value::from).boxed()),
    )
        .prop_map(|(a, b, c, d, e, f)| {
            let values = [a, b, c, d, e, f];
            let kv = FIELDS
                .iter()
                .zip(values)
                .filter_map(|(k, v)| Some(((*k).to_owned(), v?)));
            Value::Object(kv.collect())
        })
}

/// Parses `bytes` as `T` the way the admin handlers get it; an accepted body must serialize
/// and parse again (a panic anywhere fails the case).
fn check<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(req) = serde_json::from_slice::<T>(bytes) {
        let again = serde_json::to_vec(&req)?;
        prop_assert!(serde_json::from_slice::<T>(&again).is_ok());
    }
    Ok(())
}

fn check_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    check::<PopulateRequest>(bytes)?;
    check::<FreeRequest>(bytes)?;
    check::<GcRequest>(bytes)
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, also behind a `{` so that more of them are read as an object.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), brace in any::<bool>()) {
        let bytes = if brace { [b"{".as_slice(), &bytes].concat() } else { bytes };
        check_all(&bytes)?;
    }

    /// Arbitrary JSON, objects with the admin API's fields most often.
    #[test]
    fn arbitrary_json(value in prop_oneof![2 => typed_body(), 2 => body(), 1 => json_value()]) {
        check_all(&serde_json::to_vec(&value)?)?;
    }
}
