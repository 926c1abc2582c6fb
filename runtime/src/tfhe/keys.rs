//! Keys: the data owner's secret [`ClientKey`] and the server's public [`ServerKeys`].
//!
//! The two are different types on purpose: everything that runs on the server takes
//! `&ServerKeys` only, so no server code path can reach a secret key.
//!
//! Key chain (no key is ever encrypted under itself):
//! weights, data GGSWs and packed errors live under the *data* GLWE key `S′`; logits are
//! extracted under `s′` (its LWE view) → keyswitch `s′ → small` → PBS (bootstrap key
//! `small → S`) → errors under `s` (the *PBS* GLWE key's LWE view) → packing keyswitch
//! `s → S′`.

use super::params::ParamSet;
use super::rng::{CryptoRng, EncGen};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use tfhe::core_crypto::prelude::*;

/// The secret key an LWE ciphertext is encrypted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    /// LWE view `s′` of the data GLWE key (dimension `N`): extracted logits, the model.
    Data,
    /// LWE view `s` of the PBS output GLWE key (dimension `N`): bootstrap outputs.
    Pbs,
    /// The small LWE key (dimension `n`): bootstrap inputs.
    Small,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Data => "data key s′",
            KeyKind::Pbs => "PBS key s",
            KeyKind::Small => "small key",
        })
    }
}

/// Identifies a key pair: sha256 over the parameter-set id and the key pair's random id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    fn of(params: &ParamSet, key_id: u128) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"blindtuner-key-v1\0");
        h.update(params.id().0.as_bytes());
        h.update(key_id.to_le_bytes());
        Fingerprint(h.finalize().into())
    }
    /// Short hex form for messages.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

/// The data owner's secret keys. Never leaves the client.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientKey {
    #[serde(with = "super::params::by_id")]
    pub(crate) params: ParamSet,
    pub(crate) key_id: u128,
    pub(crate) small: LweSecretKeyOwned<u64>,
    /// `S`: output key of the bootstrap.
    pub(crate) pbs: GlweSecretKeyOwned<u64>,
    /// `S′`: key of the model, the data GGSWs and the packed errors.
    pub(crate) data: GlweSecretKeyOwned<u64>,
}

/// Public evaluation keys: all the server gets.
#[derive(Serialize, Deserialize)]
pub struct ServerKeys {
    #[serde(with = "super::params::by_id")]
    pub(crate) params: ParamSet,
    pub(crate) fingerprint: Fingerprint,
    /// Bootstrap key small → `S`, in the Fourier domain.
    pub(crate) bsk: FourierLweBootstrapKeyOwned,
    /// Keyswitch `s′ → small` (LUT on a logit).
    pub(crate) ksk_data: LweKeyswitchKeyOwned<u64>,
    /// Keyswitch `s → small` (LUT on a bootstrap output).
    pub(crate) ksk_pbs: LweKeyswitchKeyOwned<u64>,
    /// Packing keyswitch `s → S′` (errors into one GLWE under the data key).
    pub(crate) pksk: LwePackingKeyswitchKeyOwned<u64>,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "ClientKey({}, {})", self.params.id(), self.fingerprint())
    }
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKeys({}, {})", self.params.id(), self.fingerprint)
    }
}

impl ClientKey {
    /// Fresh secret keys.
    pub fn generate(params: &ParamSet, rng: &mut CryptoRng) -> ClientKey {
        let key_id = rng.fresh_seed();
        let mut sec = rng.secret_generator();
        let small = allocate_and_generate_new_binary_lwe_secret_key(params.lwe_dim, &mut sec);
        let pbs = allocate_and_generate_new_binary_glwe_secret_key(params.glwe_dim, params.poly_size, &mut sec);
        let data = allocate_and_generate_new_binary_glwe_secret_key(params.glwe_dim, params.poly_size, &mut sec);
        ClientKey { params: params.clone(), key_id, small, pbs, data }
    }

    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.params, self.key_id)
    }

    /// The LWE secret key of `kind`, as a borrowed view.
    pub(crate) fn lwe_key(&self, kind: KeyKind) -> LweSecretKey<&[u64]> {
        match kind {
            KeyKind::Data => self.data.as_lwe_secret_key(),
            KeyKind::Pbs => self.pbs.as_lwe_secret_key(),
            KeyKind::Small => self.small.as_view(),
        }
    }

    /// Derive the evaluation keys. Takes a few seconds (the bootstrap key is generated in
    /// parallel; the packing key dominates).
    pub fn server_keys(&self, rng: &mut CryptoRng) -> ServerKeys {
        let p = &self.params;
        super::fftplan::pin(p.poly_size);
        let enc = rng.encryption_generator();
        let fbsk = self.bootstrap_key(p.bsk, enc);
        let ksk_data = keyswitch_key(p, &self.data.as_lwe_secret_key(), &self.small, enc);
        let ksk_pbs = keyswitch_key(p, &self.pbs.as_lwe_secret_key(), &self.small, enc);
        let pksk = allocate_and_generate_new_lwe_packing_keyswitch_key(
            &self.pbs.as_lwe_secret_key(),
            &self.data,
            p.pks.base_log(),
            p.pks.level_count(),
            p.glwe_noise,
            p.modulus,
            enc,
        );
        ServerKeys { params: p.clone(), fingerprint: self.fingerprint(), bsk: fbsk, ksk_data, ksk_pbs, pksk }
    }
}

impl ClientKey {
    /// A bootstrap key small → `S` with decomposition `dec`, in the Fourier domain
    /// (generated in parallel, the standard-domain key dropped after conversion).
    pub(crate) fn bootstrap_key(&self, dec: super::params::Decomp, enc: &mut EncGen) -> FourierLweBootstrapKeyOwned {
        let p = &self.params;
        let bsk = par_allocate_and_generate_new_lwe_bootstrap_key(
            &self.small,
            &self.pbs,
            dec.base_log(),
            dec.level_count(),
            p.glwe_noise,
            p.modulus,
            enc,
        );
        let mut fbsk = FourierLweBootstrapKey::new(
            bsk.input_lwe_dimension(),
            bsk.glwe_size(),
            bsk.polynomial_size(),
            bsk.decomposition_base_log(),
            bsk.decomposition_level_count(),
        );
        par_convert_standard_lwe_bootstrap_key_to_fourier(&bsk, &mut fbsk);
        fbsk
    }
}

fn keyswitch_key(
    p: &ParamSet,
    from: &LweSecretKey<&[u64]>,
    to: &LweSecretKeyOwned<u64>,
    enc: &mut EncGen,
) -> LweKeyswitchKeyOwned<u64> {
    allocate_and_generate_new_lwe_keyswitch_key(
        from,
        to,
        p.ks.base_log(),
        p.ks.level_count(),
        p.lwe_noise,
        p.modulus,
        enc,
    )
}

/// Generate a client key and its server keys.
pub fn keygen(params: &ParamSet, rng: &mut CryptoRng) -> (ClientKey, ServerKeys) {
    let ck = ClientKey::generate(params, rng);
    let sk = ck.server_keys(rng);
    (ck, sk)
}

impl ServerKeys {
    pub fn params(&self) -> &ParamSet {
        &self.params
    }
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
    /// The keyswitch key from `kind` to the small key, if the chain has one.
    pub(crate) fn ksk_from(&self, kind: KeyKind) -> Option<&LweKeyswitchKeyOwned<u64>> {
        match kind {
            KeyKind::Data => Some(&self.ksk_data),
            KeyKind::Pbs => Some(&self.ksk_pbs),
            KeyKind::Small => None,
        }
    }
}
