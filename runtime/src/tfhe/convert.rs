//! GGSW conversion of a server value that a lookup table computes (DESIGN §5: once a
//! hidden layer exists, products have no client-data operand; converting one operand
//! to GGSW makes them external products again).
//!
//! The general circuit bootstrap extracts the value's bits and converts each (one
//! bootstrap per bit *and* per GGSW level). When the integer operand is the output of a
//! table — a hidden activation `relu(z)`, its derivative, an error — no bit extraction
//! is needed: a GGSW of `m` is, per decomposition level `l`, the GLWE rows
//! `(−S_i·m·q/B^l, …, m·q/B^l)`, and an LWE of `m·q/B^l` is one bootstrap of the
//! table's *input* with the table `m(cell)·q/B^l` (any torus value can sit in a cell).
//! The private functional packing keyswitch (tfhe's circuit-bootstrap key list: the
//! functions `x ↦ −S_i·x` and `x ↦ x`, from the bootstrap's output key to its GLWE key)
//! turns that LWE into the level's rows. Cost: `levels` bootstraps per value,
//! whatever `m`'s bits.
//!
//! GGSWs are linear in their message, so `Σ_j X^(e_j)·GGSW(m_j)` (every row polynomial
//! multiplied by a monomial, then added) is a GGSW of the polynomial `Σ_j m_j X^(e_j)`:
//! one external product with it computes a whole vector of products, as the client's
//! polynomial data GGSWs do (`ggsw.rs`).
//!
//! Noise: the rows carry the bootstrap's output noise plus the keyswitch's, which the
//! external product multiplies by `(k+1)·l·N` digits of the other operand (the key
//! term of `noise::formulas::external_product`) — absolute noise, independent of `m`,
//! so small bases with more levels keep it low. `noise::formulas::converted_ggsw_row`
//! is the model; `runtime/tests/tfhe_convert.rs` measures it. That is why conversions
//! bootstrap with their own, deeper key (`ParamSet::convert_bsk`, 8x6).

use super::cipher::{Glwe, Lwe, LweVec};
use super::error::TfheError;
use super::keys::{ClientKey, Fingerprint, ServerKeys};
use super::ops::{self, Scratch};
use super::pack::private_functional_keyswitch_batched;
use super::params::{Decomp, ParamSet};
use super::rng::CryptoRng;
use blindtuner_compiler::plan::{torus_shift, Format, Lut};
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_monic_monomial_mul_assign;
use tfhe::core_crypto::prelude::*;

/// Decompositions of a conversion: the output GGSW's gadget and the private functional
/// packing keyswitch that builds its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertParams {
    pub ggsw: Decomp,
    pub pfks: Decomp,
    /// The bootstrap key of the conversions (its own, deeper than the training's).
    pub bsk: Decomp,
}

impl ConvertParams {
    /// The parameter set's: `convert` (base 2^3, 10 levels: 30 bits of the other
    /// operand kept, and a key term far below what the client GGSWs' base 2^10 would
    /// give with rows this noisy), `convert_bsk` and the packing keyswitch's
    /// decomposition.
    pub fn of(p: &ParamSet) -> ConvertParams {
        ConvertParams { ggsw: p.convert, pfks: p.pks, bsk: p.convert_bsk }
    }
}

/// The server's key for conversions: tfhe's circuit-bootstrap key list (`k + 1` private
/// functional packing keyswitch keys from the PBS key `s` to the PBS GLWE key `S`).
/// Like every circuit bootstrap it encrypts `S` under itself (circular security, as
/// tfhe's WoP-PBS assumes); it is generated only for plans that convert, and travels to
/// the server as its own file (`files::save_convert_key`) beside the server keys.
#[derive(Serialize, Deserialize)]
pub struct ConvertKey {
    pub(crate) params: ConvertParams,
    /// The client key it was derived from (checked against the server keys on load).
    pub(crate) fingerprint: Fingerprint,
    /// Bootstrap key small → `S` at `params.bsk`, in the Fourier domain.
    pub(crate) bsk: FourierLweBootstrapKeyOwned,
    pub(crate) pfpksk: LwePrivateFunctionalPackingKeyswitchKeyListOwned<u64>,
}

impl ConvertKey {
    pub fn params(&self) -> ConvertParams {
        self.params
    }
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

impl std::fmt::Debug for ConvertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(
            f,
            "ConvertKey(ggsw {}, bsk {}, pfks {}, {})",
            self.params.ggsw, self.params.bsk, self.params.pfks, self.fingerprint
        )
    }
}

/// Whether `plan` needs the conversion keys: it multiplies two server values (its
/// products are lowered by conversions to GGSW).
pub fn needed_by(plan: &blindtuner_compiler::plan::Plan) -> bool {
    !plan.products.is_empty()
}

impl ClientKey {
    /// The conversion keys `plan` needs ([`needed_by`]), at this parameter set's
    /// decompositions; `None` for a plan without products of two server values.
    pub fn convert_key_for(&self, plan: &blindtuner_compiler::plan::Plan, rng: &mut CryptoRng) -> Option<ConvertKey> {
        needed_by(plan).then(|| self.convert_key(ConvertParams::of(&self.params), rng))
    }

    /// Derive the conversion keys: a bootstrap key at `cp.bsk` (344 MiB at 8x6) and the
    /// packing keys (`(k+1)·(k·N+1)·levels` GLWEs: 512 MiB at 9x4).
    pub fn convert_key(&self, cp: ConvertParams, rng: &mut CryptoRng) -> ConvertKey {
        let p = &self.params;
        super::fftplan::pin(p.poly_size);
        let fbsk = self.bootstrap_key(cp.bsk, rng.encryption_generator());
        let pfpksk = par_allocate_and_generate_new_circuit_bootstrap_lwe_pfpksk_list(
            &self.pbs.as_lwe_secret_key(),
            &self.pbs,
            cp.pfks.base_log(),
            cp.pfks.level_count(),
            p.glwe_noise,
            p.modulus,
            rng.encryption_generator(),
        );
        ConvertKey { params: cp, fingerprint: self.fingerprint(), bsk: fbsk, pfpksk }
    }

    /// A GLWE of the torus polynomial `msg` under the PBS GLWE key (what a converted
    /// GGSW multiplies), e.g. packed errors or a weight polynomial.
    pub fn encrypt_pbs_glwe(&self, msg: &[u64], rng: &mut CryptoRng) -> Glwe {
        let p = &self.params;
        let mut g = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
        let pt = PlaintextList::from_container(msg.to_vec());
        encrypt_glwe_ciphertext(&self.pbs, &mut g, &pt, p.glwe_noise, rng.encryption_generator());
        g
    }

    /// The phase of a GLWE under the PBS GLWE key (verification only).
    pub fn pbs_glwe_phase(&self, glwe: &Glwe) -> Vec<u64> {
        let mut out = PlaintextList::new(0u64, PlaintextCount(glwe.polynomial_size().0));
        decrypt_glwe_ciphertext(&self.pbs, glwe, &mut out);
        out.into_container()
    }
}

/// The table a level's bootstrap reads: `m(cell)·q/B^level`, where `m` is the integer
/// a product reads from `lut`'s output (`int_fmt.int_value`, the operand register's
/// format) in an epoch with learning-rate shift `lr_shift` (for a learning-rate scaled
/// table).
pub fn level_table(lut: &Lut, int_fmt: &Format, lr_shift: u32, dec: Decomp, level: usize) -> Lut {
    let gadget = 64 - (dec.base_log * level) as u32;
    let shift = if lut.lr_scaled { lr_shift } else { 0 };
    let ints = lut.table.iter().map(|&t| int_fmt.int_value(torus_shift((t as u64).wrapping_shl(lut.out_shift), shift)));
    Lut {
        name: format!("{} → GGSW level {level}", lut.name),
        func: format!("int({})·2^{gadget}", lut.func),
        table: ints.collect(),
        out_shift: gadget,
        lr_scaled: false,
        ..lut.clone()
    }
}

/// `GGSW(m_i)` (standard domain, under the PBS GLWE key) for every element of `x`,
/// where `m_i` is `int_fmt.int_value` of `lut` at `x_i`.
/// Bootstraps: `x.len() · levels` (returned with the GGSWs, for the counters).
pub fn table_to_ggsw(
    sk: &ServerKeys,
    ck: &ConvertKey,
    lut: &Lut,
    int_fmt: &Format,
    x: &LweVec,
) -> Result<(Vec<GgswCiphertextOwned<u64>>, u64), TfheError> {
    table_to_ggsw_parts(sk, ck, lut, int_fmt, 0, std::slice::from_ref(x))
}

/// [`table_to_ggsw`] for an input that is a sum of parts under different keys (a
/// register's `Value`): every part is keyswitched to the small key, where they add; a
/// learning-rate scaled table is read at shift `lr_shift`.
pub fn table_to_ggsw_parts(
    sk: &ServerKeys,
    ck: &ConvertKey,
    lut: &Lut,
    int_fmt: &Format,
    lr_shift: u32,
    parts: &[LweVec],
) -> Result<(Vec<GgswCiphertextOwned<u64>>, u64), TfheError> {
    let p = sk.params();
    let small = ops::keyswitch_parts(sk, parts, lut.offset)?;
    let dec = ck.params.ggsw;
    let mut out: Vec<GgswCiphertextOwned<u64>> = (0..small.len())
        .map(|_| GgswCiphertext::new(0u64, p.glwe_size(), p.poly_size, dec.base_log(), dec.level_count(), p.modulus))
        .collect();
    let fft = Fft::new(p.poly_size);
    let mut scratch = Scratch::new();
    for out_idx in 0..dec.levels {
        // Level matrix 0 is the finest level (tfhe's convention, see `ggsw.rs`).
        let level = dec.levels - out_idx;
        let acc = ops::accumulator(p, &level_table(lut, int_fmt, lr_shift, dec, level), 0);
        let lwes = ops::batch_pbs(p, &ck.bsk, &acc, &small, fft.as_view(), &mut scratch);
        let inputs: Vec<&Lwe> = lwes.iter().collect();
        // Row `r` of this level of every output, keyswitched with key `r` in one pass.
        let glwe_len = p.glwe_size().0 * p.n();
        let matrix_len = p.glwe_size().0 * glwe_len;
        for (r, key) in ck.pfpksk.iter().enumerate() {
            let start = out_idx * matrix_len + r * glwe_len;
            let mut rows: Vec<&mut [u64]> = out.iter_mut().map(|g| &mut g.as_mut()[start..start + glwe_len]).collect();
            private_functional_keyswitch_batched(&key, &inputs, &mut rows);
        }
    }
    Ok((out, (small.len() * dec.levels) as u64))
}

/// A noiseless GGSW of the public integer `m` (a bias column's constant feature): the
/// rows `i < k` carry `m·q/B^l` in mask polynomial `i` (phase `−m·q/B^l·S_i`), the last
/// row in its body.
pub fn trivial_ggsw(p: &ParamSet, cp: ConvertParams, m: i64) -> GgswCiphertextOwned<u64> {
    let mut g = zero_ggsw(p, cp);
    let n = p.n();
    let k = p.glwe_dim.0;
    let levels = cp.ggsw.levels;
    for (out_idx, mut matrix) in g.iter_mut().enumerate() {
        let level = levels - out_idx;
        let factor = (m as u64).wrapping_mul(1u64 << (64 - cp.ggsw.base_log * level));
        for (row, mut glwe) in matrix.as_mut_glwe_list().iter_mut().enumerate() {
            // Mask polynomial `row` for the rows `< k`, the body (polynomial `k`) for the last.
            glwe.as_mut()[row.min(k) * n] = factor;
        }
    }
    g
}

/// Pack `lwes` (under the PBS key, at most `N`) into one GLWE under the PBS GLWE key
/// with the identity key of the conversion list: coefficient `c` encrypts `lwes[c]`.
pub fn pack_pbs(p: &ParamSet, ck: &ConvertKey, lwes: &[Lwe]) -> Glwe {
    let mut out = ops::zero_glwe(p);
    let Some(identity) = ck.pfpksk.iter().next_back() else { return out };
    let inputs: Vec<&Lwe> = lwes.iter().collect();
    let mut each: Vec<Glwe> = (0..lwes.len()).map(|_| ops::zero_glwe(p)).collect();
    let mut rows: Vec<&mut [u64]> = each.iter_mut().map(|g| g.as_mut()).collect();
    private_functional_keyswitch_batched(&identity, &inputs, &mut rows);
    for (c, g) in each.iter_mut().enumerate() {
        for mut poly in g.as_mut_polynomial_list().iter_mut() {
            polynomial_wrapping_monic_monomial_mul_assign(&mut poly, MonomialDegree(c));
        }
        glwe_ciphertext_add_assign(&mut out, g);
    }
    out
}

/// `dst += X^degree · src` for every row polynomial (negacyclic: `X^N = −1`; a negative
/// degree is taken modulo `2N`): `dst` becomes a GGSW of `μ_dst + X^degree·μ_src`.
pub fn add_monomial_ggsw(dst: &mut GgswCiphertextOwned<u64>, src: &GgswCiphertextOwned<u64>, degree: i64) {
    let n = src.polynomial_size().0;
    let two_n = 2 * n as i64;
    let e = degree.rem_euclid(two_n) as usize;
    for (d, s) in dst.as_mut().chunks_exact_mut(n).zip(src.as_ref().chunks_exact(n)) {
        for (i, &v) in s.iter().enumerate() {
            let t = i + e;
            let (pos, neg) = if t < n {
                (t, false)
            } else if t < 2 * n {
                (t - n, true)
            } else {
                (t - 2 * n, false)
            };
            d[pos] = if neg { d[pos].wrapping_sub(v) } else { d[pos].wrapping_add(v) };
        }
    }
}

/// A zero GGSW of the conversion's shape (the start of a sum of monomial-shifted GGSWs).
pub fn zero_ggsw(p: &ParamSet, cp: ConvertParams) -> GgswCiphertextOwned<u64> {
    GgswCiphertext::new(0u64, p.glwe_size(), p.poly_size, cp.ggsw.base_log(), cp.ggsw.level_count(), p.modulus)
}

/// `GLWE ⊡ GGSW` for one product (converts the GGSW to the Fourier domain first).
pub fn external_product(p: &ParamSet, ggsw: &GgswCiphertextOwned<u64>, glwe: &Glwe) -> Glwe {
    external_product_with(p, ggsw, glwe, Fft::new(p.poly_size).as_view(), &mut Scratch::new())
}

/// [`external_product`] with the caller's FFT plan and scratch (the interpreter's).
pub(crate) fn external_product_with(
    p: &ParamSet,
    ggsw: &GgswCiphertextOwned<u64>,
    glwe: &Glwe,
    fft: FftView<'_>,
    scratch: &mut Scratch,
) -> Glwe {
    let f = super::ggsw::to_fourier(ggsw, fft, &mut ComputationBuffers::new());
    let mut acc = ops::zero_glwe(p);
    ops::external_product_add(p, &mut acc, &f, glwe, fft, scratch);
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfhe::files::{self, FileErrorKind};
    use crate::tfhe::keys::keygen;
    use crate::tfhe::KeyKind;
    use std::sync::OnceLock;

    /// One key set and its conversion keys (≈ 7 s, 856 MiB) for the tests of this module.
    fn keys() -> &'static (ClientKey, ServerKeys, ConvertKey) {
        static KEYS: OnceLock<(ClientKey, ServerKeys, ConvertKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let p = ParamSet::default_set();
            let mut rng = CryptoRng::from_seed(3);
            let (ck, sk) = keygen(&p, &mut rng);
            let ckey = ck.convert_key(ConvertParams::of(&p), &mut rng);
            (ck, sk, ckey)
        })
    }

    /// The batched keyswitch is tfhe's, bit for bit, for every key of the list.
    #[test]
    fn batched_private_functional_keyswitch_is_tfhe_s() {
        let (ck, _, ckey) = keys();
        let p = ck.params();
        let x = ck.encrypt_lwe_vec(KeyKind::Pbs, &[1 << 60, 3 << 58, 0], &mut CryptoRng::from_seed(4));
        let inputs: Vec<&Lwe> = x.cts.iter().collect();
        for key in ckey.pfpksk.iter() {
            let mut ours: Vec<Glwe> = (0..inputs.len()).map(|_| ops::zero_glwe(p)).collect();
            let mut rows: Vec<&mut [u64]> = ours.iter_mut().map(|g| g.as_mut()).collect();
            private_functional_keyswitch_batched(&key, &inputs, &mut rows);
            for (lwe, got) in inputs.iter().zip(&ours) {
                let mut want = ops::zero_glwe(p);
                private_functional_keyswitch_lwe_ciphertext_into_glwe_ciphertext(&key, &mut want, *lwe);
                assert_eq!(got.as_ref(), want.as_ref());
            }
        }
    }

    /// Conversion keys round-trip through their file; keys whose conversion
    /// decompositions are not the ones the server keys' parameter set uses are refused
    /// by name (a file from another build), and so are another client key's.
    #[test]
    fn conversion_keys_file_round_trip_and_mismatches() {
        let (ck, sk, key) = keys();
        let (_, other_sk) = keygen(ck.params(), &mut CryptoRng::from_seed(5));
        let dir = std::env::temp_dir().join(format!("bt-convert-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("convert.keys");
        files::save_convert_key(&path, sk, key).expect("saves");
        let mut back = files::load_convert_key(&path, sk).expect("loads");
        assert_eq!((back.params(), back.fingerprint()), (key.params(), key.fingerprint()));
        let e = files::load_convert_key(&path, &other_sk).expect_err("another client key");
        assert!(matches!(e.kind, FileErrorKind::WrongKey { .. }), "{e}");

        back.params.ggsw = Decomp::new(4, 7);
        files::save_convert_key(&path, sk, &back).expect("saves");
        let e = files::load_convert_key(&path, sk).expect_err("other conversion decompositions");
        assert!(matches!(e.kind, FileErrorKind::ParamsMismatch { .. }), "{e}");
        assert!(e.to_string().contains("ggsw 4x7") && e.to_string().contains("ggsw 3x10"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
