//! Versioned files of the tfhe backend: round trips and every header error.

mod tfhe_common;

use blindtuner_runtime::tfhe::files::{self, FileErrorKind, PlanHash};
use blindtuner_runtime::tfhe::{ClientKey, CryptoRng, EncDataset, ParamSet, PlanInfo};
use std::path::{Path, PathBuf};
use tfhe_common::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("bt-tfhe-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kind_of<T>(r: Result<T, files::FileError>, path: &Path) -> FileErrorKind {
    let e = r.err().expect("must fail");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    assert!(e.to_string().contains(name), "message names the file: {e}");
    e.kind
}

#[test]
fn files_round_trip_and_reject_mismatches() {
    let dir = TempDir::new("files");
    let p = ParamSet::default_set();
    let mut rng = CryptoRng::from_seed(1);
    let ck = ClientKey::generate(&p, &mut rng);
    let plan = head_plan(16, 5);
    let hash = PlanHash::of(&plan);
    let mut r = Rng(4);
    let init = initial_model(&mut r, &plan);
    let model = ck.encrypt_model(&plan, &init, &mut rng).expect("encrypts");

    // Client key round trip: the loaded key decrypts what the original encrypted.
    let key_path = dir.file("client.key");
    files::save_client_key(&key_path, &ck).expect("save key");
    let ck2 = files::load_client_key(&key_path).expect("load key");
    assert_eq!(ck2.fingerprint(), ck.fingerprint());
    let dec = ck2.decrypt_model(&plan, &model).expect("decrypts");
    for (a, b) in dec[0].iter().zip(&init[0]) {
        assert!(torus_diff(*a, *b).unsigned_abs() < 1 << 40);
    }

    // Model round trip.
    let model_path = dir.file("model.btm");
    files::save_model(&model_path, p.id(), ck.fingerprint(), hash, &model).expect("save model");
    let loaded = files::load_model(&model_path, ck.fingerprint(), hash).expect("load model");
    assert_eq!(ck.decrypt_model(&plan, &loaded).expect("decrypts"), ck.decrypt_model(&plan, &model).expect("decrypts"));
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "atomic write leaves no temporary file");

    // Dataset round trip (client side only).
    let info = PlanInfo::analyse(&plan, &p).expect("plan ok");
    let sample = ck.encrypt_sample(&plan, &info, &[features(&mut r, 16)], &[3], &mut rng).expect("sample");
    let ds = EncDataset { samples: vec![sample] };
    let ds_path = dir.file("train.btd");
    files::save_dataset(&ds_path, &ck, hash, &ds).expect("save dataset");
    let ds2 = files::load_dataset(&ds_path, ck.fingerprint(), hash).expect("load dataset");
    let labels = ck.decrypt_lwe_vec(&ds2.samples[0].labels[0]);
    let on = (256u64) << W_SHIFT;
    assert!(torus_diff(labels[3], on).unsigned_abs() < 1 << 40, "label 3 is on");

    // Wrong key.
    let other = ClientKey::generate(&p, &mut CryptoRng::from_seed(2));
    assert!(matches!(
        kind_of(files::load_model(&model_path, other.fingerprint(), hash), &model_path),
        FileErrorKind::WrongKey { .. }
    ));
    // Plan mismatch.
    let other_plan = PlanHash::of(&head_plan(17, 5));
    assert!(matches!(
        kind_of(files::load_model(&model_path, ck.fingerprint(), other_plan), &model_path),
        FileErrorKind::PlanMismatch { .. }
    ));
    // Wrong kind.
    assert!(matches!(
        kind_of(files::load_dataset(&model_path, ck.fingerprint(), hash), &model_path),
        FileErrorKind::WrongKind { .. }
    ));
    assert!(matches!(kind_of(files::load_client_key(&model_path), &model_path), FileErrorKind::WrongKind { .. }));

    let bytes = std::fs::read(&model_path).expect("read");
    let broken = dir.file("broken.btm");
    let load = |b: &[u8]| {
        std::fs::write(&broken, b).expect("write");
        kind_of(files::load_model(&broken, ck.fingerprint(), hash), &broken)
    };
    // Truncated payload, truncated header.
    assert!(matches!(load(&bytes[..bytes.len() - 100]), FileErrorKind::Truncated { .. }));
    assert!(matches!(load(&bytes[..20]), FileErrorKind::TruncatedHeader));
    // A flipped bit in the payload.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 1000;
    flipped[at] ^= 0x10;
    assert!(matches!(load(&flipped), FileErrorKind::Corrupted));
    // Not our file; newer format version.
    assert!(matches!(load(b"PK\x03\x04 definitely a zip file"), FileErrorKind::NotOurs));
    let mut newer = bytes.clone();
    newer[8] = 99;
    assert!(matches!(load(&newer), FileErrorKind::UnsupportedVersion(99)));
    // Missing file.
    let missing = dir.file("missing.btm");
    assert!(matches!(kind_of(files::load_model(&missing, ck.fingerprint(), hash), &missing), FileErrorKind::Io(_)));
    // The header alone is readable.
    let h = files::read_header(&model_path).expect("header");
    assert_eq!((h.fingerprint, h.plan, h.params), (ck.fingerprint(), hash, p.id()));
}
