//! The accuracy bar: every bundled model trained on bundled data with the clear
//! backend (the quantized arithmetic the encrypted backend runs) reaches test
//! accuracy within 1.5 points of the float logistic-regression baseline
//! ("as given" column of `data/README.md`). These are the numbers in the README.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::pipeline;
use blindtuner_runtime::data::{load_csv, Expect};
use blindtuner_runtime::train::{train, TrainOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Train `models/{model}.bt` on `data/{data}` with the spec's own settings.
fn accuracy(model: &str, data: &str) -> f64 {
    accuracy_with(model, data, &[])
}

/// [`accuracy`] with dimensions of the spec overridden (`--set`).
fn accuracy_with(model: &str, data: &str, dims: &[(&str, usize)]) -> f64 {
    let src = std::fs::read_to_string(root().join(format!("models/{model}.bt"))).expect("model file");
    let dir = root().join("data");
    let tr = load_csv(&dir.join(format!("{data}.train.csv")), Expect::default()).expect("train csv");
    let te = load_csv(&dir.join(format!("{data}.test.csv")), Expect::default()).expect("test csv");
    let k = tr.y.iter().chain(&te.y).max().map_or(0, |m| m + 1);
    let mut set: BTreeMap<String, usize> = [("d".to_string(), tr.d), ("k".to_string(), k)].into();
    set.extend(dims.iter().map(|&(n, v)| (n.to_string(), v)));
    let (spec, diags) = check_source(&src, &set);
    let spec = spec.unwrap_or_else(|| panic!("{model}: {diags:?}"));
    let ctx = pipeline::run(spec, None).unwrap_or_else(|d| panic!("{model}: {d:?}"));
    let plan = ctx.plan.expect("plan");
    train(&plan, &tr, Some(&te), &TrainOptions::default()).test_accuracy.expect("test accuracy")
}

/// Float logistic regression, "as given" (data/README.md).
fn baseline(data: &str) -> f64 {
    match data {
        "digits" => 0.9667,
        "mnist-vit" => 0.8600,
        "mnist-vit16" => 0.7800,
        _ => unreachable!("no baseline for {data}"),
    }
}

fn assert_bar(model: &str, data: &str) {
    let acc = accuracy(model, data);
    let bar = baseline(data) - 0.015;
    eprintln!("{model} on {data}: {acc:.4} (float LR {:.4}, bar {bar:.4})", baseline(data));
    assert!(acc >= bar, "{model} on {data}: test accuracy {acc:.4} below {bar:.4}");
}

#[test]
fn digits_heads() {
    assert_bar("digits_softmax", "digits");
    assert_bar("digits_sigmoid", "digits");
}

#[test]
fn mnist_vit_heads() {
    assert_bar("mnist_vit_softmax", "mnist-vit");
    assert_bar("mnist_vit_sigmoid", "mnist-vit");
}

#[test]
fn mnist_vit16_heads_same_spec() {
    assert_bar("mnist_vit_softmax", "mnist-vit16");
    assert_bar("mnist_vit_sigmoid", "mnist-vit16");
}

/// The float reference of `mnist_vit_mlp` with `h` hidden units: the same shape, init (normal 0.1,
/// zero biases), inputs clamped to the declared `[-6, 6]`, sgd(lr = 0.0625) in batches
/// of 8 for 10 epochs on softmax cross-entropy, in f64; mean test accuracy over 5
/// seeds of init and order (a pure-Python version of the same loop gave 0.824–0.842).
fn float_mlp(data: &str, h: usize) -> f64 {
    let dir = root().join("data");
    let tr = load_csv(&dir.join(format!("{data}.train.csv")), Expect::default()).expect("train csv");
    let te = load_csv(&dir.join(format!("{data}.test.csv")), Expect::default()).expect("test csv");
    let clamp = |x: &[f64]| x.iter().map(|v| v.clamp(-6.0, 6.0)).collect::<Vec<f64>>();
    let (d, k, lr, batch) = (tr.d, 5, 0.0625, 8);
    let seeds = 5;
    let mut total = 0.0;
    for seed in 1..=seeds {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut normal =
            |s: f64| s * (-2.0 * (1.0 - uniform()).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        let mut w1: Vec<Vec<f64>> = (0..h).map(|_| (0..d).map(|_| normal(0.1)).collect()).collect();
        let mut w2: Vec<Vec<f64>> = (0..k).map(|_| (0..h).map(|_| normal(0.1)).collect()).collect();
        let (mut b1, mut b2) = (vec![0.0; h], vec![0.0; k]);
        let fwd = |w1: &[Vec<f64>], b1: &[f64], w2: &[Vec<f64>], b2: &[f64], x: &[f64]| {
            let z1: Vec<f64> = (0..h).map(|j| w1[j].iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b1[j]).collect();
            let a1: Vec<f64> = z1.iter().map(|v| v.max(0.0)).collect();
            let z: Vec<f64> = (0..k).map(|c| w2[c].iter().zip(&a1).map(|(w, a)| w * a).sum::<f64>() + b2[c]).collect();
            (z1, a1, z)
        };
        let mut order: Vec<usize> = (0..tr.y.len()).collect();
        for _ in 0..10 {
            for i in (1..order.len()).rev() {
                order.swap(i, (uniform() * (i + 1) as f64) as usize % (i + 1));
            }
            for chunk in order.chunks(batch) {
                let (mut g1, mut gb1) = (vec![vec![0.0; d]; h], vec![0.0; h]);
                let (mut g2, mut gb2) = (vec![vec![0.0; h]; k], vec![0.0; k]);
                for &i in chunk {
                    let x = clamp(&tr.x[i]);
                    let (z1, a1, z) = fwd(&w1, &b1, &w2, &b2, &x);
                    let m = z.iter().cloned().fold(f64::MIN, f64::max);
                    let ex: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
                    let sum: f64 = ex.iter().sum();
                    let e: Vec<f64> = (0..k).map(|c| ex[c] / sum - f64::from(u8::from(c == tr.y[i]))).collect();
                    for c in 0..k {
                        gb2[c] += e[c];
                        (0..h).for_each(|j| g2[c][j] += e[c] * a1[j]);
                    }
                    for j in (0..h).filter(|&j| z1[j] > 0.0) {
                        let g: f64 = (0..k).map(|c| w2[c][j] * e[c]).sum();
                        gb1[j] += g;
                        g1[j].iter_mut().zip(&x).for_each(|(a, x)| *a += g * x);
                    }
                }
                let step = lr / batch as f64;
                for j in 0..h {
                    b1[j] -= step * gb1[j];
                    w1[j].iter_mut().zip(&g1[j]).for_each(|(w, g)| *w -= step * g);
                }
                for c in 0..k {
                    b2[c] -= step * gb2[c];
                    w2[c].iter_mut().zip(&g2[c]).for_each(|(w, g)| *w -= step * g);
                }
            }
        }
        let right =
            te.x.iter()
                .zip(&te.y)
                .filter(|(x, &y)| {
                    let z = fwd(&w1, &b1, &w2, &b2, &clamp(x)).2;
                    let best = (0..k).max_by(|&a, &b| z[a].total_cmp(&z[b]));
                    best == Some(y)
                })
                .count();
        total += right as f64 / te.y.len() as f64;
    }
    total / seeds as f64
}

#[test]
fn mlp_head_trains() {
    // Against a float MLP of the same shape, optimizer and epochs (not the linear
    // baseline: this small MLP is below it in float too).
    // h = 16 is the bundled spec; h = 8 the encrypted at-scale run's (README).
    for h in [16, 8] {
        let acc = accuracy_with("mnist_vit_mlp", "mnist-vit", &[("h", h)]);
        let float = float_mlp("mnist-vit", h);
        eprintln!("mnist_vit_mlp (h = {h}) on mnist-vit: {acc:.4} (float MLP, same shape and optimizer: {float:.4})");
        assert!(acc >= float - 0.01, "h = {h}: test accuracy {acc:.4} more than 1 point below float {float:.4}");
    }
}
