//! Robustness: random bytes, token soups, deep nesting and mutations of valid files
//! never panic, finish quickly, keep spans inside the source, and produce a spec
//! exactly when there is no error.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::diag::{has_errors, render};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("data/example.bt");

/// Words the lexer knows (plus a few it does not), for token soups.
const VOCAB: &[&str] = &[
    "model",
    "train",
    "input",
    "label",
    "param",
    "fn",
    "dim",
    "in",
    "table",
    "over",
    "format",
    "range",
    "x",
    "y",
    "W",
    "z",
    "loss",
    "relu",
    "softmax_cross_entropy",
    "sgd",
    "lr",
    "fixed",
    "onehot",
    "zeros",
    "0",
    "1",
    "2.5",
    "1e-3",
    "1.2.3",
    "0x",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ",",
    ":",
    "=",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    "\n",
    ";",
    "#c\n",
    "$",
    "é",
    "\t",
];

fn check_invariants(src: &str) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let took = start.elapsed();
    prop_assert!(took < Duration::from_secs(1), "took {took:?} on {src:?}");
    prop_assert_eq!(spec.is_some(), !has_errors(&diags), "spec/diagnostics disagree on {:?}", src);
    for d in &diags {
        for l in &d.labels {
            prop_assert!(l.span.start <= l.span.end && l.span.end <= src.len(), "span {:?} outside {:?}", l.span, src);
            prop_assert!(src.is_char_boundary(l.span.start) && src.is_char_boundary(l.span.end));
        }
    }
    // Rendering must not fail either.
    let _ = render("fuzz.bt", src, &diags, false);
    Ok(())
}

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCAB), 0..80).prop_map(|words| words.join(" "))
}

/// A valid file with a few random edits: delete, duplicate or insert a token.
fn mutation() -> impl Strategy<Value = String> {
    let edit = (0..EXAMPLE.len(), 0usize..12, prop::sample::select(VOCAB), 0u8..3);
    prop::collection::vec(edit, 1..4).prop_map(|edits| {
        let mut s = EXAMPLE.to_string();
        for (at, len, word, kind) in edits {
            let at = floor_char(&s, at.min(s.len()));
            let end = floor_char(&s, (at + len).min(s.len()));
            match kind {
                0 => s.replace_range(at..end, ""),
                1 => s.insert_str(at, word),
                _ => {
                    let piece = s[at..end].to_string();
                    s.insert_str(at, &piece);
                }
            }
        }
        s
    })
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

proptest! {
    #![proptest_config(Config { cases: 600, failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_invariants(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn token_soup(src in soup()) {
        check_invariants(&src)?;
    }

    #[test]
    fn mutated_example(src in mutation()) {
        check_invariants(&src)?;
    }
}

#[test]
fn deep_and_long_inputs() {
    let cases = [
        format!("model m {{ z = {}x{} }}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("model m {{ z = {}", "[".repeat(300)),
        format!("model m {{ z = {}x }}", "-".repeat(50_000)),
        format!("model m {{ z = x{} }}", " @ x".repeat(50_000)),
        format!("model m {{ z = {}x{} }}", "relu(".repeat(250), ")".repeat(250)),
        "{".repeat(10_000),
        "}".repeat(10_000),
        EXAMPLE.repeat(200),
        format!("model m {{ dim d = {}\n input x : fixed[d, d, d] in [0, 1] }}", "9".repeat(400)),
    ];
    for src in &cases {
        check_invariants(src).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn huge_dims_are_rejected_not_allocated() {
    let src = EXAMPLE.replace("dim d = 64", "dim d = 1000000").replace("dim h = 16", "dim h = 1000000");
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    assert!(spec.is_none());
    assert!(diags.iter().any(|d| d.code == "E0032"), "{}", render("big.bt", &src, &diags, false));
    let overrides = BTreeMap::from([("d".to_string(), usize::MAX)]);
    let (spec, _) = check_source(EXAMPLE, &overrides);
    assert!(spec.is_none());
}
