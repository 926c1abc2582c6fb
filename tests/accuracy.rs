//! The accuracy bar: every bundled model trained on bundled data with the clear
//! backend (the quantized arithmetic the encrypted backend runs) reaches test
//! accuracy within 1.5 points of the float logistic-regression baseline
//! ("as given" column of `data/README.md`). These are the numbers in the README.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::clear::{decode_weights, init_tensors};
use blindtuner_runtime::data::{load_csv, Dataset, Expect};
use blindtuner_runtime::order;
use blindtuner_runtime::train::{train, TrainOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Train `models/{model}.bt` on `data/{data}` with the spec's own settings.
fn accuracy(model: &str, data: &str) -> f64 {
    accuracy_with(model, data, &[], None)
}

/// [`accuracy`] with dimensions of the spec overridden (`--set`), and its epochs.
fn accuracy_with(model: &str, data: &str, dims: &[(&str, usize)], epochs: Option<usize>) -> f64 {
    let data = dataset(data);
    clear_accuracy(&plan_with(model, &data, dims), &data, epochs)
}

/// The plan of `models/{model}.bt` for the (train, test) split `data`, dimensions overridden.
fn plan_with(model: &str, (tr, te): &(Dataset, Dataset), dims: &[(&str, usize)]) -> Plan {
    let src = std::fs::read_to_string(root().join(format!("models/{model}.bt"))).expect("model file");
    let k = tr.y.iter().chain(&te.y).max().map_or(0, |m| m + 1);
    let mut set: BTreeMap<String, usize> = [("d".to_string(), tr.d), ("k".to_string(), k)].into();
    set.extend(dims.iter().map(|&(n, v)| (n.to_string(), v)));
    let (spec, diags) = check_source(&src, &set);
    let spec = spec.unwrap_or_else(|| panic!("{model}: {diags:?}"));
    let ctx = pipeline::run(spec, None).unwrap_or_else(|d| panic!("{model}: {d:?}"));
    ctx.plan.expect("plan")
}

/// Test accuracy of `plan` trained on the (train, test) split `data` with the clear backend.
fn clear_accuracy(plan: &Plan, (tr, te): &(Dataset, Dataset), epochs: Option<usize>) -> f64 {
    let opts = TrainOptions { epochs, ..TrainOptions::default() };
    train(plan, tr, Some(te), &opts).test_accuracy.expect("test accuracy")
}

fn dataset(data: &str) -> (Dataset, Dataset) {
    let dir = root().join("data");
    let tr = load_csv(&dir.join(format!("{data}.train.csv")), Expect::default()).expect("train csv");
    let te = load_csv(&dir.join(format!("{data}.test.csv")), Expect::default()).expect("test csv");
    (tr, te)
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

/// A float MLP: `W1` h×d, `b1`, `W2` k×h, `b2`.
struct Mlp {
    w1: Vec<Vec<f64>>,
    b1: Vec<f64>,
    w2: Vec<Vec<f64>>,
    b2: Vec<f64>,
}

impl Mlp {
    fn forward(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let dot = |w: &[f64], x: &[f64]| w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>();
        let z1: Vec<f64> = self.w1.iter().zip(&self.b1).map(|(w, b)| dot(w, x) + b).collect();
        let a1: Vec<f64> = z1.iter().map(|v| v.max(0.0)).collect();
        let z: Vec<f64> = self.w2.iter().zip(&self.b2).map(|(w, b)| dot(w, &a1) + b).collect();
        (z1, a1, z)
    }

    /// One sgd step of softmax cross-entropy on `batch` (mean gradient, as the spec's).
    fn step(&mut self, batch: &[(Vec<f64>, usize)], lr: f64) {
        let (h, k, d) = (self.w1.len(), self.w2.len(), self.w1[0].len());
        let (mut g1, mut gb1) = (vec![vec![0.0; d]; h], vec![0.0; h]);
        let (mut g2, mut gb2) = (vec![vec![0.0; h]; k], vec![0.0; k]);
        for (x, y) in batch {
            let (z1, a1, z) = self.forward(x);
            let p = softmax(&z);
            let e: Vec<f64> = (0..k).map(|c| p[c] - f64::from(u8::from(c == *y))).collect();
            for c in 0..k {
                gb2[c] += e[c];
                (0..h).for_each(|j| g2[c][j] += e[c] * a1[j]);
            }
            for j in (0..h).filter(|&j| z1[j] > 0.0) {
                let g: f64 = (0..k).map(|c| self.w2[c][j] * e[c]).sum();
                gb1[j] += g;
                g1[j].iter_mut().zip(x).for_each(|(a, x)| *a += g * x);
            }
        }
        let step = lr / batch.len() as f64;
        for j in 0..h {
            self.b1[j] -= step * gb1[j];
            self.w1[j].iter_mut().zip(&g1[j]).for_each(|(w, g)| *w -= step * g);
        }
        for c in 0..k {
            self.b2[c] -= step * gb2[c];
            self.w2[c].iter_mut().zip(&g2[c]).for_each(|(w, g)| *w -= step * g);
        }
    }

    fn accuracy(&self, te: &Dataset) -> f64 {
        test_accuracy(te, |x| self.forward(x).2)
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::MIN, f64::max);
    let ex: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let sum: f64 = ex.iter().sum();
    ex.iter().map(|e| e / sum).collect()
}

/// Test accuracy of a float head: argmax of `logits` of the clamped inputs.
fn test_accuracy(te: &Dataset, logits: impl Fn(&[f64]) -> Vec<f64>) -> f64 {
    let right = te.x.iter().zip(&te.y).filter(|(x, &y)| {
        let z = logits(&clamp(x));
        (0..z.len()).max_by(|&a, &b| z[a].total_cmp(&z[b])) == Some(y)
    });
    right.count() as f64 / te.y.len() as f64
}

/// Inputs clamped to the spec's declared `[-6, 6]`.
fn clamp(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.clamp(-6.0, 6.0)).collect()
}

const MLP_LR: f64 = 0.0625;
const MLP_BATCH: usize = 8;

/// The float reference of `mnist_vit_mlp` with `h` hidden units: the same shape, init (normal 0.1,
/// zero biases), inputs clamped to the declared `[-6, 6]`, sgd(lr = 0.0625) in batches
/// of 8 for `epochs` epochs on softmax cross-entropy, in f64; mean test accuracy over 5
/// seeds of init and order (a pure-Python version of the same loop gave 0.824–0.842 for 10 epochs).
fn float_mlp(h: usize, epochs: usize) -> f64 {
    let (tr, te) = dataset("mnist-vit");
    let (d, k) = (tr.d, 5);
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
        let w1: Vec<Vec<f64>> = (0..h).map(|_| (0..d).map(|_| normal(0.1)).collect()).collect();
        let w2: Vec<Vec<f64>> = (0..k).map(|_| (0..h).map(|_| normal(0.1)).collect()).collect();
        let mut mlp = Mlp { w1, b1: vec![0.0; h], w2, b2: vec![0.0; k] };
        let mut order: Vec<usize> = (0..tr.y.len()).collect();
        for _ in 0..epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, (uniform() * (i + 1) as f64) as usize % (i + 1));
            }
            for chunk in order.chunks(MLP_BATCH) {
                let batch: Vec<_> = chunk.iter().map(|&i| (clamp(&tr.x[i]), tr.y[i])).collect();
                mlp.step(&batch, MLP_LR);
            }
        }
        total += mlp.accuracy(&te);
    }
    total / seeds as f64
}

/// The float twin of a clear (or encrypted) run of `plan`: the same initial weights
/// (the spec's init, decoded from its grid) and the same sample order
/// (`order::epoch_order` of the spec's seed), in f64. What is left between the two
/// is the fixed-point arithmetic alone, not the luck of the init and order.
fn float_twin(plan: &Plan, (tr, te): &(Dataset, Dataset), epochs: usize) -> f64 {
    let w = decode_weights(plan, &init_tensors(plan));
    let rows = |name: &str| {
        let (shape, v) = &w[name];
        v.chunks(shape.get(1).copied().unwrap_or(1)).map(|r| r.to_vec()).collect::<Vec<Vec<f64>>>()
    };
    let flat = |name: &str| w[name].1.clone();
    let mut mlp = Mlp { w1: rows("W1"), b1: flat("b1"), w2: rows("W2"), b2: flat("b2") };
    let n = tr.y.len();
    for e in 0..epochs {
        let order = order::epoch_order(plan.train.seed, e, n);
        for r in order::batches(n, plan.train.batch) {
            let batch: Vec<_> = order[r].iter().map(|&i| (clamp(&tr.x[i]), tr.y[i])).collect();
            mlp.step(&batch, plan.train.lr);
        }
    }
    mlp.accuracy(te)
}

#[test]
fn mlp_head_trains() {
    // Against a float MLP of the same shape, optimizer and epochs (not the linear
    // baseline: this small MLP is below it in float too).
    // h = 16 is the bundled spec; h = 8 the encrypted at-scale run's (README).
    for (h, epochs) in [(16, 10), (8, 10)] {
        let acc = accuracy_with("mnist_vit_mlp", "mnist-vit", &[("h", h)], Some(epochs));
        let float = float_mlp(h, epochs);
        eprintln!(
            "mnist_vit_mlp (h = {h}, {epochs} epochs) on mnist-vit: {acc:.4} (float MLP, same shape and optimizer: {float:.4})"
        );
        assert!(
            acc >= float - 0.01,
            "h = {h}, {epochs} epochs: test accuracy {acc:.4} more than 1 point below float {float:.4}"
        );
    }
}

#[test]
fn mlp_head_follows_its_float_twin() {
    // The encrypted at-scale run's shape (h = 8) against float runs with the same init
    // and sample order: seed by seed, what is left is the fixed-point arithmetic.
    let data = dataset("mnist-vit");
    let base = plan_with("mnist_vit_mlp", &data, &[("h", 8)]);
    let at = |seed: u64, epochs: usize| {
        let mut plan = base.clone();
        plan.train.seed = seed;
        let (acc, twin) = (clear_accuracy(&plan, &data, Some(epochs)), float_twin(&plan, &data, epochs));
        eprintln!("h = 8, seed {seed}, {epochs} epoch(s): clear {acc:.4}, float twin {twin:.4}");
        (acc, twin)
    };
    // 10 epochs (the recipe) for seeds 0–8; seed 0 is the spec's.
    let runs: Vec<(f64, f64)> = (0..9).map(|s| at(s, 10)).collect();
    let (acc, twin) = runs[0];
    assert!(acc >= twin - 0.01, "10 epochs: clear {acc:.4} more than 1 point below its float twin {twin:.4}");
    let mean = |runs: &[(f64, f64)]| {
        let n = runs.len() as f64;
        (runs.iter().map(|r| r.0).sum::<f64>() / n, runs.iter().map(|r| r.1).sum::<f64>() / n)
    };
    // Over seeds 0–8: 0.809 vs 0.817. Before the relu mask's stochastic rounding it
    // was 0.805: the error back-propagated into the hidden layer is read by 32-cell
    // tables over ±4 (the default `backprop_bound`), cells of 0.25, and nearest
    // rounding dropped the small gradients of the first steps.
    let (acc, twin) = mean(&runs);
    eprintln!("h = 8, 10 epochs, mean of seeds 0–8: clear {acc:.4}, float twin {twin:.4}");
    assert!(
        acc >= twin - 0.01,
        "10 epochs, seeds 0–8: clear {acc:.4} more than 1 point below its float twin {twin:.4}"
    );
    // After one epoch that rounding mattered most: 0.653 vs 0.683 with nearest
    // rounding, 0.672 with the dither (seed by seed ±3 points either way).
    let runs: Vec<(f64, f64)> = (0..9).map(|s| at(s, 1)).collect();
    let (acc, twin) = mean(&runs);
    eprintln!("h = 8, 1 epoch, mean of seeds 0–8: clear {acc:.4}, float twin {twin:.4}");
    assert!(acc >= twin - 0.02, "1 epoch, seeds 0–8: clear {acc:.4} more than 2 points below its float twin {twin:.4}");
}

/// A float linear head (`W` k×d, `b`), trained as a spec's plan trains it: softmax or
/// one-vs-rest sigmoid cross-entropy, mean gradient per batch, the plan's learning
/// rate schedule, `sgd` (`momentum` 0) or `nesterov` (`b' = μ·b + g`,
/// `W -= g + μ·b'`, the plan's form), and the plan's tail average.
struct LinearTwin {
    w: Vec<Vec<f64>>,
    b: Vec<f64>,
    vw: Vec<Vec<f64>>,
    vb: Vec<f64>,
}

impl LinearTwin {
    fn logits(&self, x: &[f64]) -> Vec<f64> {
        self.w.iter().zip(&self.b).map(|(w, b)| w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b).collect()
    }

    fn step(&mut self, batch: &[(Vec<f64>, usize)], lr: f64, softmax: bool, momentum: f64) {
        let (k, d) = (self.w.len(), self.w[0].len());
        let (mut gw, mut gb) = (vec![vec![0.0; d]; k], vec![0.0; k]);
        for (x, y) in batch {
            let z = self.logits(x);
            let p: Vec<f64> =
                if softmax { self::softmax(&z) } else { z.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect() };
            for c in 0..k {
                let e = p[c] - f64::from(u8::from(c == *y));
                gb[c] += e;
                gw[c].iter_mut().zip(x).for_each(|(g, x)| *g += e * x);
            }
        }
        let s = lr / batch.len() as f64;
        let nesterov = |w: &mut f64, v: &mut f64, g: f64| {
            *v = momentum * *v + s * g;
            *w -= s * g + momentum * *v;
        };
        for c in 0..k {
            nesterov(&mut self.b[c], &mut self.vb[c], gb[c]);
            for ((w, v), &g) in self.w[c].iter_mut().zip(&mut self.vw[c]).zip(&gw[c]) {
                nesterov(w, v, g);
            }
        }
    }
}

/// The float twin of a linear head's `plan` (zero init, the plan's order, schedule,
/// momentum and tail average), in f64: test accuracy.
fn float_linear_twin(plan: &Plan, (tr, te): &(Dataset, Dataset), softmax: bool, momentum: f64) -> f64 {
    let (k, d) = (5, tr.d);
    let zeros = || (vec![vec![0.0; d]; k], vec![0.0; k]);
    let ((w, b), (vw, vb)) = (zeros(), zeros());
    let mut head = LinearTwin { w, b, vw, vb };
    let epochs = plan.train.epochs;
    let from = plan.train.average_from(epochs).unwrap_or(usize::MAX);
    let (mut sw, mut sb, mut count) = (vec![vec![0.0; d]; k], vec![0.0; k], 0.0);
    let n = tr.y.len();
    for e in 0..epochs {
        let lr = plan.train.lr / f64::from(plan.train.lr_shift(e)).exp2();
        let order = order::epoch_order(plan.train.seed, e, n);
        for r in order::batches(n, plan.train.batch) {
            let batch: Vec<_> = order[r].iter().map(|&i| (clamp(&tr.x[i]), tr.y[i])).collect();
            head.step(&batch, lr, softmax, momentum);
            if e >= from {
                count += 1.0;
                sb.iter_mut().zip(&head.b).for_each(|(s, v)| *s += v);
                sw.iter_mut().flatten().zip(head.w.iter().flatten()).for_each(|(s, v)| *s += v);
            }
        }
    }
    if count > 0.0 {
        head.w = sw.iter().map(|r| r.iter().map(|s| s / count).collect()).collect();
        head.b = sb.iter().map(|s| s / count).collect();
    }
    test_accuracy(te, |x| head.logits(x))
}

#[test]
fn linear_heads_follow_their_float_twins() {
    // The README's benchmark rows: each head and optimizer against f64 with the same
    // order, schedule, momentum and average (the "float" column for the momentum rows).
    let data = dataset("mnist-vit");
    let src = |model: &str, optimizer: Option<&str>| {
        let s = std::fs::read_to_string(root().join(format!("models/{model}.bt"))).expect("model file");
        optimizer.map_or(s.clone(), |o| s.replace("sgd(lr = 0.5)", o))
    };
    let rows = [
        ("mnist_vit_sigmoid", None, false, 0.0),
        ("mnist_vit_softmax", None, true, 0.0),
        ("mnist_vit_sigmoid", Some("nesterov(lr = 0.05, momentum = 0.9)"), false, 0.9),
        ("mnist_vit_softmax", Some("nesterov(lr = 0.125, momentum = 0.75)"), true, 0.75),
    ];
    for (model, optimizer, softmax, momentum) in rows {
        let set: BTreeMap<String, usize> = [("d".to_string(), data.0.d), ("k".to_string(), 5)].into();
        let (spec, diags) = check_source(&src(model, optimizer), &set);
        let spec = spec.unwrap_or_else(|| panic!("{model}: {diags:?}"));
        let plan = pipeline::run(spec, None).unwrap_or_else(|d| panic!("{model}: {d:?}")).plan.expect("plan");
        let acc = clear_accuracy(&plan, &data, None);
        let twin = float_linear_twin(&plan, &data, softmax, momentum);
        let name = optimizer.unwrap_or("sgd(lr = 0.5)");
        eprintln!("{model}, {name}: clear {acc:.4}, float twin {twin:.4}");
        assert!(
            acc >= twin - 0.015,
            "{model}, {name}: clear {acc:.4} more than 1.5 points below its float twin {twin:.4}"
        );
    }
}
