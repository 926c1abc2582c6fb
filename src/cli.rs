//! Command-line interface definition (clap). Parsing only; the commands live in `cmd/`.

use blindtuner_compiler::plan::ProductStrategy;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "blindtuner",
    version,
    about = "Compile and train classification heads on TFHE-encrypted data",
    long_about = "blindtuner compiles a model spec (.bt) into a training plan — forward, loss gradient, \
backward and optimizer update in fixed-point torus arithmetic — and runs it in the clear \
(bit-exact with the encrypted arithmetic) or on tfhe-rs ciphertexts.\n\n\
Typical flow:\n  blindtuner check models/mnist_vit_sigmoid.bt\n  \
blindtuner report models/mnist_vit_sigmoid.bt\n  \
blindtuner run models/mnist_vit_sigmoid.bt --data data/mnist-vit --backend clear\n\n\
Exit codes: 0 success, 1 user error (diagnostics, bad data, bad file), 2 usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Colour diagnostics: auto (when stderr is a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a spec: exit 0 if valid, else print diagnostics and exit 1.
    Check(SpecArgs),
    /// Compile a spec and print an intermediate form.
    Compile(CompileArgs),
    /// Per-node and total cost report: formats, lowering, PBS count and depth.
    Report(ReportArgs),
    /// Train a spec on `PREFIX.train.csv` and evaluate on `PREFIX.test.csv`.
    Run(RunArgs),
    /// Print the observed per-feature ranges of a CSV dataset (for the `in [lo, hi]` of an input).
    CalibrateRanges(CalibrateArgs),
    /// Measure this host's bootstrap, keyswitch and packing times (a short encrypted
    /// training run) and store them for `report --calibration`.
    Calibrate(CalibrateHostArgs),
    /// List the compiler passes in pipeline order (names accepted by --stop-after).
    Passes,
    /// Data owner: generate a client key (secret) and a server key bundle.
    Keygen(KeygenArgs),
    /// Data owner: encrypt a CSV dataset for a plan (seeded GGSW features, label terms).
    Encrypt(EncryptArgs),
    /// Server: train on an encrypted dataset with the server keys only.
    Train(TrainArgs),
    /// Data owner: decrypt a trained encrypted model into weights.json.
    Decrypt(DecryptArgs),
    /// Evaluate decrypted weights on a CSV dataset (clear inference).
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
pub struct CalibrateHostArgs {
    /// Where to write the measured figures (JSON).
    #[arg(long, default_value = "calibration.json")]
    pub out: PathBuf,
    /// Training samples of the timed run (a d = 64, k = 5 sigmoid head, batch 8).
    #[arg(long, default_value_t = 32)]
    pub samples: usize,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory to write `client.key` (secret: never send it) and `server.keys` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Bootstrap-key decomposition: `auto` (the compiler's choice for --plan, see
    /// `report`; 12x3 without a plan), 12x3 (cheaper) or 10x4 (1.7 bits less bootstrap
    /// output noise, ~25 % slower).
    #[arg(long, default_value = "auto")]
    pub bsk: String,
    /// The plan the keys are for: with `--bsk auto`, its bootstrap key is used; a plan
    /// with products of two server values (an MLP head) also gets `convert.keys`.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Deterministic keys from this seed (tests and demos only: never for real data).
    #[arg(long)]
    pub insecure_seed: Option<u64>,
}

#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// Key directory written by `keygen`.
    #[arg(long)]
    pub keys: PathBuf,
    /// The plan (`blindtuner compile FILE --emit plan -o plan.json`).
    #[arg(long)]
    pub plan: PathBuf,
    /// The CSV to encrypt (`label,f0,...`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output file (encrypted dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// Encrypt only N samples: a random subset, the same for a given plan seed.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The plan the dataset was encrypted for.
    #[arg(long)]
    pub plan: PathBuf,
    /// The server key bundle (`server.keys` from `keygen`).
    #[arg(long)]
    pub server_key: PathBuf,
    /// The conversion keys (`convert.keys` from `keygen --plan PLAN`), needed by plans with
    /// products of two server values (an MLP head); default: `convert.keys` beside
    /// --server-key.
    #[arg(long)]
    pub convert_key: Option<PathBuf>,
    /// Encrypted dataset (from `encrypt`).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the trained encrypted model.
    #[arg(long)]
    pub out: PathBuf,
    /// Override the plan's epoch count. With --resume: change the length of the
    /// interrupted run (end it after an epoch it has not finished, or extend it), when its
    /// learning-rate schedule and tail average allow.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Continue from the checkpoint next to `--out` after an interruption.
    #[arg(long)]
    pub resume: bool,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 120)]
    pub checkpoint_every: u64,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// Key directory written by `keygen`.
    #[arg(long)]
    pub keys: PathBuf,
    /// The plan the model was trained with.
    #[arg(long)]
    pub plan: PathBuf,
    /// Encrypted model from `train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output weights (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Decrypted weights (from `decrypt`).
    #[arg(long)]
    pub weights: PathBuf,
    /// CSV to evaluate on.
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// The model spec (.bt).
    pub file: PathBuf,
    /// Override a named dimension of the spec, e.g. `--set d=16` (repeatable).
    #[arg(long = "set", value_name = "DIM=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, usize)>,
    /// Force the lowering of a product of two server values (repeatable): NODE is the
    /// report's node id (`s2`) or the product's name, STRATEGY one of `square` (square
    /// trick), `bivariate` (bivariate table), `ggsw` (convert the integer operand to
    /// GGSW bit by bit) or `table-ggsw` (convert a table's output to GGSW: one bootstrap
    /// per GGSW level). The report's `products` section lists the choices and their costs.
    #[arg(long = "lowering", value_name = "NODE=STRATEGY", value_parser = parse_lowering)]
    pub lowering: Vec<(String, ProductStrategy)>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The parsed syntax tree (JSON).
    Ast,
    /// The IR graph in text form.
    Graph,
    /// The lowered plan (JSON).
    Plan,
    /// The IR graph as graphviz dot.
    Dot,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Emit::Plan)]
    pub emit: Emit,
    /// Stop the pass pipeline after this pass (see `blindtuner passes`).
    #[arg(long, value_name = "PASS")]
    pub stop_after: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Time estimates from `blindtuner calibrate`'s file instead of the nominal figures.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Bit-exact fixed-point execution of the plan, no encryption.
    Clear,
    /// tfhe-rs ciphertexts: keygen, encrypt, train with the server keys only, decrypt.
    Tfhe,
    /// The clear backend plus Gaussian noise with the modelled variance at every lowered
    /// operation (bootstraps can land in a neighbouring cell): a fast predictor of the
    /// encrypted run's accuracy.
    Simulate,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Dataset prefix: reads PREFIX.train.csv and PREFIX.test.csv.
    #[arg(long, value_name = "PREFIX")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::Clear)]
    pub backend: Backend,
    /// Override the number of epochs of the spec.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train on N training samples only: a random subset, the same for a given spec seed
    /// (datasets are often sorted by label, so the first N rows would be biased).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Replace the declared input ranges by the ranges observed on the training split.
    #[arg(long)]
    pub fit_ranges: bool,
    /// Print one JSON object on stdout (logs go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also print the cost report of the plan after the training summary.
    #[arg(long, conflicts_with = "json")]
    pub report: bool,
    /// tfhe and simulate backends: bootstrap-key decomposition, `auto` (the compiler's
    /// choice for this plan and epoch count, explained by `--report`), 12x3 (cheaper) or
    /// 10x4 (1.7 bits less bootstrap output noise, ~25 % slower).
    #[arg(long, default_value = "auto")]
    pub bsk: String,
    /// With --report: time estimates from `blindtuner calibrate`'s file.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// `--backend simulate`: seed of the injected noise (default: the spec's seed).
    #[arg(long, value_name = "SEED")]
    pub noise_seed: Option<u64>,
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// A CSV file (`label,f0,...`).
    pub data: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_lowering(s: &str) -> Result<(String, ProductStrategy), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NODE=STRATEGY, got `{s}`"))?;
    let names: Vec<&str> = ProductStrategy::ALL.iter().map(|p| p.name()).collect();
    let v = ProductStrategy::from_name(v.trim())
        .ok_or_else(|| format!("unknown lowering `{}`: expected one of {}", v.trim(), names.join(", ")))?;
    if k.trim().is_empty() {
        return Err("empty node name".into());
    }
    Ok((k.trim().to_string(), v))
}

fn parse_set(s: &str) -> Result<(String, usize), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected DIM=VALUE, got `{s}`"))?;
    let v: usize = v.trim().parse().map_err(|_| format!("`{v}` is not a non-negative integer"))?;
    if k.trim().is_empty() {
        return Err("empty dimension name".into());
    }
    Ok((k.trim().to_string(), v))
}
