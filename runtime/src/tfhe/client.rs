//! What the data owner does with the [`ClientKey`]: encrypt samples and the initial
//! model, decrypt the trained model and (for tests and diagnostics) any register.

use super::analysis::PlanInfo;
use super::average;
use super::cipher::{EncModel, EncSample, EncTensor, Glwe, Lwe, LweVec};
use super::error::{bad_ct, TfheError};
use super::ggsw::{data_polynomial, encrypt_poly_ggsw_seeded};
use super::keys::{ClientKey, KeyKind};
use super::rng::CryptoRng;
use blindtuner_compiler::plan::{torus_shift, Inst, Layout, Plan, PlanInput, PlanTensor};
use tfhe::core_crypto::prelude::*;

/// `(polynomial, coefficient)` of element `[r][j]` in `Layout::DataPoly`.
pub fn data_poly_pos(rows: usize, per_poly: usize, r: usize, j: usize) -> (usize, usize) {
    (j / per_poly, r + rows * (j % per_poly))
}

impl ClientKey {
    /// Encrypt one value per element under `key`.
    pub fn encrypt_lwe_vec(&self, key: KeyKind, values: &[u64], rng: &mut CryptoRng) -> LweVec {
        let sk = self.lwe_key(key);
        let noise = if key == KeyKind::Small { self.params.lwe_noise } else { self.params.glwe_noise };
        let cts = values
            .iter()
            .map(|&v| {
                let mut ct = LweCiphertext::new(0u64, sk.lwe_dimension().to_lwe_size(), self.params.modulus);
                encrypt_lwe_ciphertext(&sk, &mut ct, Plaintext(v), noise, rng.encryption_generator());
                ct
            })
            .collect();
        LweVec { key, cts }
    }

    /// Phases (message + noise) of a register.
    pub fn decrypt_lwe_vec(&self, v: &LweVec) -> Vec<u64> {
        let sk = self.lwe_key(v.key);
        v.cts.iter().map(|ct| decrypt_lwe_ciphertext(&sk, ct).0).collect()
    }

    /// Phases of a register that may be a sum under several keys (the parts' sum).
    pub fn decrypt_value(&self, v: &super::value::Value) -> Vec<u64> {
        let mut out = vec![0u64; v.len()];
        for part in v.parts() {
            out.iter_mut().zip(self.decrypt_lwe_vec(part)).for_each(|(o, p)| *o = o.wrapping_add(p));
        }
        out
    }

    /// Phase of one LWE under `key`.
    pub fn decrypt_lwe(&self, key: KeyKind, ct: &Lwe) -> u64 {
        decrypt_lwe_ciphertext(&self.lwe_key(key), ct).0
    }

    /// The rotation index `∈ [0, 2N)` a bootstrap of `ct` (small key) really uses:
    /// mask and body modulus-switched to `2N` separately (round to nearest, as tfhe
    /// does), then decrypted in `Z_2N`. Differs from rounding the phase by the
    /// modulus-switch noise; tests compare LUT cells with this.
    pub fn pbs_index(&self, ct: &Lwe) -> usize {
        let two_n = 2 * self.params.n() as u64;
        let sh = 64 - two_n.trailing_zeros();
        let round = |x: u64| x.wrapping_add(1u64 << (sh - 1)) >> sh;
        let mut acc = round(*ct.get_body().data);
        for (a, s) in ct.get_mask().as_ref().iter().zip(self.small.as_ref()) {
            acc = acc.wrapping_sub(round(*a).wrapping_mul(*s));
        }
        (acc % two_n) as usize
    }

    /// Encrypt one sample: `xq[i]` are the quantized features of `plan.inputs[i]`,
    /// with or without the constant feature (the clear backend's `QSample::xq` has it),
    /// `labels[i]` the class of `plan.labels[i]`.
    pub fn encrypt_sample(
        &self,
        plan: &Plan,
        info: &PlanInfo,
        xq: &[Vec<i64>],
        labels: &[usize],
        rng: &mut CryptoRng,
    ) -> Result<EncSample, TfheError> {
        if xq.len() != plan.inputs.len() || labels.len() != plan.labels.len() {
            return Err(bad_ct(format!(
                "sample has {} inputs and {} labels, plan {} and {}",
                xq.len(),
                labels.len(),
                plan.inputs.len(),
                plan.labels.len()
            )));
        }
        let n = self.params.n();
        let mut ggsw = Vec::with_capacity(info.needs.len());
        for need in &info.needs {
            let (pos, input) = plan
                .inputs
                .iter()
                .enumerate()
                .find(|(_, i)| i.id == need.input)
                .ok_or_else(|| bad_ct("plan input missing"))?;
            let aug = augmented(input, &xq[pos])?;
            if need.stride * need.per_poly > n || need.per_poly * need.polys < aug.len() {
                return Err(bad_ct(format!(
                    "input `{}`: layout does not fit N = {n} (plan info from another plan?)",
                    input.name
                )));
            }
            let polys = (0..need.polys)
                .map(|p| {
                    let mu = data_polynomial(&aug, need.stride, need.per_poly, p, need.dir, n);
                    encrypt_poly_ggsw_seeded(&self.data, &self.params, &mu, rng)
                })
                .collect();
            ggsw.push(polys);
        }
        let mut enc_labels = Vec::with_capacity(info.label_terms.len());
        for &i in &info.label_terms {
            let Some(&Inst::LabelTerm { label, on, off, out, lr_scaled }) = plan.inst(i) else {
                return Err(bad_ct("label term index does not point at a LabelTerm"));
            };
            let pos = plan.labels.iter().position(|l| l.id == label).ok_or_else(|| bad_ct("plan label missing"))?;
            let classes = plan.labels[pos].classes;
            if labels[pos] >= classes {
                return Err(bad_ct(format!("label {} out of range 0..{classes}", labels[pos])));
            }
            // Learning-rate scaled terms are encrypted at the run's largest shift; the
            // server scales them up to each epoch's value.
            let shift = if lr_scaled { plan.train.max_lr_shift() } else { 0 };
            let (on, off) = (torus_shift(on, shift), torus_shift(off, shift));
            let values: Vec<u64> = (0..classes).map(|c| if c == labels[pos] { on } else { off }).collect();
            let key = info.reg_keys.get(out.index()).copied().ok_or_else(|| bad_ct("label register missing"))?;
            enc_labels.push(self.encrypt_lwe_vec(key, &values, rng));
        }
        Ok(EncSample { ggsw, labels: enc_labels })
    }

    /// Encrypt the model: `values[t]` is tensor `t` row-major (`rows × cols` torus values).
    pub fn encrypt_model(&self, plan: &Plan, values: &[Vec<u64>], rng: &mut CryptoRng) -> Result<EncModel, TfheError> {
        let p = &self.params;
        let tensors = model_messages(plan, p.n(), values)?
            .into_iter()
            .zip(&plan.tensors)
            .map(|(m, t)| match m {
                TensorMessages::Poly(polys) => EncTensor::Poly(
                    polys
                        .into_iter()
                        .map(|m| {
                            // `PbsPoly` tensors multiply GGSWs the server converts (PBS key).
                            let key = if matches!(t.layout, Layout::PbsPoly { .. }) { &self.pbs } else { &self.data };
                            let mut g = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
                            let pt = PlaintextList::from_container(m);
                            encrypt_glwe_ciphertext(key, &mut g, &pt, p.glwe_noise, rng.encryption_generator());
                            g
                        })
                        .collect(),
                ),
                TensorMessages::Lwe(v) => EncTensor::Lwe(self.encrypt_lwe_vec(KeyKind::Data, &v, rng)),
            })
            .collect();
        Ok(EncModel::new(tensors))
    }

    /// The trained model: every tensor decrypted to its phases (row-major), the
    /// parameters replaced by their tail average when the model carries one. Round
    /// them to the tensor's grid with `Format::int_value` to read the model.
    pub fn decrypt_model(&self, plan: &Plan, model: &EncModel) -> Result<Vec<Vec<u64>>, TfheError> {
        let mut out = self.decrypt_iterate(plan, model)?;
        if let Some(mean) = &model.mean {
            average::check(plan, &model.tensors, mean)?;
            for ((t, sum), last) in plan.tensors.iter().zip(&mean.sums).zip(out.iter_mut()) {
                if let Some(sum) = sum {
                    let sums = self.decrypt_tensor(t, sum)?;
                    last.iter_mut().zip(sums).for_each(|(w, s)| *w = average::unwrap_mean(mean.steps, s, *w));
                }
            }
        }
        Ok(out)
    }

    /// The training loss measured under encryption: `(epoch, mean loss, samples)` per
    /// epoch that has measured samples.
    pub fn decrypt_loss(&self, plan: &Plan, model: &EncModel) -> Result<Vec<(usize, f64, u64)>, TfheError> {
        let Some(l) = &plan.loss else { return Ok(Vec::new()) };
        let fmt = plan.regs.get(l.reg.index()).ok_or_else(|| bad_ct("plan loss register missing"))?.fmt;
        model
            .loss
            .iter()
            .map(|e| {
                let sum = self.decrypt_value(&e.sum).first().copied().ok_or_else(|| bad_ct("empty loss sum"))?;
                Ok((e.epoch, fmt.to_real(sum) / e.samples.max(1) as f64, e.samples))
            })
            .collect()
    }

    /// The current iterate (the tensors as the last step left them), ignoring any
    /// tail average.
    pub fn decrypt_iterate(&self, plan: &Plan, model: &EncModel) -> Result<Vec<Vec<u64>>, TfheError> {
        if model.tensors.len() != plan.tensors.len() {
            return Err(bad_ct(format!("model has {} tensors, plan {}", model.tensors.len(), plan.tensors.len())));
        }
        plan.tensors.iter().zip(&model.tensors).map(|(t, enc)| self.decrypt_tensor(t, enc)).collect()
    }

    fn decrypt_tensor(&self, t: &PlanTensor, enc: &EncTensor) -> Result<Vec<u64>, TfheError> {
        let mismatch = || bad_ct(format!("tensor `{}` does not match its layout", t.name));
        let poly = match t.layout {
            Layout::DataPoly { per_poly, polys, .. } => Some((per_poly, polys, false)),
            Layout::PbsPoly { per_poly, polys } => Some((per_poly, polys, true)),
            Layout::Lwe => None,
        };
        match (poly, enc) {
            (Some((per_poly, polys, pbs)), EncTensor::Poly(glwes)) if glwes.len() == polys => {
                let phase = |g: &Glwe| if pbs { self.pbs_glwe_phase(g) } else { self.glwe_phase(g) };
                let phases: Vec<Vec<u64>> = glwes.iter().map(phase).collect();
                let mut out = vec![0u64; t.rows * t.cols];
                for r in 0..t.rows {
                    for j in 0..t.cols {
                        let (pi, c) = data_poly_pos(t.rows, per_poly, r, j);
                        out[r * t.cols + j] = phases[pi][c];
                    }
                }
                Ok(out)
            }
            (None, EncTensor::Lwe(v)) if v.cts.len() == t.rows * t.cols => Ok(self.decrypt_lwe_vec(v)),
            _ => Err(mismatch()),
        }
    }

    /// Phase of a GLWE under the data key.
    pub fn glwe_phase(&self, g: &Glwe) -> Vec<u64> {
        let mut pl = PlaintextList::new(0u64, PlaintextCount(self.params.n()));
        decrypt_glwe_ciphertext(&self.data, g, &mut pl);
        pl.into_container()
    }

    /// The data GLWE key, for tests of the GGSW encoding.
    pub fn data_glwe_key(&self) -> &GlweSecretKeyOwned<u64> {
        &self.data
    }
}

/// The features as the data products see them: the constant feature appended if the
/// input has one and the caller did not append it.
fn augmented(input: &PlanInput, x: &[i64]) -> Result<Vec<i64>, TfheError> {
    if x.len() == input.augmented_len() && (input.one.is_none() || x.last().copied() == input.one) {
        return Ok(x.to_vec());
    }
    if x.len() == input.len {
        return Ok(x.iter().copied().chain(input.one).collect());
    }
    Err(bad_ct(format!("input `{}` has {} features, expected {}", input.name, x.len(), input.len)))
}

/// The plaintexts of a model in the tensors' layouts: the polynomials of a `DataPoly`
/// tensor, the coefficients of an `Lwe` one. Shared by encryption under the client key
/// and by the trivial encryption of the (public) initial model.
pub(crate) enum TensorMessages {
    Poly(Vec<Vec<u64>>),
    Lwe(Vec<u64>),
}

/// Check `values` against the plan's tensors and lay them out (`n` = polynomial size).
pub(crate) fn model_messages(plan: &Plan, n: usize, values: &[Vec<u64>]) -> Result<Vec<TensorMessages>, TfheError> {
    if values.len() != plan.tensors.len() {
        return Err(bad_ct(format!("{} tensor values for {} plan tensors", values.len(), plan.tensors.len())));
    }
    plan.tensors
        .iter()
        .zip(values)
        .map(|(t, v)| {
            if v.len() != t.rows * t.cols {
                return Err(bad_ct(format!("tensor `{}`: {} values for {}×{}", t.name, v.len(), t.rows, t.cols)));
            }
            Ok(match t.layout {
                Layout::DataPoly { per_poly, polys, .. } | Layout::PbsPoly { per_poly, polys } => {
                    let mut msgs = vec![vec![0u64; n]; polys];
                    for r in 0..t.rows {
                        for j in 0..t.cols {
                            let (pi, c) = data_poly_pos(t.rows, per_poly, r, j);
                            let slot = msgs.get_mut(pi).and_then(|m| m.get_mut(c));
                            let slot =
                                slot.ok_or_else(|| bad_ct(format!("tensor `{}` does not fit its layout", t.name)))?;
                            *slot = v[r * t.cols + j];
                        }
                    }
                    TensorMessages::Poly(msgs)
                }
                Layout::Lwe => TensorMessages::Lwe(v.clone()),
            })
        })
        .collect()
}
