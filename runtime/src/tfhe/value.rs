//! A register's value on the server: the sum of LWE vectors under different keys.
//!
//! Most registers live under one key (data products under the data key, bootstrap
//! outputs under the PBS key). A softmax's `lse(a, b) = a + softplus(b − a)` adds a
//! bootstrap output to a logit, and there is no cheap LWE keyswitch from the PBS key
//! back to the data key (only the packing keyswitch). So a value keeps one part per
//! key and the parts meet where they must: the next bootstrap keyswitches every part
//! to the small key and adds them there (one extra keyswitch's noise per extra part).
//! Levelled operations act part by part; a missing part is a trivial zero.

use super::cipher::{Lwe, LweVec};
use super::error::{invalid, TfheError};
use super::keys::KeyKind;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Value {
    /// Distinct keys, equal lengths, at least one part.
    parts: Vec<LweVec>,
}

impl From<LweVec> for Value {
    fn from(v: LweVec) -> Value {
        Value { parts: vec![v] }
    }
}

impl Value {
    pub fn parts(&self) -> &[LweVec] {
        &self.parts
    }

    pub fn len(&self) -> usize {
        self.parts[0].cts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value as one LWE vector, if it lives under one key.
    pub fn single(&self) -> Option<&LweVec> {
        match self.parts.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }

    pub fn into_single(self, what: &str) -> Result<LweVec, TfheError> {
        let keys: Vec<String> = self.parts.iter().map(|p| p.key.to_string()).collect();
        let mut parts = self.parts;
        match parts.len() {
            1 => Ok(parts.remove(0)),
            _ => Err(invalid(format!("{what} is a sum under several keys ({})", keys.join(", ")))),
        }
    }

    fn part_mut(&mut self, key: KeyKind) -> &mut LweVec {
        if let Some(i) = self.parts.iter().position(|p| p.key == key) {
            return &mut self.parts[i];
        }
        let zero = zero_like(&self.parts[0].cts[0]);
        self.parts.push(LweVec { key, cts: vec![zero; self.len()] });
        self.parts.last_mut().expect("just pushed")
    }

    /// `self ± o`, part by part (parts only `o` has join as they are, or negated).
    pub fn add(&self, o: &Value, sub: bool) -> Result<Value, TfheError> {
        if o.len() != self.len() {
            return Err(invalid(format!("operands of {} and {} elements", self.len(), o.len())));
        }
        let mut r = self.clone();
        for p in &o.parts {
            let dst = r.part_mut(p.key);
            for (x, y) in dst.cts.iter_mut().zip(&p.cts) {
                if sub {
                    lwe_ciphertext_sub_assign(x, y);
                } else {
                    lwe_ciphertext_add_assign(x, y);
                }
            }
        }
        Ok(r)
    }

    /// A constant is added once (to the first part).
    pub fn add_plaintext(&mut self, c: u64) {
        self.parts[0].cts.iter_mut().for_each(|x| lwe_ciphertext_plaintext_add_assign(x, Plaintext(c)));
    }

    /// Element `j` gets the constant `c(j)` (to the first part, as `add_plaintext`).
    pub fn add_plaintext_each(&mut self, c: impl Fn(usize) -> u64) {
        for (j, x) in self.parts[0].cts.iter_mut().enumerate() {
            lwe_ciphertext_plaintext_add_assign(x, Plaintext(c(j)));
        }
    }

    pub fn mul_int(&mut self, c: i64) {
        for p in &mut self.parts {
            p.cts.iter_mut().for_each(|x| lwe_ciphertext_cleartext_mul_assign(x, Cleartext(c as u64)));
        }
    }

    pub fn elem(&self, index: usize) -> Result<Value, TfheError> {
        if index >= self.len() {
            return Err(invalid(format!("element {index} of a {}-element register", self.len())));
        }
        let parts = self.parts.iter().map(|p| LweVec { key: p.key, cts: vec![p.cts[index].clone()] }).collect();
        Ok(Value { parts })
    }

    pub fn bcast(&self, len: usize) -> Value {
        let parts = self.parts.iter().map(|p| LweVec { key: p.key, cts: vec![p.cts[0].clone(); len] }).collect();
        Value { parts }
    }

    /// `a ++ b ++ …`: the keys of every operand, zeros where an operand lacks one.
    pub fn concat(values: &[&Value]) -> Result<Value, TfheError> {
        let first = values.first().ok_or_else(|| invalid("concatenation of nothing"))?;
        let mut keys: Vec<KeyKind> = Vec::new();
        for v in values {
            for p in &v.parts {
                if !keys.contains(&p.key) {
                    keys.push(p.key);
                }
            }
        }
        let zero = zero_like(&first.parts[0].cts[0]);
        let parts = keys
            .into_iter()
            .map(|key| {
                let cts = values
                    .iter()
                    .flat_map(|v| match v.parts.iter().find(|p| p.key == key) {
                        Some(p) => p.cts.clone(),
                        None => vec![zero.clone(); v.len()],
                    })
                    .collect();
                LweVec { key, cts }
            })
            .collect();
        Ok(Value { parts })
    }
}

/// A trivial encryption of 0 (all-zero mask and body) of `ct`'s dimension: zero under
/// every key.
fn zero_like(ct: &Lwe) -> Lwe {
    LweCiphertext::new(0u64, ct.lwe_size(), ct.ciphertext_modulus())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trivial(key: KeyKind, vals: &[u64]) -> LweVec {
        let cts = vals
            .iter()
            .map(|&v| {
                let mut ct = LweCiphertext::new(0u64, LweSize(5), CiphertextModulus::new_native());
                *ct.get_mut_body().data = v;
                ct
            })
            .collect();
        LweVec { key, cts }
    }

    fn bodies(v: &LweVec) -> Vec<u64> {
        v.cts.iter().map(|c| *c.get_body().data).collect()
    }

    #[test]
    fn sums_keep_one_part_per_key_and_concat_fills_zeros() {
        let z = Value::from(trivial(KeyKind::Data, &[10, 20]));
        let sp = Value::from(trivial(KeyKind::Pbs, &[1, 2]));
        let lse = z.add(&sp, false).expect("same length");
        assert_eq!(lse.parts().len(), 2);
        assert!(lse.single().is_none());
        assert_eq!(bodies(&lse.parts()[0]), [10, 20]);
        assert_eq!(bodies(&lse.parts()[1]), [1, 2]);
        // z − lse: the data parts cancel, the PBS part is negated.
        let d = z.add(&lse, true).expect("same length");
        assert_eq!(bodies(&d.parts()[0]), [0, 0]);
        assert_eq!(bodies(&d.parts()[1]), [1u64.wrapping_neg(), 2u64.wrapping_neg()]);
        let c = Value::concat(&[&z.elem(1).expect("in range"), &lse.elem(0).expect("in range")]).expect("parts");
        assert_eq!(c.len(), 2);
        assert_eq!(bodies(&c.parts()[0]), [20, 10]);
        assert_eq!(bodies(&c.parts()[1]), [0, 1], "the first operand has no PBS part: a trivial zero");
        assert!(lse.clone().into_single("lse").is_err());
        assert!(z.add(&Value::from(trivial(KeyKind::Pbs, &[1])), false).is_err());
    }
}
