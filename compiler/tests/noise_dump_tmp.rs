use blindtuner_compiler::check::check_source;
use blindtuner_compiler::pipeline;
use std::collections::BTreeMap;
#[test]
fn dump() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/mnist_vit_sigmoid.bt")).unwrap();
    let (spec, _d) = check_source(&src, &BTreeMap::new());
    let spec = spec.unwrap();
    println!("pfail {}", spec.train.p_fail);
    let p = pipeline::run(spec, None).unwrap().plan.unwrap();
    println!("{:?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}", p.inputs, p.regs, p.sample, p.step, p.tensors);
    for l in &p.luts { println!("{} {:?} off={} cells={} shift={} in={:?} lr={}", l.name, l.encoding, l.offset, l.table.len(), l.out_shift, l.in_fmt, l.lr_scaled); }
    println!("{:?}", p.train);
}
