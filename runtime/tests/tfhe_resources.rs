//! The compiler's resource model (`report::resources`) is plain numbers mirroring the
//! runtime's parameter sets; these tests pin the mirror to the real thing: the same
//! dimensions and ids as `ParamSet::all()`, and an upload estimate equal to the size of
//! a really encrypted sample of compiled plans.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::plan::Plan;
use blindtuner_compiler::{pipeline, report};
use blindtuner_runtime::clear::{quantize, Counters};
use blindtuner_runtime::tfhe::{ClientKey, CryptoRng, ParamSet, PlanInfo};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn resource_model_mirrors_the_runtime_parameter_sets() {
    let real = ParamSet::all();
    assert_eq!(real.len(), report::PARAM_SETS.len(), "one mirror per runtime parameter set");
    assert_eq!(real[0], ParamSet::default_set(), "the first set is the default in both");
    for (m, p) in report::PARAM_SETS.iter().zip(&real) {
        assert_eq!(m.id(), p.id().0);
        assert_eq!(m.lwe_dim, p.lwe_dim.0);
        assert_eq!(m.glwe_dim, p.glwe_dim.0);
        assert_eq!(m.poly_size, p.poly_size.0);
        assert_eq!(m.ks, (p.ks.base_log, p.ks.levels));
        assert_eq!(m.bsk, (p.bsk.base_log, p.bsk.levels));
        assert_eq!(m.pks, (p.pks.base_log, p.pks.levels));
        assert_eq!(m.ggsw, (p.ggsw.base_log, p.ggsw.levels));
    }
}

fn compile(model: &str, set: &[(&str, usize)]) -> Plan {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("models").join(model);
    let src = std::fs::read_to_string(&path).expect("bundled model");
    let ov: BTreeMap<String, usize> = set.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let (spec, diags) = check_source(&src, &ov);
    let spec = spec.unwrap_or_else(|| panic!("{model}: {diags:?}"));
    pipeline::run(spec, None).unwrap_or_else(|d| panic!("{model}: {d:?}")).plan.expect("plan")
}

#[test]
fn upload_estimate_is_the_size_of_an_encrypted_sample() {
    let params = ParamSet::default_set();
    let ck = ClientKey::generate(&params, &mut CryptoRng::from_seed(5));
    let mut rng = CryptoRng::from_seed(6);
    // d = 768 spreads W over several polynomials: several GGSWs per direction.
    for (model, set) in [
        ("mnist_vit_sigmoid.bt", vec![("d", 16)]),
        ("mnist_vit_sigmoid.bt", vec![]),
        ("mnist_vit_sigmoid.bt", vec![("d", 768)]),
        ("digits_sigmoid.bt", vec![]),
    ] {
        let plan = compile(model, &set);
        let res = report::build(&plan, None).resources;
        let info = PlanInfo::analyse(&plan, &params).expect("plan runs on tfhe");
        let d = plan.inputs[0].len;
        let x = vec![0.5; d];
        let q = quantize(&plan, &[&x], &[1], &mut Counters::new(&plan));
        let sample = ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut rng).expect("encrypts");

        let ggsw: usize = sample.ggsw.iter().map(Vec::len).sum();
        let lwes: usize = sample.labels.iter().map(|l| l.cts.len()).sum();
        assert_eq!(res.ggsw_per_sample, ggsw as u64, "{model} {set:?}: GGSWs per sample");
        assert_eq!(res.label_lwes_per_sample, lwes as u64, "{model} {set:?}: label LWEs per sample");
        let real = bincode::serialized_size(&sample).expect("size");
        let est = res.upload_bytes_per_sample;
        // The estimate counts ciphertext data only; serialization adds lengths and seeds.
        assert!(real >= est && (real - est) * 200 < est, "{model} {set:?}: real {real} B, estimated {est} B");
    }
}
