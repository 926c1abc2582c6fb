//! `blindtuner keygen --out DIR [--plan PLAN] [--bsk auto|12x3|10x4] [--insecure-seed N]`.
//!
//! Writes `DIR/client.key` (secret, owner-only) and `DIR/server.keys` (the evaluation
//! keys: bootstrap, keyswitch and packing keyswitch keys), and for a plan with products of
//! two server values (an MLP head) `DIR/convert.keys` (the GGSW-conversion keys, ~0.9 GiB).
//! `encrypt` and `decrypt` find the client key in the same directory; only `server.keys`
//! and `convert.keys` go to the server.

use super::load_plan;
use crate::cli::KeygenArgs;
use crate::error::CliError;
use blindtuner_compiler::noise::choose_key;
use blindtuner_compiler::plan::Plan;
pub use blindtuner_compiler::report::human_bytes;
use blindtuner_runtime::tfhe::files::{self, FileKind};
use blindtuner_runtime::tfhe::{keygen, BskChoice, ClientKey, CryptoRng, ParamSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File name of the secret client key inside a key directory.
pub const CLIENT_KEY: &str = "client.key";
/// File name of the server key bundle inside a key directory.
pub const SERVER_KEYS: &str = "server.keys";
/// File name of the conversion keys (plans with products of two server values).
pub const CONVERT_KEYS: &str = "convert.keys";

pub fn client_key_path(dir: &Path) -> PathBuf {
    dir.join(CLIENT_KEY)
}

pub fn server_keys_path(dir: &Path) -> PathBuf {
    dir.join(SERVER_KEYS)
}

pub fn convert_keys_path(dir: &Path) -> PathBuf {
    dir.join(CONVERT_KEYS)
}

/// The client key of a key directory, with a hint when the directory is not one.
pub fn load_client_key(dir: &Path) -> Result<ClientKey, CliError> {
    let path = client_key_path(dir);
    if !path.exists() {
        return Err(CliError::user(format!(
            "no client key at `{}`: --keys must be a directory written by `blindtuner keygen --out DIR`",
            path.display()
        )));
    }
    Ok(files::load_client_key(&path)?)
}

pub fn parse_bsk(s: &str) -> Result<BskChoice, CliError> {
    match s {
        "12x3" | "12/3" => Ok(BskChoice::Bsk12x3),
        "10x4" | "10/4" => Ok(BskChoice::Bsk10x4),
        other => {
            Err(CliError::user(format!("unknown bootstrap-key decomposition `{other}`: expected auto, 12x3 or 10x4")))
        }
    }
}

/// `--bsk`: `auto` is the key the compiler chose for `plan` (see `report`); without a
/// plan, the cheapest set.
pub fn resolve_bsk(s: &str, plan: Option<&Plan>) -> Result<BskChoice, CliError> {
    match (s, plan) {
        ("auto", Some(p)) => parse_bsk(choose_key(p).name()),
        ("auto", None) => Ok(BskChoice::Bsk12x3),
        (s, _) => parse_bsk(s),
    }
}

pub fn run(args: &KeygenArgs) -> Result<(), CliError> {
    let plan = args.plan.as_deref().map(load_plan).transpose()?;
    let params = ParamSet::new(resolve_bsk(&args.bsk, plan.as_ref())?);
    let (ck_path, sk_path) = (client_key_path(&args.out), server_keys_path(&args.out));
    if ck_path.exists() {
        // The old key may be the only one that decrypts data or models made with it.
        return Err(CliError::user(format!(
            "`{}` already exists: refusing to overwrite a client key (it may be the only key that \
             decrypts existing data); choose another --out directory or delete the old key yourself",
            ck_path.display()
        )));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::user(format!("cannot create key directory `{}`: {e}", args.out.display())))?;
    let mut rng = match args.insecure_seed {
        Some(seed) => {
            eprintln!("warning: --insecure-seed {seed}: anyone who knows the seed can rebuild these keys (tests and demos only)");
            CryptoRng::from_seed(seed)
        }
        None => CryptoRng::from_os(),
    };
    if args.bsk == "auto" && plan.is_none() {
        eprintln!(
            "note: no --plan: keys with the cheapest bootstrap key (12x3); `--plan PLAN` lets the compiler choose"
        );
    }
    eprintln!("generating keys for {} ...", params.id());
    let start = Instant::now();
    let (ck, sk) = keygen(&params, &mut rng);
    // Products of two server values convert one operand to GGSW on the server, with
    // keys of their own (too large to ship with every plan's server keys).
    let convert = plan.as_ref().and_then(|p| ck.convert_key_for(p, &mut rng));
    let secs = start.elapsed().as_secs_f64();
    // Server keys first: if writing them fails, no client key is left behind that would
    // block a retry.
    files::save_server_keys(&sk_path, &sk)?;
    let cv_path = convert_keys_path(&args.out);
    if let Some(key) = &convert {
        files::save_convert_key(&cv_path, &sk, key)?;
    }
    files::save_client_key(&ck_path, &ck)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!("parameter set   {} (128-bit security)", params.id());
    println!("fingerprint     {}", ck.fingerprint());
    println!("{:<15} {}  ({})", FileKind::ClientKey.describe(), ck_path.display(), human_bytes(size(&ck_path)));
    println!("{:<15} {}  ({})", FileKind::ServerKeys.describe(), sk_path.display(), human_bytes(size(&sk_path)));
    if convert.is_some() {
        println!("{:<15} {}  ({})", FileKind::ConvertKeys.describe(), cv_path.display(), human_bytes(size(&cv_path)));
    }
    println!("keygen time     {secs:.1} s");
    println!();
    println!("`{CLIENT_KEY}` is SECRET (mode 0600): keep it on this machine, it decrypts your data and model.");
    if convert.is_some() {
        println!("Send only `{SERVER_KEYS}` and `{CONVERT_KEYS}` to the server, together with the encrypted dataset.");
    } else {
        println!("Send only `{SERVER_KEYS}` to the server, together with the encrypted dataset.");
    }
    Ok(())
}
