//! Randomness for key generation and client encryption: OS entropy for users, a seed
//! for reproducible tests.

use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;

pub(crate) type EncGen = EncryptionRandomGenerator<DefaultRandomGenerator>;

/// A seeder plus the encryption generator seeded from it.
pub struct CryptoRng {
    seeder: Box<dyn Seeder>,
    enc: EncGen,
}

impl CryptoRng {
    /// Seeded from the operating system (what users get).
    pub fn from_os() -> CryptoRng {
        CryptoRng::with_seeder(new_seeder())
    }

    /// Deterministic: the same seed gives the same keys and ciphertexts. Tests only.
    pub fn from_seed(seed: u64) -> CryptoRng {
        let seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(u128::from(seed) ^ 0x6274_7466_6865));
        CryptoRng::with_seeder(Box::new(seeder))
    }

    fn with_seeder(mut seeder: Box<dyn Seeder>) -> CryptoRng {
        let enc = EncGen::new(seeder.seed(), seeder.as_mut());
        CryptoRng { seeder, enc }
    }

    pub(crate) fn fresh_seed(&mut self) -> u128 {
        self.seeder.seed().0
    }

    pub(crate) fn secret_generator(&mut self) -> SecretRandomGenerator<DefaultRandomGenerator> {
        SecretRandomGenerator::new(self.seeder.seed())
    }

    pub(crate) fn encryption_generator(&mut self) -> &mut EncGen {
        &mut self.enc
    }

    pub(crate) fn seeder(&mut self) -> &mut dyn Seeder {
        self.seeder.as_mut()
    }
}
