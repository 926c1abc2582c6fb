//! One snapshot per diagnostic code, rendered exactly as the CLI prints it, plus a
//! file with several independent errors reported in one run.

use blindtuner_compiler::check::{check_source, codes};
use blindtuner_compiler::diag::render;
use std::collections::BTreeMap;

/// A small valid model; cases below edit it.
const BASE: &str = "\
model m {
  input  x : fixed[4] in [-1, 1]
  label  y : onehot[3]
  param  W : fixed[3, 4] = zeros
  z    = W @ x
  loss = softmax_cross_entropy(z, y)
}
train m {
  optimizer = sgd(lr = 0.5)
}
";

/// Check `src`, assert the diagnostic `code` is among the results (and that no spec
/// is produced when it is an error), and return the rendering.
fn rendered_with(src: &str, overrides: &[(&str, usize)], code: &str) -> String {
    let overrides: BTreeMap<String, usize> = overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let (spec, diags) = check_source(src, &overrides);
    let out = render("case.bt", src, &diags, false);
    assert!(diags.iter().any(|d| d.code == code), "expected {code}, got:\n{out}");
    if code.starts_with('E') {
        assert!(spec.is_none(), "spec produced despite {code}");
    }
    out
}

fn rendered(src: &str, code: &str) -> String {
    rendered_with(src, &[], code)
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "`{from}` not in BASE");
    BASE.replacen(from, to, 1)
}

macro_rules! case {
    ($name:ident, $code:expr, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(rendered(&$src, $code));
        }
    };
}

#[test]
fn base_is_clean() {
    let (spec, diags) = check_source(BASE, &BTreeMap::new());
    assert!(diags.is_empty(), "{}", render("base.bt", BASE, &diags, false));
    assert!(spec.is_some());
}

case!(e0001_syntax, codes::SYNTAX, edit("z    = W @ x", "z    = W @ @ x"));
case!(e0002_unexpected_char, codes::UNEXPECTED_CHAR, edit("z    = W @ x", "z    = W @ x $"));
case!(e0003_unclosed, codes::UNCLOSED_DELIMITER, edit("softmax_cross_entropy(z, y)", "softmax_cross_entropy(z, y"));
case!(e0004_unmatched, codes::UNMATCHED_DELIMITER, edit("z    = W @ x", "z    = W @ x)"));
case!(e0005_too_complex, codes::TOO_COMPLEX, edit("W @ x", &format!("{}W @ x{}", "(".repeat(300), ")".repeat(300))));
case!(e0010_bad_number, codes::BAD_NUMBER, edit("in [-1, 1]", "in [-1, 1.2.3]"));
case!(e0011_no_model, codes::NO_MODEL, "# just a comment\n");
case!(e0012_train_unknown_model, codes::TRAIN_UNKNOWN_MODEL, edit("train m {", "train mm {"));
case!(e0014_duplicate, codes::DUPLICATE, edit("  z    = W @ x", "  W    = W @ x"));
case!(e0015_undefined, codes::UNDEFINED, edit("z    = W @ x", "z    = W @ xx"));
case!(e0016_shape_mismatch, codes::SHAPE_MISMATCH, edit("z    = W @ x", "z    = W @ x + x"));
case!(e0017_matmul, codes::MATMUL_MISMATCH, edit("W : fixed[3, 4]", "W : fixed[3, 5]"));
case!(
    e0018_missing_loss,
    codes::MISSING_LOSS,
    edit("loss = softmax_cross_entropy(z, y)", "l = softmax_cross_entropy(z, y)")
);
case!(e0019_loss_not_scalar, codes::LOSS_NOT_SCALAR, edit("loss = softmax_cross_entropy(z, y)", "loss = z * 2"));
case!(e0020_loss_label, codes::LOSS_LABEL, edit("onehot[3]", "onehot[5]"));
case!(e0021_input_without_range, codes::INPUT_WITHOUT_RANGE, edit(" in [-1, 1]", ""));
case!(e0022_empty_range, codes::EMPTY_RANGE, edit("in [-1, 1]", "in [1, -1]"));
case!(e0023_unknown_optimizer, codes::UNKNOWN_OPTIMIZER, edit("sgd(lr = 0.5)", "adam(lr = 0.5)"));
case!(
    e0024_unknown_optimizer_option,
    codes::UNKNOWN_OPTIMIZER_OPTION,
    edit("sgd(lr = 0.5)", "sgd(lr = 0.5, momentum = 0.9)")
);
case!(e0025_missing_lr, codes::MISSING_LR, edit("sgd(lr = 0.5)", "nesterov(momentum = 0.9)"));
case!(
    e0026_unknown_setting,
    codes::UNKNOWN_SETTING,
    edit("  optimizer = sgd(lr = 0.5)\n", "  optimizer = sgd(lr = 0.5)\n  epoch = 3\n")
);
case!(
    e0027_bad_value,
    codes::BAD_VALUE,
    edit("  optimizer = sgd(lr = 0.5)\n", "  optimizer = sgd(lr = 0.5)\n  batch = 0\n  p_fail = 1\n")
);
case!(
    e0027_precision_beyond_the_bootstrap,
    codes::BAD_VALUE,
    edit("  optimizer = sgd(lr = 0.5)\n", "  optimizer = sgd(lr = 0.5)\n  precision = 13\n")
);
case!(e0028_unknown_function, codes::UNKNOWN_FUNCTION, edit("z    = W @ x", "z    = rellu(W @ x)"));
case!(e0029_arg_count, codes::ARG_COUNT, edit("z    = W @ x", "z    = relu(W @ x, x)"));
case!(e0030_bad_type, codes::BAD_TYPE, edit("input  x : fixed[4]", "input  x : onehot[4]"));
case!(e0032_too_large, codes::TOO_LARGE, edit("fixed[3, 4]", "fixed[3000, 4000]"));
case!(e0033_not_constant, codes::NOT_CONSTANT, edit("in [-1, 1]", "in [-1, W]"));
case!(e0034_bad_init, codes::BAD_INIT, edit("= zeros", "= gaussian(1)"));
case!(
    e0035_bad_format,
    codes::BAD_FORMAT,
    edit("  optimizer = sgd(lr = 0.5)\n", "  optimizer = sgd(lr = 0.5)\n  format z = fixed<12>\n")
);
case!(e0036_label_outside_loss, codes::LABEL_OUTSIDE_LOSS, edit("z    = W @ x", "z    = W @ x + y"));
case!(e0038_recursive_function, codes::RECURSIVE_FUNCTION, format!("fn f(t) = f(t) + 1\n{BASE}"));
case!(e0039_not_allowed_here, codes::NOT_ALLOWED_HERE, format!("fn f(t) = t @ t\n{BASE}"));
case!(w0001_unused_param, codes::UNUSED_PARAM, edit("  z    = W", "  param  c : fixed[3] = 0.5\n  z    = W"));
case!(w0002_unused_let, codes::UNUSED_LET, edit("  z    = W", "  h    = relu(x)\n  z    = W"));
case!(w0003_no_train_block, codes::NO_TRAIN_BLOCK, BASE.split("train").next().unwrap_or_default());
case!(
    w0004_several_models,
    codes::SEVERAL_MODELS,
    format!("model other {{\n  input a : fixed[2] in [0, 1]\n  param p : fixed[2]\n  loss = sum(a * p)\n}}\n{BASE}")
);
case!(w0005_unused_input, codes::UNUSED_INPUT, edit("  label", "  input  u : fixed[2] in [0, 1]\n  label"));

#[test]
fn e0031_unknown_override() {
    let src = BASE
        .replace("fixed[4]", "fixed[d]")
        .replace("fixed[3, 4]", "fixed[3, d]")
        .replace("model m {\n", "model m {\n  dim d = 4\n");
    insta::assert_snapshot!(rendered_with(&src, &[("dd", 8)], codes::UNKNOWN_OVERRIDE));
}

/// Several independent mistakes: each is reported, once, in source order, and
/// dependent follow-ups (uses of a broken declaration) are not.
#[test]
fn several_errors_in_one_run() {
    let src = "\
fn sq(t) = t * t
model m {
  dim d = 4
  input  x : fixed[d]
  label  y : onehot[3]
  param  W : fixed[3, d] = zeros
  param  b : fixed[4] = zeros
  param  V : float[3] = zeros
  h    = relu(W @ x + b)
  g    = V * 2
  z    = W @ @ x
  loss = softmax_cross_entropy(hh, y)
}
train m {
  optimizer = sgd(rate = 0.1)
  batch = 0
  epocs = 3
}
";
    let (spec, diags) = check_source(src, &BTreeMap::new());
    assert!(spec.is_none());
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    for want in [
        codes::SYNTAX,
        codes::INPUT_WITHOUT_RANGE,
        codes::SHAPE_MISMATCH,
        codes::BAD_TYPE,
        codes::UNDEFINED,
        codes::UNKNOWN_OPTIMIZER_OPTION,
        codes::BAD_VALUE,
        codes::UNKNOWN_SETTING,
    ] {
        assert!(codes.contains(&want), "missing {want} in {codes:?}");
    }
    // `g = V * 2` uses the broken `V`: no extra "undefined `V`".
    assert_eq!(codes.iter().filter(|c| **c == codes::UNDEFINED).count(), 1, "{codes:?}");
    insta::assert_snapshot!(render("several.bt", src, &diags, false));
}

case!(
    e0027_schedule_factor_not_power_of_two,
    codes::BAD_VALUE,
    edit("optimizer = sgd(lr = 0.5)", "optimizer = sgd(lr = 0.5)\n  schedule = step(every = 10, factor = 0.3)")
);
case!(
    e0027_unknown_schedule,
    codes::BAD_VALUE,
    edit("optimizer = sgd(lr = 0.5)", "optimizer = sgd(lr = 0.5)\n  schedule = cosine(every = 10)")
);

#[test]
fn schedule_is_parsed() {
    let src =
        edit("optimizer = sgd(lr = 0.5)", "optimizer = sgd(lr = 0.5)\n  schedule = step(every = 10, factor = 0.25)");
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    assert!(diags.is_empty(), "{}", render("s.bt", &src, &diags, false));
    let s = spec.and_then(|s| s.train.schedule).expect("schedule");
    assert_eq!((s.every, s.shift), (10, 2));
}
