//! A one-hidden-layer ReLU MLP head trains sensibly on mnist-vit with the clear backend.

mod common;

use blindtuner_compiler::spec::LossKind;
use blindtuner_runtime::train::{train, TrainOptions};
use common::*;

#[test]
fn mlp_trains_on_mnist_vit() {
    let lr: f64 = std::env::var("MLP_LR").ok().and_then(|v| v.parse().ok()).unwrap_or(0.0625);
    let epochs: usize = std::env::var("MLP_EPOCHS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let src = format!(
        "model m {{
  input  x  : fixed[64] in [-4.5, 4.5]
  label  y  : onehot[5]
  param  W1 : fixed[16, 64] = normal(0.1)
  param  b1 : fixed[16]     = zeros
  param  W2 : fixed[5, 16]  = normal(0.1)
  param  b2 : fixed[5]      = zeros
  z1   = W1 @ x + b1
  a1   = relu(z1)
  z    = W2 @ a1 + b2
  loss = softmax_cross_entropy(z, y)
}}
train m {{ optimizer = sgd(lr = {lr})  batch = 8  epochs = {epochs}  p_fail = 2^-35 }}
"
    );
    let plan = compile(&src);
    let (tr, te) = load("mnist-vit");
    let rep =
        train(&plan, &tr, Some(&te), &TrainOptions { loss: Some(LossKind::SoftmaxCrossEntropy), ..Default::default() });
    let acc = rep.test_accuracy.unwrap_or(0.0);
    eprintln!(
        "mlp lr {lr} E {epochs}: test {acc:.4} train {:.4} loss {:?} luts {:?}",
        rep.train_accuracy,
        rep.loss_per_epoch,
        rep.luts.iter().map(|l| (l.lut.as_str(), l.saturated, l.wrapped)).collect::<Vec<_>>()
    );
    assert!(rep.loss_per_epoch.last() < rep.loss_per_epoch.first(), "the loss decreases");
    assert!(acc > 0.7, "{acc}");
}
