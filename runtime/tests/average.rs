//! `average = N`: the trained model is the mean of the parameters after every step of
//! the last N epochs, computed exactly and rounded once (what the data owner gets from
//! an encrypted accumulator).

mod common;

use blindtuner_compiler::plan::TensorRole;
use blindtuner_runtime::clear::Machine;
use blindtuner_runtime::order;
use blindtuner_runtime::train::{train, TrainOptions};
use common::*;

#[test]
fn the_model_is_the_mean_of_the_last_epochs_iterates() {
    let src = linear("sigmoid_cross_entropy", 16, 5, (-6.0, 6.0), "sgd(lr = 0.5)", 8, 3)
        .replace("  epochs    = 3\n", "  epochs    = 3\n  average   = 2\n");
    let plan = compile(&src);
    assert_eq!(plan.train.average, 2);
    let (tr, te) = load("mnist-vit16");
    let tr = tr.subset(96, 1);
    let rep = train(&plan, &tr, Some(&te), &TrainOptions::default());

    // The same steps by hand; sum the parameters after each step of epochs 1 and 2.
    let mut m = Machine::new(&plan);
    let q: Vec<_> = tr.x.iter().zip(&tr.y).map(|(x, &y)| m.quantize(&[x], &[y])).collect();
    let mut ord: Vec<usize> = (0..q.len()).collect();
    let mut sums: Vec<Vec<i128>> = m.tensors.iter().map(|t| vec![0; t.len()]).collect();
    let mut count = 0i128;
    for epoch in 0..3 {
        m.lr_shift = plan.train.lr_shift(epoch);
        order::shuffle_epoch(plan.train.seed, epoch, &mut ord);
        for r in order::batches(ord.len(), plan.train.batch) {
            for &i in &ord[r] {
                m.run_sample(&q[i]);
            }
            m.run_step();
            if epoch >= 1 {
                count += 1;
                for (s, t) in sums.iter_mut().zip(&m.tensors) {
                    s.iter_mut().zip(t).for_each(|(s, &v)| *s += i128::from(v as i64));
                }
            }
        }
    }
    assert_eq!(count, 2 * 12, "96 samples in batches of 8, two epochs");
    let mut moved = 0;
    for (i, t) in plan.tensors.iter().enumerate() {
        if t.role != TensorRole::Param {
            continue;
        }
        for (j, &v) in rep.tensors[i].iter().enumerate() {
            // Rounded once, to the nearest torus unit: |v − sum/count| ≤ ½, in integers
            // (the values are near 2^54, beyond f64's exact range).
            let (v2, s2) = (2 * i128::from(v as i64) * count, 2 * sums[i][j]);
            assert!((v2 - s2).abs() <= count, "{}[{j}]: {} vs sum {} / {count}", t.name, v as i64, sums[i][j]);
            moved += usize::from(v != m.tensors[i][j]);
        }
    }
    assert!(moved > 0, "the mean differs from the last iterate");
    // Without `average` the model is the last iterate, bit for bit.
    let last = train(&compile(&src.replace("  average   = 2\n", "")), &tr, Some(&te), &TrainOptions::default());
    for (i, t) in plan.tensors.iter().enumerate() {
        if t.role == TensorRole::Param {
            assert_eq!(last.tensors[i], m.tensors[i], "{}", t.name);
        }
    }
}

#[test]
fn the_tfhe_backend_accepts_averaging() {
    // It keeps encrypted running sums (`tfhe::average`; checked against decrypted
    // iterates in `tfhe_driver.rs`).
    use blindtuner_runtime::tfhe::{ParamSet, PlanInfo};
    let src = linear("sigmoid_cross_entropy", 16, 5, (-6.0, 6.0), "sgd(lr = 0.5)", 8, 3)
        .replace("  epochs    = 3\n", "  epochs    = 3\n  average   = 1\n");
    if let Err(e) = PlanInfo::analyse(&compile(&src), &ParamSet::default_set()) {
        panic!("refused: {e}");
    }
}
